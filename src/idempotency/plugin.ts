import { createHash, randomUUID } from 'node:crypto'
import { Readable } from 'node:stream'
import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { HttpProblem, badRequest } from '../errors.js'
import { createIdempotencyStore, scopeOf, type RecordedResponse } from './store.js'
import { idempotentRequests, recordBestEffortFailure } from '../http/metrics.js'
import { newIdentity, type WriteIdentity } from '../versions/store.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** every write under /v1 has one: the commit token its versions carry, and whether it may have committed before */
    writeIdentity?: WriteIdentity
  }
}

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])
// The draft's sf-string (quoted) or a bare token; visible ASCII only.
const KEY = /^"?([\x21\x23-\x7e]{1,255})"?$/
/** Headers a replay repeats; the rest (date, request id, rate limit) belong to the answer that carries them. */
const RECORDED_HEADERS = ['content-type', 'location', 'etag', 'x-code-version', 'vary']
/** An answer larger than this is not kept (DynamoDB items hold 400 KB); its key is released instead. */
const MAX_RECORDED_BYTES = 300 * 1024
const NOT_RECORDED = new Set([202, 408, 429])

/**
 * What makes two requests "the same": method, path and body. A streamed upload body is not read for this: its
 * length and the headers that describe it stand in (a multipart boundary differs per send, so not its type).
 */
function fingerprintOf (request: FastifyRequest): string {
  const hash = createHash('sha256').update(`${request.method} ${request.url.split('?')[0]}\n`)
  const body: unknown = request.body
  if (Buffer.isBuffer(body) || typeof body === 'string') {
    hash.update(body)
  } else if (body instanceof Readable || request.isMultipart()) {
    const header = (name: string): string => String(request.headers[name] ?? '')
    hash.update(['content-length', 'x-title', 'x-duration-seconds', 'x-resolution'].map(header).join('\n'))
    if (!request.isMultipart()) hash.update(header('content-type'))
  } else if (body !== undefined && body !== null) {
    hash.update(JSON.stringify(body))
  }
  for (const name of ['if-match', 'x-base-version', 'x-filename']) hash.update(`\n${String(request.headers[name] ?? '')}`)
  return hash.digest('hex')
}

/** The identity the idempotency hook gave this write (a fresh one where the hook did not run, e.g. inject tests of a route). */
export function writeIdentityOf (request: FastifyRequest): WriteIdentity {
  request.writeIdentity ??= newIdentity(randomUUID())
  return request.writeIdentity
}

function parseKey (value: string | string[]): string {
  const single = Array.isArray(value) ? value.join(',') : value
  const match = KEY.exec(single.trim())
  if (match === null) throw badRequest('Idempotency-Key must be 1 to 255 visible ASCII characters (optionally in double quotes), one per request')
  return match[1]
}

function replay (request: FastifyRequest, reply: FastifyReply, response: RecordedResponse): FastifyReply {
  // The body of a repeated upload is read and dropped, never stored again.
  if (!request.raw.complete) request.raw.resume()
  reply.code(response.status).header('idempotent-replayed', 'true')
  for (const [name, value] of Object.entries(response.headers)) reply.header(name, value)
  return reply.send(response.bodyEncoding === 'base64' ? Buffer.from(response.body, 'base64') : response.body)
}

/**
 * Idempotency-Key on every write under /v1. Runs after authentication and body parsing (the body is part of the
 * fingerprint) and before the handler; records the answer in onSend, before it is sent.
 */
export default fp(async function idempotencyPlugin (app) {
  const store = createIdempotencyStore({ ddb: app.aws.ddb, table: app.config.table, leaseMs: app.config.idempotencyLeaseMs })
  const held = new WeakMap<FastifyRequest, { scope: string, owner: string, timer: NodeJS.Timeout }>()
  app.decorateRequest('writeIdentity', undefined)

  const letGo = (request: FastifyRequest): { scope: string, owner: string } | undefined => {
    const entry = held.get(request)
    if (entry === undefined) return undefined
    held.delete(request)
    clearInterval(entry.timer)
    return entry
  }

  app.addHook('preHandler', async (request, reply) => {
    if (!WRITES.has(request.method) || !request.url.startsWith('/v1/')) return
    const given = request.headers['idempotency-key']
    if (given === undefined) {
      request.writeIdentity = newIdentity(randomUUID())
      return
    }
    const key = parseKey(given)
    const scope = scopeOf(request.apiKey?.id ?? 'anonymous', `${request.method} ${request.routeOptions.url ?? ''}`, key)
    const begun = await store.begin(scope, fingerprintOf(request))
    idempotentRequests.inc({ outcome: begun.outcome })
    switch (begun.outcome) {
      case 'replay':
        return replay(request, reply, begun.response)
      case 'busy':
        throw new HttpProblem(409, 'Conflict', 'a request with this Idempotency-Key is still being processed; repeat it after Retry-After to get its answer', { headers: { 'retry-after': String(begun.retryAfterSeconds) } })
      case 'mismatch':
        throw new HttpProblem(422, 'Unprocessable Content', 'this Idempotency-Key was used for a different request (method, path or body); use a new key for a new request')
      case 'run': {
        const identity: WriteIdentity = { token: begun.token, mayExist: begun.mayExist, since: begun.since }
        request.writeIdentity = identity
        // A renewal that fails may let the lease lapse and a repeat take the request over: from then on this
        // execution must look for the other's commit before committing, and must not delete what it shares with it.
        const timer = setInterval(() => {
          store.renew(scope, begun.owner).then((kept) => {
            if (kept) return
            identity.mayExist = true
            request.log.warn('idempotency: the lease on this request\'s key was lost; a repeat may run it again')
          }, (error: unknown) => {
            identity.mayExist = true
            recordBestEffortFailure('idempotency-renew', error, request.log)
          })
        }, Math.max(250, Math.floor(app.config.idempotencyLeaseMs / 3)))
        timer.unref()
        held.set(request, { scope, owner: begun.owner, timer })
      }
    }
  })

  app.addHook('onSend', async (request, reply, payload) => {
    const entry = letGo(request)
    if (entry === undefined) return payload
    const status = reply.statusCode
    const body = payload === undefined || payload === null ? '' : payload
    // A refusal the client never saw (it went away mid-body: the parser's 400, our own 4xx) is no outcome to replay.
    const clientGone = request.raw.socket?.destroyed === true && status >= 400
    const recordable = status < 500 && !clientGone && !NOT_RECORDED.has(status) && (typeof body === 'string' || Buffer.isBuffer(body)) && body.length <= MAX_RECORDED_BYTES
    try {
      if (recordable) {
        const headers: Record<string, string> = {}
        for (const name of RECORDED_HEADERS) {
          const value = reply.getHeader(name)
          if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : String(value)
        }
        const text = typeof body === 'string' ? { body } : { body: body.toString('base64'), bodyEncoding: 'base64' as const }
        await store.complete(entry.scope, entry.owner, { status, headers, ...text })
      } else {
        await store.release(entry.scope, entry.owner)
      }
    } catch (error) {
      // The answer still goes out; a repeat finds the write by its commit token once the lease lapses.
      recordBestEffortFailure('idempotency-record', error, request.log)
    }
    return payload
  })

  // onSend runs for every answer, also to a client that went away mid-request (the handler still finishes first);
  // this only catches an answer that bypassed it (a hijacked reply).
  app.addHook('onResponse', async (request) => { letGo(request) })
}, { name: 'idempotency', dependencies: ['aws'] })
