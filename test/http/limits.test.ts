import t from 'tap'
import { connect, type Socket } from 'node:net'
import { loadConfig } from '../../src/config.js'
import { build, listen, startTestAws } from '../helper.js'
import { KEYS, bearer, writeKeysFile } from '../support/auth.js'

/** Sends raw bytes on a fresh socket and collects everything until the server closes it. */
async function rawExchange (port: number, write: (socket: Socket) => void): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let received = ''
    socket.on('data', (chunk) => { received += String(chunk) })
    socket.on('close', () => { resolve(received) })
    socket.on('error', (error) => { if (received === '') reject(error) })
    socket.on('connect', () => { write(socket) })
  })
}

t.test('limit variables: defaults and parsing', async (t) => {
  const config = loadConfig({})
  t.same(config.rateLimit, { max: 1200, windowMs: 60000, store: 'memory' })
  t.same(config.corsOrigins, [])
  t.equal(config.allowAnonymous, false)
  t.equal(config.limits.requestTimeoutMs, 7200000, 'a two-hour whole-request cap leaves room for long uploads')
  t.equal(loadConfig({ RATE_LIMIT_WINDOW: '30s' }).rateLimit.windowMs, 30000)
  t.equal(loadConfig({ RATE_LIMIT_WINDOW: '1500' }).rateLimit.windowMs, 1500)
  t.equal(loadConfig({ RATE_LIMIT_WINDOW: '2 h' }).rateLimit.windowMs, 7200000)
  t.equal(loadConfig({ ALLOW_ANONYMOUS: 'true' }).allowAnonymous, true)
  t.same(loadConfig({ CORS_ORIGINS: 'https://a.example, https://b.example' }).corsOrigins, ['https://a.example', 'https://b.example'])
  t.throws(() => loadConfig({ RATE_LIMIT_WINDOW: 'soon' }), { message: /RATE_LIMIT_WINDOW="soon"/ })
  t.throws(() => loadConfig({ RATE_LIMIT_MAX: '-1' }), { message: /RATE_LIMIT_MAX="-1"/ })
})

t.test('rate limit per API key: 429 problem+json with Retry-After; other keys and health unaffected', async (t) => {
  const app = await build(t, { config: { apiKeysFile: writeKeysFile(t), rateLimit: { max: 3, windowMs: 60000 } } })
  const url = '/v1/projects/p1/videos/v1/code/versions'
  for (let i = 0; i < 3; i++) {
    const response = await app.inject({ method: 'GET', url, headers: bearer(KEYS.reader) })
    t.not(response.statusCode, 429, `request ${i + 1} is within the limit`)
    t.equal(response.headers['x-ratelimit-limit'], '3')
  }
  const limited = await app.inject({ method: 'GET', url, headers: bearer(KEYS.reader) })
  t.equal(limited.statusCode, 429)
  t.match(limited.headers['content-type'], /application\/problem\+json/)
  t.ok(Number(limited.headers['retry-after']) >= 1, 'Retry-After in seconds')
  t.match(limited.json(), { status: 429, title: 'Too Many Requests' })
  t.not((await app.inject({ method: 'GET', url, headers: bearer(KEYS.admin) })).statusCode, 429, 'another key has its own budget')
  for (let i = 0; i < 6; i++) t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200, 'health is exempt')
})

t.test('without keys the rate limit is per client address', async (t) => {
  const app = await build(t, { config: { rateLimit: { max: 2, windowMs: 60000 } } })
  const url = '/v1/projects/p1/videos/v1/code/versions'
  await app.inject({ method: 'GET', url, remoteAddress: '10.0.0.1' })
  await app.inject({ method: 'GET', url, remoteAddress: '10.0.0.1' })
  t.equal((await app.inject({ method: 'GET', url, remoteAddress: '10.0.0.1' })).statusCode, 429)
  t.not((await app.inject({ method: 'GET', url, remoteAddress: '10.0.0.2' })).statusCode, 429)
})

t.test('overload: 503 problem+json with Retry-After for API routes, health still answers', async (t) => {
  const app = await build(t, { config: { overload: { maxEventLoopDelayMs: 0, maxHeapBytes: 1 } } })
  const url = '/v1/projects/p1/videos/v1/code/versions'
  let shed = await app.inject({ method: 'GET', url })
  // The heap is sampled once a second; the first sample puts the service under pressure.
  for (let waited = 0; shed.statusCode !== 503 && waited < 5000; waited += 250) {
    await new Promise((resolve) => setTimeout(resolve, 250))
    shed = await app.inject({ method: 'GET', url })
  }
  t.equal(shed.statusCode, 503)
  t.equal(shed.headers['retry-after'], '5')
  t.match(shed.headers['content-type'], /application\/problem\+json/)
  t.match(shed.json(), { status: 503, title: 'Service Unavailable' })
  t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200)
  t.not((await app.inject({ method: 'GET', url: '/health/ready' })).statusCode, 503, 'readiness reports the dependencies, not the pressure')
})

t.test('CORS is off by default', async (t) => {
  const app = await build(t)
  const response = await app.inject({ method: 'GET', url: '/health', headers: { origin: 'https://app.example' } })
  t.equal(response.headers['access-control-allow-origin'], undefined)
})

t.test('CORS for configured origins: preflight without a key, exposed ETag/Location/X-Request-Id, headers even on 401', async (t) => {
  const app = await build(t, { config: { apiKeysFile: writeKeysFile(t), corsOrigins: ['https://app.example'] } })
  const preflight = await app.inject({
    method: 'OPTIONS',
    url: '/v1/projects/p1/videos/v1/code',
    headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' }
  })
  t.equal(preflight.statusCode, 204)
  t.equal(preflight.headers['access-control-allow-origin'], 'https://app.example')
  t.match(preflight.headers['access-control-allow-headers'], /authorization/)
  t.match(preflight.headers['access-control-allow-methods'], /PUT/)
  const denied = await app.inject({ method: 'GET', url: '/v1/projects/p1/videos/v1/code', headers: { origin: 'https://app.example' } })
  t.equal(denied.statusCode, 401)
  t.equal(denied.headers['access-control-allow-origin'], 'https://app.example', 'a browser can read the 401')
  const allowed = await app.inject({ method: 'GET', url: '/v1/projects/p1/videos/v1/code', headers: { origin: 'https://app.example', ...bearer(KEYS.admin) } })
  const exposed = String(allowed.headers['access-control-expose-headers']).toLowerCase()
  for (const header of ['etag', 'location', 'x-request-id']) t.match(exposed, header)
  const stranger = await app.inject({ method: 'GET', url: '/health', headers: { origin: 'https://evil.example' } })
  t.equal(stranger.headers['access-control-allow-origin'], undefined, 'other origins get no CORS grant')
})

t.test('CORS lets a browser on a configured origin drive tus and send Idempotency-Key', async (t) => {
  const app = await build(t, { config: { apiKeysFile: writeKeysFile(t), corsOrigins: ['https://app.example'] } })
  const preflight = await app.inject({
    method: 'OPTIONS',
    url: '/v1/projects/p1/videos/v1/tus/some-upload',
    headers: { origin: 'https://app.example', 'access-control-request-method': 'PATCH', 'access-control-request-headers': 'tus-resumable, upload-offset, upload-checksum, content-type, authorization' }
  })
  t.equal(preflight.statusCode, 204, 'a preflight, not the tus OPTIONS answer')
  const allowedHeaders = String(preflight.headers['access-control-allow-headers']).toLowerCase()
  for (const header of ['tus-resumable', 'upload-offset', 'upload-length', 'upload-metadata', 'upload-checksum', 'idempotency-key']) t.match(allowedHeaders, header)
  t.match(preflight.headers['access-control-allow-methods'], /PATCH/)
  const head = await app.inject({ method: 'HEAD', url: '/v1/projects/p1/videos/v1/tus/some-upload', headers: { origin: 'https://app.example', 'tus-resumable': '1.0.0', ...bearer(KEYS.admin) } })
  const exposed = String(head.headers['access-control-expose-headers']).toLowerCase()
  for (const header of ['upload-offset', 'upload-length', 'tus-resumable', 'location', 'upload-expires']) t.match(exposed, header, `${header} readable by the page`)
})

t.test('oversized headers: 431 problem+json from the server, before any route', async (t) => {
  const { app, baseUrl } = await listen(t, { config: { limits: { ...loadConfig({}).limits, maxHeaderBytes: 4096 } } })
  t.ok(app)
  const port = Number(new URL(baseUrl).port)
  const answer = await rawExchange(port, (socket) => {
    socket.write(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(8192)}\r\n\r\n`)
  })
  t.match(answer, /^HTTP\/1\.1 431 /)
  t.match(answer, /application\/problem\+json/)
  t.match(answer, /"status":431/)
  t.equal((await fetch(`${baseUrl}/health`, { headers: { 'x-small': 'a'.repeat(1024) } })).status, 200, 'normal headers pass')
})

t.test('a stalled client is cut by the idle timeout; a slow client that keeps sending is not', async (t) => {
  const aws = await startTestAws(t)
  const { baseUrl } = await listen(t, { aws, config: { limits: { ...aws.config.limits, socketIdleTimeoutMs: 1000 } } })
  const port = Number(new URL(baseUrl).port)
  const body = JSON.stringify({ content: 'print("slow but steady")\n' })
  const stalled = await rawExchange(port, (socket) => {
    socket.write(`POST /v1/projects/p1/videos/stall/code HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`)
  })
  t.notMatch(stalled, /HTTP\/1\.1 201/, 'the stalled request never completed')

  const steady = await rawExchange(port, (socket) => {
    socket.write(`POST /v1/projects/p1/videos/steady/code HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`)
    let sent = 0
    // One small piece every 400 ms: about 3 s in total, three times the idle timeout.
    const timer = setInterval(() => {
      const piece = body.slice(sent, sent + Math.ceil(body.length / 8))
      sent += piece.length
      socket.write(piece)
      if (sent >= body.length) clearInterval(timer)
    }, 400)
    socket.on('close', () => { clearInterval(timer) })
  })
  t.match(steady, /^HTTP\/1\.1 201 /, 'the steady request completed')
  const stored = await fetch(`${baseUrl}/v1/projects/p1/videos/stall/code`)
  t.equal(stored.status, 404, 'nothing was stored for the stalled request')
})

t.test('start-up is not overload: the first requests after a slow start are served, not 503', async (t) => {
  const app = await build(t, {
    config: { overload: { maxEventLoopDelayMs: 500, maxHeapBytes: 0 } },
    // A start that blocks the event loop (module loading, schema compilation on a busy machine) for 3 s.
    beforeReady: () => { const until = Date.now() + 3000; while (Date.now() < until) { /* blocking start-up */ } }
  })
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200)
  const statuses = []
  for (let i = 0; i < 5; i++) statuses.push((await app.inject({ method: 'GET', url: '/v1/projects/p1/videos' })).statusCode)
  t.same(statuses, [200, 200, 200, 200, 200], 'no 503 "overloaded" from the start-up sample')
})

t.test('failed authentication counts: 30 wrong keys from one address end in 429, not 30 401s', async (t) => {
  const app = await build(t, { config: { apiKeysFile: writeKeysFile(t), rateLimit: { max: 20, windowMs: 60000, store: 'memory' } } })
  const statuses: number[] = []
  for (let i = 0; i < 30; i++) {
    statuses.push((await app.inject({ method: 'GET', url: '/v1/projects/p1/videos', headers: bearer(`wrong-key-${i}`), remoteAddress: '10.9.9.9' })).statusCode)
  }
  t.same(statuses.slice(0, 20), Array(20).fill(401), 'within the limit a wrong key is a 401')
  t.same(statuses.slice(20), Array(10).fill(429), 'past it, 429')
  const forbiddenStatuses: number[] = []
  for (let i = 0; i < 22; i++) forbiddenStatuses.push((await app.inject({ method: 'GET', url: '/v1/projects/p2/videos', headers: bearer(KEYS.writer) })).statusCode)
  t.same(forbiddenStatuses.slice(20), [429, 429], '403s count against the key too')
  t.not((await app.inject({ method: 'GET', url: '/v1/projects/p1/videos', headers: bearer(KEYS.reader), remoteAddress: '10.9.9.9' })).statusCode, 429, 'a valid key has its own budget')
})

t.test('the limit holds across replicas: two replicas sharing one DynamoDB let 20 of 60 through', async (t) => {
  const aws = await startTestAws(t)
  const config = { rateLimit: { max: 20, windowMs: 60000, store: 'dynamodb' as const } }
  const replicas = [await build(t, { aws, config }), await build(t, { aws, config })]
  const statuses: number[] = []
  for (let i = 0; i < 60; i++) statuses.push((await replicas[i % 2].inject({ method: 'GET', url: '/v1/projects/p1/videos', remoteAddress: '10.7.7.7' })).statusCode)
  // A window boundary may fall inside the run (fixed windows): then at most two budgets pass, never one per replica per window.
  const passed = statuses.filter((status) => status !== 429).length
  t.ok(passed === 20 || (passed > 20 && passed <= 40 && statuses.indexOf(429) !== -1), `20 of 60 pass across both replicas (${passed})`)
  t.equal(statuses.slice(0, 20).filter((status) => status === 429).length, 0, 'the first 20 pass')
  t.equal(statuses.filter((status) => status !== 200 && status !== 429).length, 0)
  t.equal(loadConfig({}).rateLimit.store, 'memory', 'embedded (one replica) counts in memory')
  t.equal(loadConfig({ AWS_S3_VIDEO_BUCKET: 'v-bucket', AWS_S3_CODE_BUCKET: 'c-bucket' }).rateLimit.store, 'dynamodb', 'against AWS the count is shared')
})

t.test('a body slower than the minimum rate is cut with 408 problem+json and frees its upload slot; connections per replica are capped', async (t) => {
  const aws = await startTestAws(t)
  const { app, baseUrl } = await listen(t, { aws, config: { maxConcurrentUploads: 1, edge: { maxConnections: 6, minBodyBytesPerSecond: 100, bodyRateWindowMs: 1000 } } })
  const port = Number(new URL(baseUrl).port)
  const started = Date.now()
  // An upload that trickles 10 bytes every 500 ms (20 B/s, under 100 B/s), holding the only upload slot.
  const slow = await rawExchange(port, (socket) => {
    socket.write('POST /v1/projects/p1/videos/slow/renders HTTP/1.1\r\nHost: x\r\nContent-Type: video/mp4\r\nContent-Length: 100000\r\n\r\n')
    socket.write(Buffer.from('\x00\x00\x00\x18ftypisom\x00\x00\x00\x00', 'latin1'))
    const timer = setInterval(() => { if (!socket.destroyed) socket.write(Buffer.alloc(10)) }, 500)
    socket.on('close', () => { clearInterval(timer) })
  })
  t.match(slow, /^HTTP\/1\.1 408 /, 'answered 408')
  t.match(slow, /application\/problem\+json/)
  t.match(slow, /"status":408/)
  t.ok(Date.now() - started < 60000, 'cut within a few windows, not the two-hour request timeout')
  // The slot is free again: a normal upload is admitted (not 429).
  const { readFileSync } = await import('node:fs')
  const video = readFileSync(new URL('../fixtures/render.mp4', import.meta.url))
  let status = 0
  for (let i = 0; i < 20 && status !== 201; i++) {
    status = (await fetch(`${baseUrl}/v1/projects/p1/videos/fast/renders`, { method: 'POST', headers: { 'content-type': 'video/mp4' }, body: video })).status
    if (status === 429) await new Promise((resolve) => setTimeout(resolve, 250))
  }
  t.equal(status, 201, 'the upload slot was released')

  // Connections past MAX_CONNECTIONS are closed at once.
  t.equal(app.server.maxConnections, 6)
  const sockets = await Promise.all(Array.from({ length: 6 }, async () => await new Promise<Socket>((resolve) => { const socket = connect(port, '127.0.0.1', () => { resolve(socket) }) })))
  await new Promise((resolve) => setTimeout(resolve, 200))
  const extra = await rawExchange(port, (socket) => { socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n') }).catch(() => '')
  t.equal(extra, '', 'the seventh connection is closed without an answer')
  for (const socket of sockets) socket.destroy()
})
