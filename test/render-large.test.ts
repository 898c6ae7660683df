import t from 'tap'
import { request as httpRequest } from 'node:http'
import { pipeline } from 'node:stream/promises'
import { listen, startTestAws } from './helper.js'
import { clients, mp4Stream, objectDigest } from './render-fixtures.js'

const MiB = 1024 * 1024
const SIZE = 200 * MiB

t.test('a 200 MB upload through the service lands byte-identical while the service RSS stays flat', async (t) => {
  const testAws = await startTestAws(t)
  const { baseUrl } = await listen(t, { aws: testAws })
  const aws = clients(t, testAws)
  // Warm-up (SDK modules, connections, JIT), so what is measured is the upload itself.
  const warmUp = await fetch(`${baseUrl}/v1/projects/p1/videos/warm/renders`, { method: 'POST', headers: { 'content-type': 'video/mp4' }, body: mp4Stream(9 * MiB).stream, duplex: 'half' } as RequestInit)
  t.equal(warmUp.status, 201)
  // The service runs in this process (the S3 emulator in its own): this RSS is the service's, plus a streaming client.
  const before = process.memoryUsage.rss()
  let peak = before
  const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage.rss()) }, 50)
  t.teardown(() => { clearInterval(sampler) })

  const { stream, sha256 } = mp4Stream(SIZE)
  const request = httpRequest(`${baseUrl}/v1/projects/p1/videos/big/renders`, { method: 'POST', headers: { 'content-type': 'video/mp4', 'content-length': String(SIZE) } })
  const response = new Promise<{ status: number, body: string }>((resolve, reject) => {
    request.on('response', (res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => { body += chunk.toString() })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body }) })
    })
    request.on('error', reject)
  })
  await pipeline(stream, request)
  const answer = await response
  clearInterval(sampler)
  t.equal(answer.status, 201, answer.body.slice(0, 200))
  const created = JSON.parse(answer.body) as { key: string, sha256: string, sizeBytes: number }
  t.equal(created.sizeBytes, SIZE)
  t.equal(created.sha256, sha256(), 'the service hashed what was sent')
  t.same(await objectDigest(aws, testAws.config.videoBucket, created.key), { sha256: sha256(), size: SIZE }, 'S3 holds exactly the bytes sent')
  const growth = peak - before
  t.comment(`RSS before ${Math.round(before / MiB)} MiB, peak ${Math.round(peak / MiB)} MiB, growth ${Math.round(growth / MiB)} MiB for a ${SIZE / MiB} MiB upload`)
  t.ok(growth < 100 * MiB, `RSS grew ${Math.round(growth / MiB)} MiB, well under the ${SIZE / MiB} MiB uploaded`)
})
