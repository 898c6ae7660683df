// The client's retry, backoff, error and streaming behaviour, against a scripted stand-in for render-store.
import t from 'tap'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RenderStoreClient, RenderStoreError, parseRetryAfter, retryDelayMs, withRetry } from '../../src/client/index.js'
import { closedPortUrl, problem, scriptedService } from '../support/scripted-service.js'

const fast = { initialDelayMs: 1, maxDelayMs: 5 }

function tempFile (t: { teardown: (fn: () => unknown) => void }, bytes: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'client-test-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const path = join(dir, 'video.mp4')
  const content = Buffer.alloc(bytes)
  for (let i = 0; i < bytes; i++) content[i] = (i * 31) % 251
  writeFileSync(path, content)
  return path
}

t.test('backoff: full jitter under a ceiling that doubles from 1 s, Retry-After wins, everything capped', async (t) => {
  const error = new RenderStoreError('x', { status: 503, request: 'GET /' })
  t.equal(retryDelayMs(1, error, { random: () => 0.999 }), 999)
  t.equal(retryDelayMs(2, error, { random: () => 0.999 }), 1998)
  t.equal(retryDelayMs(3, error, { random: () => 0.5 }), 2000)
  t.equal(retryDelayMs(1, error, { random: () => 0 }), 0, 'full jitter reaches zero')
  t.equal(retryDelayMs(10, error, { random: () => 0.999, maxDelayMs: 3000 }), 2997)
  const throttled = new RenderStoreError('x', { status: 429, request: 'GET /', retryAfter: 7 })
  t.equal(retryDelayMs(1, throttled), 7000)
  t.equal(retryDelayMs(1, throttled, { maxDelayMs: 50 }), 50)
})

t.test('Retry-After: seconds or an HTTP date', async (t) => {
  t.equal(parseRetryAfter('5'), 5)
  t.equal(parseRetryAfter(null), undefined)
  t.equal(parseRetryAfter('soon'), undefined)
  t.equal(parseRetryAfter(new Date(Date.now() + 10_000).toUTCString(), Date.now()), 10)
})

t.test('503 twice then 200: three attempts, two retries told', async (t) => {
  const service = await scriptedService(t, [problem(503, 'busy'), problem(503, 'busy'), { status: 200, body: { status: 'ok', version: '1', uptimeSeconds: 1 } }])
  const delays: number[] = []
  const client = new RenderStoreClient({ baseUrl: service.baseUrl, retry: { ...fast, onRetry: (_n, _e, delay) => delays.push(delay) } })
  const health = await client.health()
  t.equal(health.status, 'ok')
  t.equal(service.requests.length, 3)
  t.equal(delays.length, 2)
})

t.test('a 400 is not retried and carries its problem', async (t) => {
  const service = await scriptedService(t, [problem(400, 'bad field')])
  const client = new RenderStoreClient({ baseUrl: service.baseUrl, retry: fast })
  const error = await client.getVideo('p', 'v').catch((e: unknown) => e) as RenderStoreError
  t.type(error, RenderStoreError)
  t.equal(error.status, 400)
  t.equal(error.retryable, false)
  t.equal(error.problem?.detail, 'bad field')
  t.equal(service.requests.length, 1)
})

t.test('429 with Retry-After waits what the server asked (capped by maxDelayMs)', async (t) => {
  const service = await scriptedService(t, [problem(429, 'slow down', { 'retry-after': '2' })], () => ({ status: 200, body: { items: [], nextCursor: null } }))
  const delays: number[] = []
  const client = new RenderStoreClient({ baseUrl: service.baseUrl, retry: { ...fast, maxDelayMs: 20, onRetry: (_n, e, delay) => { delays.push(delay); t.equal(e.retryAfter, 2) } } })
  const page = await client.listRenders('p', 'v', { limit: 5 })
  t.same(page.items, [])
  t.same(delays, [20])
})

t.test('5xx beyond the retries: the last error is thrown after 1 + retries attempts', async (t) => {
  const service = await scriptedService(t, [], () => problem(502, 'upstream'))
  const client = new RenderStoreClient({ baseUrl: service.baseUrl, retry: { ...fast, retries: 2 } })
  const error = await client.status('p', 'v').catch((e: unknown) => e) as RenderStoreError
  t.equal(error.status, 502)
  t.equal(service.requests.length, 3)
  const once = await client.status('p', 'v', { retry: false }).catch((e: unknown) => e) as RenderStoreError
  t.equal(once.status, 502)
  t.equal(service.requests.length, 4, 'retry: false makes one attempt')
})

t.test('no answer (closed port): a network error with status 0, retried', async (t) => {
  const client = new RenderStoreClient({ baseUrl: await closedPortUrl(), retry: fast })
  let retries = 0
  const error = await client.health({ retry: { onRetry: () => { retries++ } } }).catch((e: unknown) => e) as RenderStoreError
  t.type(error, RenderStoreError)
  t.equal(error.status, 0)
  t.ok(error.isNetworkError)
  t.ok(error.retryable)
  t.equal(retries, 3)
  t.match(error.message, /ECONNREFUSED/)
})

t.test('withRetry passes non-service errors through at once', async (t) => {
  let calls = 0
  await t.rejects(withRetry(async () => { calls++; throw new TypeError('bug') }, fast), TypeError)
  t.equal(calls, 1)
})

t.test('uploadRender streams the file with its length, reports rising progress to 100, and re-sends it whole on retry', async (t) => {
  const path = tempFile(t, 300 * 1024)
  const service = await scriptedService(t, [problem(503, 'busy')])
  const client = new RenderStoreClient({ baseUrl: service.baseUrl, retry: fast, uploadChunkBytes: 64 * 1024 })
  const seen: Array<[number, number, number]> = []
  const render = await client.uploadRender('p', 'v', path, { onProgress: (bytes, total, percentage) => seen.push([bytes, total, percentage]) })
  t.equal(render.version, 1)
  t.equal(service.requests.length, 2)
  const expected = createHash('sha256').update(Buffer.from(await import('node:fs').then((fs) => fs.readFileSync(path)))).digest('hex')
  for (const request of service.requests) {
    t.equal(request.headers['content-length'], String(300 * 1024))
    t.equal(request.headers['content-type'], 'video/mp4')
    t.equal(request.bodySha256, expected)
  }
  const lastAttempt = seen.slice(seen.findLastIndex(([bytes]) => bytes <= 64 * 1024))
  t.ok(lastAttempt.length >= 5, 'one report per chunk')
  t.same(lastAttempt.at(-1), [300 * 1024, 300 * 1024, 100])
  t.ok(lastAttempt.every(([bytes], i) => i === 0 || bytes > lastAttempt[i - 1][0]), 'rising within an attempt')
})

t.test('a stream source must match its declared size', async (t) => {
  const service = await scriptedService(t)
  const client = new RenderStoreClient({ baseUrl: service.baseUrl, retry: { ...fast, retries: 0 } })
  async function * short () { yield Buffer.from('abc') }
  await t.rejects(client.uploadRender('p', 'v', { size: 10, open: () => short() }))
})

t.test('code, diff, lock and session calls hit the paths of API.md', async (t) => {
  const service = await scriptedService(t, [], (request) => ({ status: request.method === 'POST' ? 201 : 200, body: request.path.endsWith('/diff') ? undefined : { version: 1, items: [], nextCursor: null, content: 'x', filename: 'v.py', uploadId: 'u1' } }))
  const client = new RenderStoreClient({ baseUrl: service.baseUrl + '/', apiKey: 'secret', retry: fast })
  const created = await client.createCodeVersion('p', 'v', { content: 'print(1)', baseVersion: 0 })
  t.equal(created.created, true)
  await client.getCode('p', 'v')
  await client.getCode('p', 'v', 2)
  await client.listCodeVersions('p', 'v', { limit: 2, cursor: 'c' })
  await client.diffCode('p', 'v', 2, 1)
  await client.lockCodeVersion('p', 'v', 1, { legalHold: true })
  await client.createUploadSession('p', 'v', { sizeBytes: 10, contentType: 'video/mp4' })
  await client.getUploadSession('p', 'v', 'u1')
  await client.completeUploadSession('p', 'v', 'u1', [{ partNumber: 1, etag: 'e' }])
  await client.abortUploadSession('p', 'v', 'u1')
  await client.progress('p', 'v')
  t.same(service.requests.map((r) => `${r.method} ${r.path}`), [
    'POST /v1/projects/p/videos/v/code',
    'GET /v1/projects/p/videos/v/code',
    'GET /v1/projects/p/videos/v/code/versions/2',
    'GET /v1/projects/p/videos/v/code/versions',
    'GET /v1/projects/p/videos/v/code/versions/2/diff',
    'PUT /v1/projects/p/videos/v/code/versions/1/lock',
    'POST /v1/projects/p/videos/v/uploads',
    'GET /v1/projects/p/videos/v/uploads/u1',
    'POST /v1/projects/p/videos/v/uploads/u1/complete',
    'DELETE /v1/projects/p/videos/v/uploads/u1',
    'GET /v1/projects/p/videos/v/progress'
  ])
  t.equal(service.requests[0].headers.authorization, 'Bearer secret')
  t.same(JSON.parse(service.requests[0].body.toString()), { content: 'print(1)', baseVersion: 0 })
})
