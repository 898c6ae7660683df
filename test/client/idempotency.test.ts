// Exactly-once writes from the client (issue 10): one Idempotency-Key per logical write, the same on every retry;
// what is retried and what is not; direct-upload complete that answers 202 and is polled; sessions never aborted on an
// ambiguous failure. Each test scripts a real HTTP server on loopback that plays the service's side of the contract.
import t from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RenderStoreClient, RenderStoreError } from '../../src/client/index.js'

type Test = { teardown: (fn: () => unknown) => void }

interface Seen {
  method: string
  path: string
  key?: string
  body: Buffer
}

type Handler = (request: Seen, response: ServerResponse, incoming: IncomingMessage) => void

const fast = { initialDelayMs: 1, maxDelayMs: 5 }
const problemType = 'application/problem+json'

/** A loopback server whose handler answers (or cuts) each request as the test scripts it; every request is recorded. */
async function service (t: Test, handler: Handler) {
  const seen: Seen[] = []
  const server = createServer((incoming, response) => {
    const chunks: Buffer[] = []
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk))
    incoming.on('end', () => {
      const request: Seen = {
        method: incoming.method ?? 'GET',
        path: (incoming.url ?? '/').split('?')[0],
        key: incoming.headers['idempotency-key'] as string | undefined,
        body: Buffer.concat(chunks)
      }
      seen.push(request)
      handler(request, response, incoming)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve) }))
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return { baseUrl, seen, client: (retry: object = {}) => new RenderStoreClient({ baseUrl, retry: { ...fast, ...retry } }) }
}

function send (response: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
  const text = body === undefined ? '' : JSON.stringify(body)
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers })
  response.end(text)
}

function problem (response: ServerResponse, status: number, detail: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): void {
  send(response, status, { type: 'about:blank', title: 'scripted', status, detail, ...extra }, { 'content-type': problemType, ...headers })
}

const render = (version: number, extra: Record<string, unknown> = {}) => ({
  version, bucket: 'videos', key: `videos/p/v/uploads/u${version}/v.mp4`, sizeBytes: 4, sha256: 'a'.repeat(64), contentType: 'video/mp4',
  status: 'uploaded', downloadUrl: 'http://example.invalid/x', expiresAt: new Date().toISOString(), ...extra
})

const codeVersion = (version: number) => ({ version, filename: 'v.py', key: 'code/p/v/t/v.py', sha256: 'b'.repeat(64), sizeBytes: 8, createdAt: new Date().toISOString() })

function tempFile (t: Test, bytes: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'client-idem-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const path = join(dir, 'video.mp4')
  writeFileSync(path, Buffer.alloc(bytes, 7))
  return path
}

/**
 * A render endpoint that keeps what the contract asks: a stored answer per key, replayed with Idempotent-Replayed;
 * `firstAnswer` decides what the first attempt's client actually gets after the version is stored.
 */
function keyedRenders (firstAnswer: (response: ServerResponse, incoming: IncomingMessage) => void) {
  const versions: string[] = []
  const answers = new Map<string, unknown>()
  const handler: Handler = (request, response, incoming) => {
    if (request.key === undefined) { problem(response, 400, 'this scripted service wants a key'); return }
    const recorded = answers.get(request.key)
    if (recorded !== undefined) { send(response, 201, recorded, { 'idempotent-replayed': 'true' }); return }
    versions.push(request.key)
    const answer = render(versions.length)
    answers.set(request.key, answer)
    if (versions.length === 1) firstAnswer(response, incoming)
    else send(response, 201, answer)
  }
  return { versions, handler }
}

t.test('a lost answer to uploadRender: the retry carries the same key, is replayed, and no second version exists', async (t) => {
  const renders = keyedRenders((_response, incoming) => { incoming.socket.destroy() })
  const svc = await service(t, renders.handler)
  const path = tempFile(t, 64 * 1024)
  const result = await svc.client().uploadRender('p', 'v', path)
  t.equal(result.version, 1)
  t.equal(result.replayed, true, 'the answer is the first attempt\'s, replayed')
  t.equal(renders.versions.length, 1, 'one version stored')
  t.equal(svc.seen.length, 2)
  t.match(svc.seen[0].key, /^[0-9a-f-]{36}$/, 'a random UUID')
  t.equal(svc.seen[1].key, svc.seen[0].key, 'the retry sends the same key')
  t.equal(svc.seen[1].body.length, 64 * 1024, 'the body is sent again whole')
})

t.test('502 after storing (a 5xx is not recorded): the retry with the same key finds its own commit', async (t) => {
  const renders = keyedRenders((response) => { problem(response, 502, 'proxy lost the upstream answer') })
  const svc = await service(t, renders.handler)
  const result = await svc.client().uploadRender('p', 'v', tempFile(t, 1000))
  t.equal(result.version, 1)
  t.equal(renders.versions.length, 1)
  t.same(svc.seen.map((r) => r.key), [svc.seen[0].key, svc.seen[0].key])
})

t.test('409 + Retry-After (same key still running) is waited out, then the stored answer comes; it uses no retry of the budget', async (t) => {
  let calls = 0
  const svc = await service(t, (request, response) => {
    calls++
    if (calls <= 3) { problem(response, 409, 'a request with this Idempotency-Key is still running', {}, { 'retry-after': '0' }); return }
    send(response, 201, codeVersion(4), { 'idempotent-replayed': 'true' })
  })
  const waits: number[] = []
  const created = await svc.client({ retries: 1, onRetry: (_n: number, _e: RenderStoreError, delay: number) => waits.push(delay) })
    .createCodeVersion('p', 'v', { content: 'print(1)', baseVersion: 3 })
  t.equal(created.version, 4)
  t.equal(created.created, true, 'a replayed 201 still says this write created the version')
  t.equal(created.replayed, true)
  t.same(waits, [0, 0, 0], 'Retry-After 0 honoured')
  t.equal(new Set(svc.seen.map((r) => r.key)).size, 1, 'one key on all four attempts')
  t.equal(svc.seen.length, 4)
})

t.test('409 + Retry-After for longer than inProgressRetries: the 409 is thrown, with the key to try again later', async (t) => {
  const svc = await service(t, (_request, response) => { problem(response, 409, 'still running', {}, { 'retry-after': '0' }) })
  const error = await svc.client({ inProgressRetries: 2 }).createCodeVersion('p', 'v', { content: 'x' }).catch((e: unknown) => e) as RenderStoreError
  t.equal(error.status, 409)
  t.ok(error.inProgress)
  t.equal(svc.seen.length, 3)
  t.equal(error.idempotencyKey, svc.seen[0].key, 'the error names the key, so the caller can repeat the same write')
})

t.test('a GET whose body is cut mid-way (undici: terminated) is retried', async (t) => {
  const content = JSON.stringify({ ...codeVersion(2), content: 'print("a long enough body")\n'.repeat(200) })
  const svc = await service(t, (_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json', 'content-length': String(content.length) })
    if (svc.seen.length === 1) {
      response.write(content.slice(0, content.length / 2))
      setTimeout(() => response.destroy(), 20)
      return
    }
    response.end(content)
  })
  let told: RenderStoreError | undefined
  const code = await svc.client({ onRetry: (_n: number, error: RenderStoreError) => { told = error } }).getCode('p', 'v', 2)
  t.equal(code.version, 2)
  t.equal(svc.seen.length, 2)
  t.equal(told?.status, 0, 'a cut body is a network error')
  t.match(told?.message, /cut off/)
  t.equal(svc.seen[0].key, undefined, 'reads carry no key')
})

t.test('a write whose answer is cut mid-body is retried with the same key', async (t) => {
  const body = JSON.stringify(codeVersion(1))
  const svc = await service(t, (_request, response) => {
    response.writeHead(201, { 'content-type': 'application/json', 'content-length': String(body.length + 100) })
    if (svc.seen.length === 1) { response.write(body.slice(0, 10)); setTimeout(() => response.destroy(), 20); return }
    response.end(body + ' '.repeat(100))
  })
  const created = await svc.client().createCodeVersion('p', 'v', { content: 'x' })
  t.equal(created.version, 1)
  t.equal(svc.seen.length, 2)
  t.equal(svc.seen[1].key, svc.seen[0].key)
})

t.test('not retried: 422 (key reused for another request), 409 without Retry-After, permanent 5xx; plain 500 is', async (t) => {
  const cases: Array<{ name: string, answer: (response: ServerResponse) => void, attempts: number, retryable: boolean }> = [
    { name: '422 fingerprint mismatch', answer: (r) => problem(r, 422, 'Idempotency-Key reused with another request'), attempts: 1, retryable: false },
    { name: '409 version conflict', answer: (r) => problem(r, 409, 'baseVersion 1 is not the latest', { latestVersion: 2 }), attempts: 1, retryable: false },
    { name: '500 type /permanent', answer: (r) => problem(r, 500, 'AccessDenied on the bucket', { type: 'https://render-store.dev/problems/permanent' }), attempts: 1, retryable: false },
    { name: '501', answer: (r) => problem(r, 501, 'not implemented'), attempts: 1, retryable: false },
    { name: '500 retryable: false', answer: (r) => problem(r, 500, 'broken', { retryable: false }), attempts: 1, retryable: false },
    { name: '500 detail says permanent', answer: (r) => problem(r, 500, 'permanent failure: the table does not exist'), attempts: 1, retryable: false },
    { name: 'plain 500', answer: (r) => problem(r, 500, 'oops'), attempts: 3, retryable: true },
    { name: '503 + Retry-After whose detail says permanent', answer: (r) => problem(r, 503, 'not permanent, retry', {}, { 'retry-after': '0' }), attempts: 3, retryable: true }
  ]
  for (const c of cases) {
    const svc = await service(t, (_request, response) => { c.answer(response) })
    const error = await svc.client({ retries: 2 }).createCodeVersion('p', 'v', { content: 'x', baseVersion: 1 }).catch((e: unknown) => e) as RenderStoreError
    t.type(error, RenderStoreError, c.name)
    t.equal(svc.seen.length, c.attempts, `${c.name}: ${c.attempts} attempt(s)`)
    t.equal(error.retryable, c.retryable, `${c.name}: retryable ${String(c.retryable)}`)
    t.equal(error.permanent, !c.retryable && error.status >= 500, `${c.name}: permanent`)
  }
})

t.test('every write sends a key, distinct per logical write; reads send none; a caller key is sent as given', async (t) => {
  const svc = await service(t, (request, response) => {
    if (request.method === 'DELETE') { response.writeHead(204); response.end(); return }
    if (request.method === 'GET') { send(response, 200, { projectId: 'p', videoId: 'v' }, { etag: '"e1"' }); return }
    send(response, request.method === 'POST' ? 201 : 200, { ...codeVersion(1), uploadId: 'u1', ...render(1) })
  })
  const client = svc.client()
  await client.createCodeVersion('p', 'v', { content: 'a' })
  await client.createCodeVersion('p', 'v', { content: 'a' })
  await client.putVideo('p', 'v', { title: 't' })
  await client.patchVideo('p', 'v', { title: 'u' })
  await client.deleteVideo('p', 'v')
  await client.lockCodeVersion('p', 'v', 1, { legalHold: true })
  await client.uploadRender('p', 'v', tempFile(t, 10))
  await client.uploadScene('p', 'v', 1, 2, tempFile(t, 10))
  await client.createUploadSession('p', 'v', { sizeBytes: 10, contentType: 'video/mp4' })
  await client.completeUploadSession('p', 'v', 'u1')
  await client.abortUploadSession('p', 'v', 'u1')
  await client.createCodeVersion('p', 'v', { content: 'b' }, { idempotencyKey: 'agent-run-7/code' })
  const writes = svc.seen.filter((r) => r.method !== 'GET')
  t.same(svc.seen.filter((r) => r.method === 'GET').map((r) => r.key), [undefined], 'the GET before the PATCH has no key')
  t.equal(writes.length, 12)
  t.ok(writes.every((r) => r.key !== undefined && /^[\x21-\x7e]{1,255}$/.test(r.key)), 'every write has a valid key')
  t.equal(new Set(writes.map((r) => r.key)).size, 12, 'distinct writes, distinct keys')
  t.equal(writes.at(-1)?.key, 'agent-run-7/code')
  await t.rejects(client.createCodeVersion('p', 'v', { content: 'c' }, { idempotencyKey: 'has space' }), RangeError)
  await t.rejects(client.createCodeVersion('p', 'v', { content: 'c' }, { idempotencyKey: '' }), RangeError)
  t.equal(svc.seen.length, 13, 'a bad key is refused before anything is sent')
})

// ---- direct uploads

interface SessionScript {
  /** answers complete; `n` counts complete requests from 1 */
  complete: (n: number, response: ServerResponse, request: Seen) => void
  /** the session's status on the n-th GET */
  poll?: (n: number) => Record<string, unknown>
  /** answers the presigned PUT */
  put?: (response: ServerResponse) => void
  /** the create answer is a replay */
  replayed?: boolean
}

const uploadId = '0f8fad5b-d9cb-469f-a165-70867728950e'
const sessionPath = `/v1/projects/p/videos/v/uploads/${uploadId}`
const state = (status: string, extra: Record<string, unknown> = {}) => ({
  uploadId, videoId: 'v', mode: 'direct', method: 'PUT', status, bytesUploaded: 0, totalBytes: 4, contentType: 'video/mp4',
  completeBy: new Date(Date.now() + 60_000).toISOString(), retryCount: 0, createdAt: new Date().toISOString(), updatedAt: new Date().toISOString(), ...extra
})

async function directService (t: Test, script: SessionScript) {
  let completes = 0
  let polls = 0
  const svc = await service(t, (request, response) => {
    if (request.method === 'POST' && request.path.endsWith('/uploads')) {
      send(response, 201, { uploadId, method: 'PUT', url: `${svc.baseUrl}/s3/object`, headers: {}, expiresAt: '', completeBy: '' },
        script.replayed === true ? { 'idempotent-replayed': 'true' } : {})
      return
    }
    if (request.method === 'PUT' && request.path === '/s3/object') {
      if (script.put !== undefined) { script.put(response); return }
      response.writeHead(200, { etag: '"s3"' }); response.end(); return
    }
    if (request.method === 'POST' && request.path === `${sessionPath}/complete`) { script.complete(++completes, response, request); return }
    if (request.method === 'GET' && request.path === sessionPath) { send(response, 200, script.poll?.(++polls) ?? state('pending')); return }
    if (request.method === 'DELETE' && request.path === sessionPath) { response.writeHead(204); response.end(); return }
    problem(response, 404, `nothing at ${request.method} ${request.path}`)
  })
  const calls = (method: string, suffix: string) => svc.seen.filter((r) => r.method === method && r.path.endsWith(suffix))
  return { ...svc, completes: () => calls('POST', '/complete'), aborts: () => calls('DELETE', uploadId), polls: () => calls('GET', uploadId) }
}

t.test('complete answers 202 + Location: the session is polled until completed, then completed again with the same key', async (t) => {
  const svc = await directService(t, {
    complete: (n, response) => {
      if (n === 1) send(response, 202, state('uploading'), { location: sessionPath, 'retry-after': '0' })
      else send(response, 200, render(3))
    },
    poll: (n) => n < 3 ? state('uploading') : state('completed', { renderVersion: 3 })
  })
  const result = await svc.client().uploadRenderDirect('p', 'v', tempFile(t, 4), { sha256: false })
  t.equal(result.version, 3)
  t.equal(svc.polls().length, 3, 'polled until completed')
  t.equal(svc.completes().length, 2)
  t.equal(svc.completes()[1].key, svc.completes()[0].key, 'the second complete is the same logical write')
  t.equal(svc.aborts().length, 0)
})

t.test('a session that reads pending again while polled (its completing replica died) is completed again, which takes it over', async (t) => {
  const svc = await directService(t, {
    complete: (n, response) => {
      if (n === 1) send(response, 202, state('uploading'), { location: sessionPath, 'retry-after': '0' })
      else send(response, 201, render(6))
    },
    poll: () => state('pending', { lastError: 'the replica completing it stopped' })
  })
  const result = await svc.client().uploadRenderDirect('p', 'v', tempFile(t, 4), { sha256: false })
  t.equal(result.version, 6)
  t.equal(svc.polls().length, 1)
  t.equal(svc.completes().length, 2)
  t.equal(svc.completes()[1].key, svc.completes()[0].key)
  t.equal(svc.aborts().length, 0)
})

t.test('a complete still verifying past waitTimeoutMs: a 202 RenderStoreError with the key to complete again later', async (t) => {
  const svc = await directService(t, {
    complete: (_n, response) => { send(response, 202, state('uploading'), { location: sessionPath, 'retry-after': '0' }) },
    poll: () => state('uploading')
  })
  const client = svc.client()
  const error = await client.completeUploadSession('p', 'v', uploadId, undefined, { waitTimeoutMs: 30, idempotencyKey: 'wait-1' }).catch((e: unknown) => e) as RenderStoreError
  t.type(error, RenderStoreError)
  t.equal(error.status, 202)
  t.equal(error.retryable, false)
  t.equal(error.idempotencyKey, 'wait-1')
  t.match(error.message, /still uploading/)
  t.ok(svc.polls().length >= 1)
})

t.test('a session that ends failed while polled: a permanent error with its reason, and no abort', async (t) => {
  const svc = await directService(t, {
    complete: (_n, response) => { send(response, 202, state('uploading'), { location: sessionPath }) },
    poll: () => state('failed', { failureReason: 'abandoned' })
  })
  const error = await svc.client().uploadRenderDirect('p', 'v', tempFile(t, 4), { sha256: false }).catch((e: unknown) => e) as RenderStoreError
  t.type(error, RenderStoreError)
  t.match(error.message, /upload failed: abandoned/)
  t.equal(error.retryable, false)
  t.equal(svc.completes().length, 1)
  t.equal(svc.aborts().length, 0)
})

t.test('a retried complete answered 409 "being completed" waits for the session instead of aborting it', async (t) => {
  const svc = await directService(t, {
    complete: (n, response, request) => {
      if (n === 1) { response.socket?.destroy(); return }
      if (n === 2) { problem(response, 409, `upload ${uploadId} is being completed`); return }
      send(response, 200, render(5), request.key !== undefined ? { 'idempotent-replayed': 'true' } : {})
    },
    poll: (n) => n < 2 ? state('uploading') : state('completed', { renderVersion: 5 })
  })
  const result = await svc.client().uploadRenderDirect('p', 'v', tempFile(t, 4), { sha256: false })
  t.equal(result.version, 5)
  t.equal(svc.aborts().length, 0, 'never aborted')
  t.equal(new Set(svc.completes().map((r) => r.key)).size, 1, 'one key for every complete')
})

t.test('complete that keeps failing ambiguously (no answer, 5xx) throws without aborting the session', async (t) => {
  const svc = await directService(t, {
    complete: (n, response) => { if (n % 2 === 1) response.socket?.destroy(); else problem(response, 503, 'busy') }
  })
  const error = await svc.client({ retries: 2 }).uploadRenderDirect('p', 'v', tempFile(t, 4), { sha256: false }).catch((e: unknown) => e) as RenderStoreError
  t.type(error, RenderStoreError)
  t.equal(svc.completes().length, 3)
  t.equal(svc.aborts().length, 0)
  t.equal(error.idempotencyKey, svc.completes()[0].key)
})

t.test('complete that says the object was rejected (400): the session is aborted', async (t) => {
  const svc = await directService(t, { complete: (_n, response) => { problem(response, 400, 'the object does not match the declared SHA-256') } })
  const error = await svc.client().uploadRenderDirect('p', 'v', tempFile(t, 4), { sha256: false }).catch((e: unknown) => e) as RenderStoreError
  t.equal(error.status, 400)
  t.equal(svc.completes().length, 1)
  t.equal(svc.aborts().length, 1)
  t.ok(svc.aborts()[0].key !== undefined, 'the abort is a keyed write too')
})

t.test('the PUT to storage fails before complete was sent: nothing can complete the session, so it is aborted', async (t) => {
  const svc = await directService(t, {
    complete: () => { throw new Error('complete must not be called') },
    put: (response) => { response.writeHead(403); response.end('<Error>SignatureDoesNotMatch</Error>') }
  })
  const error = await svc.client().uploadRenderDirect('p', 'v', tempFile(t, 4), { sha256: false }).catch((e: unknown) => e) as RenderStoreError
  t.equal(error.status, 403)
  t.equal(svc.completes().length, 0)
  t.equal(svc.aborts().length, 1)
})

t.test('uploadRenderDirect with a caller key: one key per step; a replayed session past pending is completed, not uploaded again', async (t) => {
  const svc = await directService(t, {
    replayed: true,
    complete: (_n, response) => { send(response, 200, render(9), { 'idempotent-replayed': 'true' }) },
    poll: () => state('completed', { renderVersion: 9 })
  })
  const result = await svc.client().uploadRenderDirect('p', 'v', tempFile(t, 4), { sha256: false, idempotencyKey: 'run-42/render' })
  t.equal(result.version, 9)
  t.equal(result.replayed, true)
  t.equal(svc.seen.filter((r) => r.path === '/s3/object').length, 0, 'no bytes sent again')
  t.same(svc.seen.filter((r) => r.method === 'POST').map((r) => r.key), ['run-42/render.session', 'run-42/render.complete'])
})
