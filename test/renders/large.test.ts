import t from 'tap'
import { spawn } from 'node:child_process'
import { closeSync, openSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { listen, startTestAws } from '../helper.js'
import { clients, mp4Bytes, objectDigest } from '../support/render-fixtures.js'

const MiB = 1024 * 1024
const SIZE = 200 * MiB

async function run (command: string, args: string[]): Promise<string> {
  return await new Promise<string>((resolve, reject) => {
    const child = spawn(command, args)
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
    child.on('error', reject)
    child.on('close', (code) => { code === 0 ? resolve(out) : reject(new Error(`${command} exited ${code}`)) })
  })
}

/** A file of `size` random bytes behind an MP4 ftyp header, written and hashed by other processes (no garbage here). */
async function videoFile (file: string, size: number): Promise<string> {
  await run('sh', ['-c', `head -c ${size} /dev/urandom > '${file}'`])
  const fd = openSync(file, 'r+')
  writeSync(fd, mp4Bytes(32), 0, 32, 0)
  closeSync(fd)
  return (await run('sha256sum', [file])).split(' ')[0]
}

async function curlUpload (file: string, url: string): Promise<string> {
  return await new Promise<string>((resolve, reject) => {
    const curl = spawn('curl', ['-sS', '-T', file, '-H', 'content-type: video/mp4', '-X', 'POST', url])
    let out = ''
    curl.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
    curl.on('error', reject)
    curl.on('close', (code) => { code === 0 ? resolve(out) : reject(new Error(`curl exited ${code}`)) })
  })
}

t.test('a 200 MB upload through the service lands byte-identical while the service RSS stays flat', async (t) => {
  const testAws = await startTestAws(t)
  const { baseUrl } = await listen(t, { aws: testAws })
  const aws = clients(t, testAws)
  const url = `${baseUrl}/v1/projects/p1/videos/big/renders`
  // The client is curl in its own process and the S3 emulator runs in its own: this process's RSS is the service's.
  const file = join(testAws.dataDir, 'big.mp4')
  const sha256 = await videoFile(file, SIZE)
  // Warm-up (SDK modules, connections, JIT), so what is measured is the upload itself.
  const warmUp = await fetch(url, { method: 'POST', headers: { 'content-type': 'video/mp4' }, body: mp4Bytes(9 * MiB) })
  t.equal(warmUp.status, 201)

  const before = process.memoryUsage.rss()
  const samples: number[] = []
  const sampler = setInterval(() => { samples.push(process.memoryUsage.rss()) }, 20)
  t.teardown(() => { clearInterval(sampler) })
  const created = JSON.parse(await curlUpload(file, url)) as { version: number, key: string, sha256: string, sizeBytes: number }
  clearInterval(sampler)

  t.equal(created.version, 2)
  t.equal(created.sizeBytes, SIZE)
  t.equal(created.sha256, sha256, 'the service hashed what was sent')
  t.same(await objectDigest(aws, testAws.config.videoBucket, created.key), { sha256, size: SIZE }, 'S3 holds exactly the bytes sent')

  // Bounded by the parts in flight ((queueSize + 2) x partSize, ~40 MiB) plus the garbage V8 lets build up before it
  // collects external memory (~64 MiB), not by the file: the second half must not need more than the first.
  const half = Math.floor(samples.length / 2)
  const firstHalf = Math.max(before, ...samples.slice(0, half))
  const secondHalf = Math.max(...samples.slice(half))
  const growth = Math.max(firstHalf, secondHalf) - before
  const mib = (bytes: number): number => Math.round(bytes / MiB)
  t.comment(`RSS before ${mib(before)} MiB, peak in the first half ${mib(firstHalf)} MiB, in the second half ${mib(secondHalf)} MiB (${samples.length} samples)`)
  t.ok(samples.length >= 10, 'sampled throughout the upload')
  t.ok(secondHalf - firstHalf < 48 * MiB, `flat: the second half peaked ${mib(secondHalf - firstHalf)} MiB above the first`)
  t.ok(growth < 160 * MiB, `RSS grew ${mib(growth)} MiB at most, under the ${SIZE / MiB} MiB uploaded`)
})
