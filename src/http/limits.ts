import fp from 'fastify-plugin'
import cors from '@fastify/cors'
import rateLimit from '@fastify/rate-limit'
import underPressure from '@fastify/under-pressure'
import type { FastifyRequest, FastifyServerOptions } from 'fastify'
import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import type { IncomingMessage } from 'node:http'
import type { Config } from '../config.js'
import { HttpProblem, serviceUnavailable } from '../errors.js'
import { dynamoRateLimitStore } from './rate-limit-store.js'

const isPublic = (request: FastifyRequest): boolean => request.routeOptions.config?.public === true

/** Answers errors Node raises before Fastify sees a request (headers too large, timeouts) as problem+json. */
function clientErrorHandler (error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400
  const title = STATUS_CODES[status] ?? 'Bad Request'
  const detail = status === 431 ? 'The request headers are larger than the server accepts.' : status === 408 ? 'The request took too long to arrive.' : 'The request could not be parsed as HTTP.'
  const body = JSON.stringify({ type: 'about:blank', title, status, detail })
  if (!socket.writable) { socket.destroy(); return }
  socket.write(`HTTP/1.1 ${status} ${title}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
  // The parser has given up on this socket: what still arrives is read and dropped until the lingering close ends.
  socket.on('data', () => {})
  lingeringClose(socket)
}

/** How long, and how many bytes, a refused request's remaining body is read and dropped after its answer. */
export const LINGER = { ms: 5000, maxBytes: 16 * 1024 * 1024 }

/**
 * Closes a connection whose client may still be sending a body the service did not read (413, 415, 401, 431...):
 * the answer is flushed and the write side half-closed (FIN), then what the client still sends is read and dropped
 * until it closes its side, LINGER.maxBytes more arrive or LINGER.ms pass. Closing at once with unread bytes makes
 * the kernel send RST, and a client still writing (Node's fetch, undici) then fails with EPIPE or ECONNRESET before
 * it reads the answer; this is nginx's lingering_close. (Expect: 100-continue would avoid sending the body at all,
 * but fetch never sends it.)
 */
export function lingeringClose (socket: Socket, request?: IncomingMessage): void {
  if (socket.destroyed) return
  const startBytes = socket.bytesRead
  const started = Date.now()
  const finish = (): void => {
    clearInterval(watch)
    if (!socket.destroyed) socket.destroy()
  }
  const watch = setInterval(() => {
    if (socket.bytesRead - startBytes > LINGER.maxBytes || Date.now() - started > LINGER.ms) finish()
  }, 50)
  watch.unref()
  socket.once('close', () => { clearInterval(watch) })
  socket.once('end', finish)
  // A body nobody reads any more (a stream the failed handler left paused) is dropped so the socket keeps reading.
  if (request !== undefined && !request.complete) {
    request.removeAllListeners('data')
    request.on('error', () => {})
    request.resume()
  }
  socket.end()
}

const LINGERING = Symbol('lingering')

/**
 * Makes Node's close of this request's connection a lingering one (see lingeringClose): Node calls destroySoon
 * after the last answer on a connection that is not kept alive.
 */
function lingerOnClose (request: IncomingMessage): void {
  const socket = request.socket as Socket & { [LINGERING]?: boolean, destroySoon?: () => void }
  if (socket === null || socket[LINGERING] === true || typeof socket.destroySoon !== 'function') return
  socket[LINGERING] = true
  socket.destroySoon = () => { lingeringClose(socket, request) }
}

/**
 * Server options against slow or oversized clients. Slow clients are cut by a per-socket idle timeout
 * (no byte either way for SOCKET_IDLE_TIMEOUT_MS) and a headers deadline; the whole-request deadline
 * (REQUEST_TIMEOUT_MS, default 2 h) is generous so uploads of many minutes that keep sending still work.
 */
export function limitServerOptions (config: Config): Partial<FastifyServerOptions> {
  return {
    http: { maxHeaderSize: config.limits.maxHeaderBytes, headersTimeout: config.limits.headersTimeoutMs },
    // Ids may be 128 characters (find-my-way's default of 100 would answer 414 to valid ids); longer ones get a 400.
    // A trailing slash names the same resource (curl users type .../videos/).
    routerOptions: { maxParamLength: 512, ignoreTrailingSlash: true },
    connectionTimeout: config.limits.socketIdleTimeoutMs,
    requestTimeout: config.limits.requestTimeoutMs,
    clientErrorHandler
  } as Partial<FastifyServerOptions>
}

/** CORS for browsers doing direct uploads, overload shedding and per-key rate limits; health routes are exempt. */
export default fp(async function limitsPlugin (app) {
  const config = app.config
  if (config.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: config.corsOrigins.includes('*') ? '*' : config.corsOrigins,
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
      allowedHeaders: ['authorization', 'content-type', 'if-match', 'if-none-match', 'x-request-id', 'x-base-version', 'x-filename', 'x-title', 'x-duration-seconds', 'x-resolution', 'idempotency-key',
        // tus 1.0 (routes/uploads/tus.ts) from another origin: tus-js-client sends these and reads the ones exposed below
        'tus-resumable', 'upload-length', 'upload-metadata', 'upload-offset', 'upload-checksum', 'upload-defer-length', 'upload-concat'],
      exposedHeaders: ['etag', 'location', 'x-request-id', 'retry-after', 'x-code-version', 'idempotent-replayed',
        'tus-resumable', 'tus-version', 'tus-extension', 'tus-max-size', 'tus-checksum-algorithm', 'upload-offset', 'upload-length', 'upload-expires', 'upload-metadata'],
      maxAge: 600
    })
  }

  // A cap on open connections per replica: past it Node closes new connections at once.
  if (config.edge !== undefined) app.server.maxConnections = config.edge.maxConnections

  // A minimum body rate: a request whose body arrives slower than MIN_BODY_BYTES_PER_SECOND over a window is
  // answered 408 and its connection closed, so the handler sees the client gone and frees its upload slot and lease.
  const minRate = config.edge?.minBodyBytesPerSecond ?? 0
  const rateWindowMs = config.edge?.bodyRateWindowMs ?? 30000
  if (minRate > 0) {
    app.addHook('onRequest', async (request, reply) => {
      const raw = request.raw
      if (raw.complete || (request.headers['content-length'] === undefined && request.headers['transfer-encoding'] === undefined)) return
      const socket = raw.socket
      let windowStartBytes = socket.bytesRead
      const check = setInterval(() => {
        if (raw.complete || socket.destroyed) { clearInterval(check); return }
        const received = socket.bytesRead - windowStartBytes
        windowStartBytes = socket.bytesRead
        if (received * 1000 / rateWindowMs >= minRate) return
        clearInterval(check)
        request.log.warn({ received, windowMs: rateWindowMs, minBytesPerSecond: minRate }, 'request body too slow: answering 408 and closing')
        const body = JSON.stringify({ type: 'about:blank', title: 'Request Timeout', status: 408, detail: `The request body arrived slower than ${minRate} bytes per second.`, instance: request.url.split('?')[0] })
        const res = reply.raw
        if (!res.headersSent && socket.writable) {
          res.writeHead(408, { 'content-type': 'application/problem+json', 'content-length': Buffer.byteLength(body), connection: 'close' })
          res.end(body)
        }
        // The body will not come: the request ends as a client gone (the handler releases its slot and lease).
        setTimeout(() => { raw.destroy() }, 100).unref()
      }, rateWindowMs)
      check.unref()
      raw.once('close', () => { clearInterval(check) })
    })
  }

  // An answer sent before the request's body has all arrived: a body of unknown or large remaining size is not read
  // to its end to keep the connection (Node would), the connection closes after the answer, lingering (see above).
  app.addHook('onSend', async (request, reply) => {
    const raw = request.raw
    if (raw.complete) return
    const declared = Number(request.headers['content-length'])
    const remaining = Number.isFinite(declared) ? declared - raw.socket.bytesRead : Infinity
    if (remaining > LINGER.maxBytes || reply.getHeader('connection') === 'close') {
      reply.header('connection', 'close')
      lingerOnClose(raw)
    }
  })

  // under-pressure's first samples measure start-up (module loading, schema compilation), not load: the service
  // sheds nothing until three sample intervals after it is ready, so the first requests after /health turns 200 pass.
  const SAMPLE_INTERVAL_MS = 1000
  let warmAt = Infinity
  app.addHook('onReady', async () => { warmAt = Date.now() + 3 * SAMPLE_INTERVAL_MS })
  await app.register(underPressure, {
    maxEventLoopDelay: config.overload.maxEventLoopDelayMs,
    maxHeapUsedBytes: config.overload.maxHeapBytes,
    sampleInterval: SAMPLE_INTERVAL_MS,
    retryAfter: 5,
    // Health stays answerable under load so orchestrators see the truth; everything else is shed politely.
    pressureHandler: async (request: FastifyRequest) => {
      if (isPublic(request) || Date.now() < warmAt) return
      throw serviceUnavailable('The service is overloaded; retry shortly.', 5)
    }
  })

  if (config.rateLimit.max > 0) {
    await app.register(rateLimit, {
      max: config.rateLimit.max,
      timeWindow: config.rateLimit.windowMs,
      // Shared by every replica (one DynamoDB ADD per request) unless RATE_LIMIT_STORE=memory; a store that fails lets
      // requests through rather than failing them.
      ...(config.rateLimit.store === 'dynamodb' ? { store: dynamoRateLimitStore(app.aws.ddb, config.table) as never, skipOnError: true } : {}),
      keyGenerator: (request) => request.apiKey !== undefined ? `key:${request.apiKey.id}` : `ip:${request.ip}`,
      allowList: (request) => isPublic(request),
      errorResponseBuilder: (_request, context) => new HttpProblem(429, 'Too Many Requests',
        `Rate limit of ${context.max} requests exceeded; retry in ${context.after}.`,
        { headers: { 'retry-after': String(Math.max(1, Math.ceil(context.ttl / 1000))) } })
    })
  }
}, { name: 'limits', dependencies: ['aws'] })
