import fp from 'fastify-plugin'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { STATUS_CODES } from 'node:http'
import { HttpProblem, isDependencyUnavailable, storageRefusal } from '../errors.js'

const PROBLEM_TYPE = 'about:blank'
const MALFORMED_MULTIPART = /^Multipart: |unexpected end of multipart data$/i

function send (request: FastifyRequest, reply: FastifyReply, status: number, title: string, detail: string | undefined, extensions: Record<string, unknown> = {}, type = PROBLEM_TYPE): FastifyReply {
  return reply
    .code(status)
    .type('application/problem+json')
    .send({ type, title, status, detail, instance: request.url, ...extensions })
}

type Issue = NonNullable<FastifyError['validation']>[number]

type SchemaLike = { const?: unknown, type?: string, pattern?: string, properties?: Record<string, unknown>, required?: string[], anyOf?: SchemaLike[], enum?: unknown[] }

/** One alternative of a union, in words: `"latest"`, `a string matching ^[1-9]…`, `{ mode, retainUntil }`. */
function describeSchema (schema: SchemaLike): string {
  if ('const' in schema) return JSON.stringify(schema.const)
  if (schema.enum !== undefined) return schema.enum.map((value) => JSON.stringify(value)).join(' or ')
  if (schema.anyOf !== undefined) return schema.anyOf.map(describeSchema).join(' or ')
  if (schema.type === 'object' && schema.properties !== undefined) {
    const required = new Set(schema.required ?? [])
    return `{ ${Object.keys(schema.properties).map((name) => required.has(name) ? name : `${name}?`).join(', ')} }`
  }
  if (schema.pattern !== undefined) return `a ${schema.type ?? 'value'} matching ${schema.pattern}`
  if (schema.type !== undefined) return `${/^[aeiou]/.test(schema.type) ? 'an' : 'a'} ${schema.type}`
  return 'a valid value'
}

/** What a union (anyOf) accepts, from its schema (ajv's verbose errors carry it). */
function unionMessage (issue: Issue): string {
  const schema = (issue as { schema?: unknown }).schema
  const alternatives = Array.isArray(schema) ? schema as SchemaLike[] : []
  if (alternatives.length === 0) return 'must match one of the accepted forms'
  const described = alternatives.map(describeSchema)
  return described.length <= 2 ? `must be ${described.join(' or ')}` : `must be one of: ${described.join(', ')}`
}

/** ajv's own message, without the repeated subject (ajv says "must be equal to one of the allowed values"). */
function issueMessage (issue: Issue): string {
  const params = issue.params as { allowedValue?: unknown, allowedValues?: unknown[] }
  if (issue.keyword === 'const') return `must be ${JSON.stringify(params.allowedValue)}`
  if (issue.keyword === 'enum' && params.allowedValues !== undefined) return `must be one of: ${params.allowedValues.map((value) => JSON.stringify(value)).join(', ')}`
  if (issue.keyword === 'required') return 'is required'
  return issue.message ?? 'is invalid'
}

/**
 * ajv's errors as { path, message } with readable field paths: missing and unknown fields are named, and a union
 * (anyOf) is one message listing what it accepts instead of one raw error per alternative.
 */
function validationErrors (error: FastifyError): Array<{ path: string, message: string }> {
  const issues = error.validation ?? []
  // A union's own error stands for every error of its alternatives (at any depth): one message, not one per branch.
  const unions = issues.filter((issue) => issue.keyword === 'anyOf').map((issue) => `${issue.schemaPath}/`)
  const insideUnion = (issue: Issue): boolean => unions.some((prefix) => issue.schemaPath.startsWith(prefix))
  const pathOf = (issue: Issue, field?: string): string => {
    const base = issue.instancePath.replace(/^\//, '').replaceAll('/', '.')
    return [error.validationContext, base, field].filter((part) => part !== undefined && part !== '').join('.')
  }
  const result: Array<{ path: string, message: string }> = []
  const seen = new Set<string>()
  const add = (path: string, message: string): void => {
    if (seen.has(`${path}\u0000${message}`)) return
    seen.add(`${path}\u0000${message}`)
    result.push({ path, message })
  }
  for (const issue of issues) {
    if (insideUnion(issue)) continue
    const params = issue.params as { missingProperty?: string, additionalProperty?: string }
    if (issue.keyword === 'anyOf') add(pathOf(issue), unionMessage(issue))
    else if (params.additionalProperty !== undefined) add(pathOf(issue, params.additionalProperty), 'is not a known field')
    else add(pathOf(issue, params.missingProperty), issueMessage(issue))
  }
  return result
}

/** One error handler and one not-found handler for the whole app, both answering RFC 9457 problem+json. */
export default fp(async function errorsPlugin (app) {
  app.setErrorHandler(function handleError (error: FastifyError, request, reply) {
    if (error instanceof HttpProblem) {
      reply.headers(error.headers)
      if (error.statusCode >= 500) request.log.warn({ err: error }, error.message)
      return send(request, reply, error.statusCode, error.title, error.message, error.extensions, error.type)
    }
    if (error.validation !== undefined) {
      const errors = validationErrors(error)
      return send(request, reply, 400, 'Bad Request', `Invalid ${error.validationContext ?? 'request'}: ${errors.map((issue) => `${issue.path} ${issue.message}`).join('; ')}`, { errors })
    }
    // busboy throws plain errors for a missing boundary or a body that ends early: the client's fault.
    if (MALFORMED_MULTIPART.test(error.message)) return send(request, reply, 400, 'Bad Request', `Malformed multipart body: ${error.message}`)
    if (isDependencyUnavailable(error)) {
      request.log.error({ err: error }, 'storage dependency unavailable')
      reply.header('retry-after', '5')
      return send(request, reply, 503, 'Service Unavailable', 'Storage is temporarily unavailable; retry later.')
    }
    // A refusal S3 or DynamoDB will repeat (access denied, not implemented, invalid): never a 503 inviting retries.
    const refusal = storageRefusal(error)
    if (refusal !== undefined) {
      request.log.error({ err: error }, `storage refused: ${refusal.message}`)
      return send(request, reply, refusal.statusCode, refusal.title, refusal.message, refusal.extensions, refusal.type)
    }
    const status = error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500
    if (status >= 500) {
      request.log.error({ err: error }, 'unhandled error')
      return send(request, reply, status, STATUS_CODES[status] ?? 'Internal Server Error', 'An unexpected error occurred; the request id identifies it in the logs.')
    }
    // Fastify's own 4xx errors (bad JSON, body too large, unsupported type) carry safe messages.
    return send(request, reply, status, STATUS_CODES[status] ?? 'Error', error.message)
  })

  // RFC 9110: a 304 or 204 has no body; a schema of `null` would otherwise send "null" as JSON.
  app.addHook('onSend', async (_request, reply, payload) => {
    if (reply.statusCode !== 304 && reply.statusCode !== 204) return payload
    reply.removeHeader('content-type')
    reply.removeHeader('content-length')
    return null
  })

  app.setNotFoundHandler(function handleNotFound (request, reply) {
    return send(request, reply, 404, 'Not Found', `No route ${request.method} ${request.url.split('?')[0]}`)
  })
}, { name: 'errors' })

/**
 * Errors the router raises before any route or hook runs (Fastify's frameworkErrors): a malformed percent-encoding
 * (400) or a path segment over the longest id (414), answered as problem+json like everything else. The raw URL is
 * not echoed: it is what was malformed.
 */
export function frameworkErrorHandler (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const status = error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 414 : error.code === 'FST_ERR_ASYNC_CONSTRAINT' ? 500 : 400
  const detail = status === 414
    ? 'A path segment is longer than the service accepts (ids are at most 128 characters).'
    : status === 400 ? 'The URL is not validly percent-encoded (a % must be followed by two hex digits of UTF-8).' : 'The request could not be routed.'
  const body = JSON.stringify({ type: PROBLEM_TYPE, title: STATUS_CODES[status] ?? 'Bad Request', status, detail })
  reply.raw.writeHead(status, { 'content-type': 'application/problem+json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'x-request-id': request.id })
  reply.raw.end(body)
}
