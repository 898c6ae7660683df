// Issue 12, "Done when": tus-js-client (the reference client) uploads a video to a render version through a load
// balancer in front of two replicas sharing one S3 and DynamoDB; the network drops at about half; a NEW client
// instance finds the upload's URL in its URL storage and resumes it, now on the other replica; the stored bytes are
// identical. TUS_RESUME_MIB sets the size (default 300; 60 on the strict tier, whose memstore OSD keeps every byte in RAM).
import t from 'tap'
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { FileUrlStorage, Upload, type PreviousUpload } from 'tus-js-client'
import { listen, onStrictBackend, startTestAws } from '../helper.js'
import { clients, mp4Stream, objectDigest } from '../support/render-fixtures.js'
import { startSwitchProxy } from '../support/faults/switch-proxy.js'

const MiB = 1024 * 1024
const SIZE = Number(process.env.TUS_RESUME_MIB ?? (onStrictBackend() ? 60 : 300)) * MiB

t.test('tus-js-client: cut at half on one replica, resumed by a new client on the other, bytes identical', async (t) => {
  const testAws = await startTestAws(t)
  const one = await listen(t, { aws: testAws })
  const two = await listen(t, { aws: testAws })
  const aws = clients(t, testAws)
  const proxy = await startSwitchProxy(one.baseUrl)
  t.teardown(proxy.close)

  const dir = mkdtempSync(join(tmpdir(), 'tus-resume-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const path = join(dir, 'render.mp4')
  const source = mp4Stream(SIZE)
  await pipeline(source.stream, createWriteStream(path))
  const expected = source.sha256()
  const storage = new FileUrlStorage(join(dir, 'tus-urls.json'))
  const endpoint = `${proxy.url}/v1/projects/tusr/videos/film/tus`
  const options = {
    endpoint,
    urlStorage: storage,
    storeFingerprintForResuming: true,
    removeFingerprintOnSuccess: false,
    metadata: { filename: 'render.mp4', filetype: 'video/mp4', title: 'Resumed', durationSeconds: '600', resolution: '1920x1080' }
  }

  // First client, on replica one: the network drops once about half of the bytes went through.
  const cut = proxy.cutAfter(Math.floor(SIZE / 2))
  const firstError = await new Promise<Error>((resolve, reject) => {
    const upload = new Upload(createReadStream(path), {
      ...options,
      retryDelays: null,
      onError: resolve,
      onSuccess: () => { reject(new Error('the first client finished although the network dropped')) }
    })
    upload.start()
  })
  await cut
  t.ok(firstError, `the first client failed: ${firstError.message.split('\n')[0]}`)
  const sentBeforeCut = proxy.upstreamBytes()

  // The balancer now sends everything to replica two; a new client instance resumes from its stored URL.
  proxy.setTarget(two.baseUrl)
  const progressEvents: Array<{ status: string, bytesUploaded: number }> = []
  const sse = fetch(`${two.baseUrl}/v1/projects/tusr/videos/film/progress`, { headers: { accept: 'text/event-stream' } }).then(async (response) => {
    const decoder = new TextDecoder()
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      for (const line of decoder.decode(chunk).split('\n')) {
        if (line.startsWith('data: ')) progressEvents.push(JSON.parse(line.slice(6)) as { status: string, bytesUploaded: number })
      }
    }
  })
  let resumedFrom = -1
  await new Promise<void>((resolve, reject) => {
    const upload = new Upload(createReadStream(path), {
      ...options,
      retryDelays: [0, 1000, 3000, 5000, 10000],
      onProgress: (bytes) => { if (resumedFrom < 0) resumedFrom = bytes },
      onError: reject,
      onSuccess: () => { resolve() }
    })
    upload.findPreviousUploads().then((previous: PreviousUpload[]) => {
      t.equal(previous.length, 1, 'the new client finds the stored upload URL')
      upload.resumeFromPreviousUpload(previous[0])
      upload.start()
    }, reject)
  })
  const sentAfterCut = proxy.upstreamBytes() - sentBeforeCut
  t.ok(resumedFrom > SIZE * 0.3 && resumedFrom < SIZE * 0.7, `resumed from about half (${(resumedFrom / MiB).toFixed(1)} MiB)`)
  t.ok(sentAfterCut < SIZE - resumedFrom + MiB, `the second client sent only the rest (${(sentAfterCut / MiB).toFixed(1)} MiB)`)

  const renders = await (await fetch(`${two.baseUrl}/v1/projects/tusr/videos/film/renders`)).json() as { items: Array<{ version: number, key: string, sha256: string, sizeBytes: number, title: string }> }
  t.equal(renders.items.length, 1, 'one render version')
  const render = renders.items[0]
  t.match(render, { version: 1, sha256: expected, sizeBytes: SIZE, title: 'Resumed' })
  t.same(await objectDigest(aws, testAws.config.videoBucket, render.key), { sha256: expected, size: SIZE }, 'the stored bytes are identical (SHA-256)')

  await sse
  t.ok(progressEvents.some((event) => event.status === 'uploading' && event.bytesUploaded > 0 && event.bytesUploaded < SIZE), 'SSE showed the upload in progress')
  t.match(progressEvents.at(-1), { status: 'completed', bytesUploaded: SIZE }, 'SSE ended with completed')
})
