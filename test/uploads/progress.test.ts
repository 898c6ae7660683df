import t from 'tap'
import { request as httpRequest, type ClientRequest } from 'node:http'
import { GetCommand } from '@aws-sdk/lib-dynamodb'
import { listen, startTestAws } from '../helper.js'
import { clients, drainedOrClosed, mp4Bytes, objectKeys } from '../support/render-fixtures.js'
import { readProgressEvents } from '../support/sse.js'
import { videoKey } from '../../src/table/video-item.js'

const MiB = 1024 * 1024
/** The pause between two reads of a condition that is polled (never a wait for the condition itself). */
const pollPause = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** Waits until `condition` holds, checking every 50 ms; false when it did not within timeoutMs. */
async function until (condition: () => boolean, timeoutMs: number): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; !condition();) {
    if (Date.now() > deadline) return false
    await pollPause(50)
  }
  return true
}

interface Progress { uploadId: string, bytesUploaded: number, totalBytes: number | null, percentage: number | null, status: string }

/** A raw upload sent slowly over plain HTTP: the caller writes chunks and ends or breaks the connection. */
function slowUpload (baseUrl: string, path: string, totalBytes: number): { request: ClientRequest, response: Promise<{ status: number, body: string, retryAfter?: string }> } {
  const request = httpRequest(`${baseUrl}${path}`, { method: 'POST', headers: { 'content-type': 'video/mp4', 'content-length': String(totalBytes) } })
  const response = new Promise<{ status: number, body: string, retryAfter?: string }>((resolve, reject) => {
    request.on('response', (res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => { body += chunk.toString() })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body, retryAfter: res.headers['retry-after'] }) })
    })
    request.on('error', reject)
  })
  return { request, response }
}

/** Writes the bytes in chunks, each once the connection took the one before (backpressure, no pacing). */
async function writeChunks (request: ClientRequest, bytes: Buffer, chunk: number): Promise<void> {
  for (let offset = 0; offset < bytes.length; offset += chunk) {
    if (request.destroyed) return
    if (!request.write(bytes.subarray(offset, offset + chunk))) {
      await drainedOrClosed(request)
    }
  }
}

async function waitFor<T> (read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await read()
    if (done(value) || Date.now() > deadline) return value
    await pollPause(100)
  }
}

t.test('progress rises during an upload, seen from other connections as JSON and as SSE; status sums it up', async (t) => {
  const testAws = await startTestAws(t)
  const { baseUrl } = await listen(t, { aws: testAws })
  const path = '/v1/projects/p1/videos/live'
  t.equal((await fetch(`${baseUrl}${path}/progress`)).status, 404, 'no upload yet')
  t.equal((await fetch(`${baseUrl}${path}/status`)).status, 404, 'no video yet')

  const bytes = mp4Bytes(20 * MiB)
  const upload = slowUpload(baseUrl, `${path}/renders`, bytes.length)
  upload.request.write(bytes.subarray(0, MiB))
  const first = await waitFor(async () => await fetch(`${baseUrl}${path}/progress`), (response) => response.status === 200)
  t.equal(first.status, 200)

  const sseEvents: Progress[] = []
  const sse = (async () => {
    const response = await fetch(`${baseUrl}${path}/progress`, { headers: { accept: 'text/event-stream' } })
    t.match(response.headers.get('content-type'), /^text\/event-stream/)
    await readProgressEvents<Progress>(response, (event) => { sseEvents.push(event) })
  })()

  const polled: Progress[] = []
  const polling = (async () => {
    for (;;) {
      const progress = await (await fetch(`${baseUrl}${path}/progress`)).json() as Progress
      polled.push(progress)
      if (progress.status !== 'uploading' && progress.status !== 'pending') return
      await pollPause(250)
    }
  })()
  // One MiB at a time, each once both watchers saw the progress move (or, as the service records progress at most
  // once a second, a bounded wait passed), until each has seen three values while uploading; then the rest at once.
  const seen = (events: Progress[]): number => new Set(events.filter((progress) => progress.status === 'uploading').map((progress) => progress.bytesUploaded)).size
  const bothSeen = (): number => Math.min(seen(polled), seen(sseEvents))
  let offset = MiB
  while (offset < bytes.length && bothSeen() < 3) {
    const before = bothSeen()
    await writeChunks(upload.request, bytes.subarray(offset, offset + MiB), MiB)
    offset += MiB
    await until(() => bothSeen() > before, 1500)
  }
  upload.request.end(bytes.subarray(offset))
  const answer = await upload.response
  t.equal(answer.status, 201)
  await Promise.all([polling, sse])

  const risingJson = [...new Set(polled.filter((progress) => progress.status === 'uploading').map((progress) => progress.bytesUploaded))]
  t.ok(risingJson.length >= 2, `JSON progress took several values while uploading (${risingJson.join(', ')})`)
  t.same(risingJson, [...risingJson].sort((a, b) => a - b), 'and only rose')
  t.ok(polled.some((progress) => progress.status === 'uploading' && progress.percentage !== null && progress.percentage > 0 && progress.percentage < 100), 'a percentage between 0 and 100 was seen')
  t.match(polled.at(-1), { status: 'completed', bytesUploaded: bytes.length, totalBytes: bytes.length, percentage: 100 })

  const risingSse = sseEvents.filter((event) => event.status === 'uploading').map((event) => event.bytesUploaded)
  t.ok(new Set(risingSse).size >= 2, `SSE progress took several values (${risingSse.join(', ')})`)
  t.same(risingSse, [...risingSse].sort((a, b) => a - b), 'SSE only rose')
  t.equal(sseEvents.at(-1)?.status, 'completed', 'the stream ends with the terminal status')

  const status = await (await fetch(`${baseUrl}${path}/status`)).json() as Record<string, unknown>
  t.match(status, {
    video: { status: 'uploaded', latestRenderVersion: 1, upload: { status: 'completed', bytesUploaded: bytes.length, percentage: 100, retryCount: 0 } },
    code: { latestVersion: null },
    services: { s3Video: { status: 'healthy' }, s3Code: { status: 'healthy' }, dynamodb: { status: 'healthy' } }
  })
})

t.test('a client that disconnects halfway leaves no render version and no object; progress shows failed', async (t) => {
  const testAws = await startTestAws(t)
  const { baseUrl } = await listen(t, { aws: testAws })
  const aws = clients(t, testAws)
  const path = '/v1/projects/p1/videos/gone'
  const bytes = mp4Bytes(24 * MiB)
  const upload = slowUpload(baseUrl, `${path}/renders`, bytes.length)
  upload.response.catch(() => {})
  await writeChunks(upload.request, bytes.subarray(0, 12 * MiB), MiB)
  await waitFor(async () => await (await fetch(`${baseUrl}${path}/progress`)).json() as Progress, (progress) => progress.bytesUploaded > 0)
  upload.request.destroy()

  const progress = await waitFor(async () => await (await fetch(`${baseUrl}${path}/progress`)).json() as Progress, (value) => value.status === 'failed')
  t.equal(progress.status, 'failed')
  t.same(await objectKeys(aws, testAws.config.videoBucket), [], 'no visible object')
  const { Item: video } = await aws.ddb.send(new GetCommand({ TableName: testAws.config.table, Key: videoKey('p1', 'gone') }))
  t.equal(video?.latestRenderVersion, undefined, 'no render version')
  t.equal(video?.renderClaim, undefined, 'the claim was released')
  t.same((await (await fetch(`${baseUrl}${path}/renders`)).json() as { items: unknown[] }).items, [])
  const status = await (await fetch(`${baseUrl}${path}/status`)).json() as { video: { upload: { status: string, lastError: string } } }
  t.match(status.video.upload, { status: 'failed', lastError: /disconnected/ })

  const retry = await fetch(`${baseUrl}${path}/renders`, { method: 'POST', headers: { 'content-type': 'video/mp4' }, body: bytes.subarray(0, 2 * MiB) })
  t.match(await retry.json(), { version: 1 }, 'the next upload takes version 1: no gap')
})

t.test('past MAX_CONCURRENT_UPLOADS a replica answers 429 with Retry-After', async (t) => {
  const testAws = await startTestAws(t)
  const { baseUrl } = await listen(t, { aws: testAws, config: { maxConcurrentUploads: 1 } })
  const bytes = mp4Bytes(2 * MiB)
  const first = slowUpload(baseUrl, '/v1/projects/p1/videos/busy/renders', bytes.length)
  first.request.write(bytes.subarray(0, MiB))
  await waitFor(async () => await fetch(`${baseUrl}/v1/projects/p1/videos/busy/progress`), (response) => response.status === 200)
  const refused = await fetch(`${baseUrl}/v1/projects/p1/videos/other/renders`, { method: 'POST', headers: { 'content-type': 'video/mp4' }, body: bytes })
  t.equal(refused.status, 429)
  t.equal(refused.headers.get('retry-after'), '5')
  first.request.end(bytes.subarray(MiB))
  t.equal((await first.response).status, 201)
  const after = await fetch(`${baseUrl}/v1/projects/p1/videos/other/renders`, { method: 'POST', headers: { 'content-type': 'video/mp4' }, body: bytes })
  t.equal(after.status, 201, 'the slot is given back')
})

t.test('local S3 going down mid-upload: 503 with Retry-After, the upload failed, nothing visible once S3 is back', async (t) => {
  const testAws = await startTestAws(t)
  const { baseUrl } = await listen(t, { aws: testAws })
  const aws = clients(t, testAws)
  const path = '/v1/projects/p1/videos/outage'
  const bytes = mp4Bytes(40 * MiB)
  const upload = slowUpload(baseUrl, `${path}/renders`, bytes.length)
  upload.response.catch(() => {})
  await writeChunks(upload.request, bytes.subarray(0, 12 * MiB), MiB)
  await testAws.embedded.s3.stop()
  const writing = writeChunks(upload.request, bytes.subarray(12 * MiB), MiB).catch(() => {})
  const answer = await upload.response
  await writing
  t.equal(answer.status, 503)
  t.equal(answer.retryAfter, '5')
  t.match(JSON.parse(answer.body), { status: 503, title: 'Service Unavailable' })
  await testAws.embedded.s3.restart()

  const progress = await waitFor(async () => await (await fetch(`${baseUrl}${path}/progress`)).json() as Progress, (value) => value.status === 'failed')
  t.equal(progress.status, 'failed')
  t.same(await objectKeys(aws, testAws.config.videoBucket), [], 'no visible object')
  const { Item: video } = await aws.ddb.send(new GetCommand({ TableName: testAws.config.table, Key: videoKey('p1', 'outage') }))
  t.equal(video?.latestRenderVersion, undefined, 'no render version')
  t.equal(video?.renderClaim, undefined, 'the claim was released')
  const status = await (await fetch(`${baseUrl}${path}/status`)).json() as { video: { upload: { lastError: string } } }
  t.equal(status.video.upload.lastError, 'storage failed while receiving the upload', 'the reason, without internals')
})

t.test('an SSE stream ends when the upload it follows is withdrawn (refused input leaves no session)', async (t) => {
  const testAws = await startTestAws(t)
  const { app, baseUrl } = await listen(t, { aws: testAws })
  const session = await app.uploadSessions.create({ projectId: 'p1', videoId: 'withdrawn', mode: 'proxied', status: 'uploading', contentType: 'video/mp4' })
  const stop = app.uploadSessions.keepAlive(session)
  t.teardown(stop)
  const response = await fetch(`${baseUrl}/v1/projects/p1/videos/withdrawn/progress`, { headers: { accept: 'text/event-stream' } })
  let text = ''
  const reading = (async () => {
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) text += Buffer.from(chunk).toString()
    return text
  })()
  t.ok(await until(() => /"status":"uploading"/.test(text), 15_000), 'the stream shows the upload')
  stop()
  await app.uploadSessions.discard(session)
  const startedWaiting = Date.now()
  await reading
  t.match(text, /event: progress\ndata: \{[^\n]*"status":"uploading"/, 'it had shown the upload')
  t.ok(Date.now() - startedWaiting < 5000, 'and ended soon after the session went, instead of repeating it forever')
})

t.test('progress streams: capped per key and per replica (429), and every watcher of an upload shares one poll per interval', async (t) => {
  const { KEYS, bearer, writeKeysFile } = await import('../support/auth.js')
  const testAws = await startTestAws(t)
  const pollMs = 200
  const { app, baseUrl } = await listen(t, { aws: testAws, config: { apiKeysFile: writeKeysFile(t), progressStreams: { maxPerClient: 20, maxPerReplica: 25, pollMs } } })
  const session = await app.uploadSessions.create({ projectId: 'p1', videoId: 'watched', mode: 'proxied', status: 'uploading', contentType: 'video/mp4' })
  const stop = app.uploadSessions.keepAlive(session)
  t.teardown(stop)
  const url = `${baseUrl}/v1/projects/p1/videos/watched/progress`
  const controller = new AbortController()
  t.teardown(() => { controller.abort() })
  const open = async (key: string): Promise<Response> => await fetch(url, { headers: { accept: 'text/event-stream', ...bearer(key) }, signal: controller.signal })
  const firstEvent = async (response: Response): Promise<void> => {
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    let text = ''
    while (!text.includes('event: progress')) text += Buffer.from((await reader.read()).value ?? []).toString()
    void (async () => { try { while (!(await reader.read()).done) { /* keep reading */ } } catch { /* aborted */ } })()
  }
  const streams: Response[] = []
  for (let i = 0; i < 20; i++) streams.push(await open(KEYS.admin))
  const overKey = await open(KEYS.admin)
  t.equal(overKey.status, 429, 'the 21st stream of one key')
  t.match(overKey.headers.get('content-type'), /^application\/problem\+json/)
  t.ok(Number(overKey.headers.get('retry-after')) >= 1)
  for (let i = 0; i < 5; i++) streams.push(await open(KEYS.reader))
  const overReplica = await open(KEYS.writer)
  t.equal(overReplica.status, 429, 'the 26th stream of the replica, whatever the key')
  t.match((await overReplica.json() as { detail: string }).detail, /at most 25 progress streams/)
  t.same(streams.map((response) => response.status), Array(25).fill(200))
  await Promise.all(streams.map(firstEvent))

  // Count the reads of the upload behind all 25 streams (an instrumented store method; the route looks it up per poll).
  const latest = app.uploadSessions.latest.bind(app.uploadSessions)
  let reads = 0
  app.uploadSessions.latest = async (...args: Parameters<typeof latest>) => { reads++; return await latest(...args) }
  // Until the upload was read 5 times: shared, that takes about 5 intervals; one read per watcher would make 25 reads
  // in the first interval, far more than its time allows.
  const started = Date.now()
  t.ok(await until(() => reads >= 5, 30_000), 'the upload is polled')
  const elapsed = Date.now() - started
  app.uploadSessions.latest = latest
  t.ok(reads >= 1, `the upload was polled (${reads} reads)`)
  t.ok(reads <= Math.ceil(elapsed / pollMs) + 1, `${reads} reads in ${elapsed} ms for 25 watchers: one per ${pollMs} ms interval, not one per watcher`)
  controller.abort()
})
