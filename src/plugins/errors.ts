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

/** What one alternative of a union asked for, in words: `"latest"`, `match ^[1-9]…`, `a string`. */
function alternative (issue: Issue): string {
  const params = issue.params as { allowedValue?: unknown, pattern?: string, type?: string }
  if (issue.keyword === 'const') return JSON.stringify(params.allowedValue)
  if (issue.keyword === 'pattern') return `a value matching ${params.pattern ?? ''}`
  if (issue.keyword === 'type') return `of type ${params.type ?? ''}`
  return issue.message ?? 'valid'
}

/**
 * ajv's errors as { path, message } with readable field paths: missing and unknown fields are named, and a union
 * (anyOf) is one message listing what it accepts instead of one raw error per alternative.
 */
function validationErrors (error: FastifyError): Array<{ path: string, message: string }> {
  const issues = error.validation ?? []
  const unions = new Set(issues.filter((issue) => issue.keyword === 'anyOf').map((issue) => issue.instancePath))
  const pathOf = (issue: Issue, field?: string): string => {
    const base = issue.instancePath.replace(/^\//, '').replaceAll('/', '.')
    return [error.validationContext, base, field].filter((part) => part !== undefined && part !== '').join('.')
  }
  const result: Array<{ path: string, message: string }> = []
  for (const issue of issues) {
    const params = issue.params as { missingProperty?: string, additionalProperty?: string }
    if (issue.keyword === 'anyOf') {
      const options = issues.filter((other) => other !== issue && other.instancePath === issue.instancePath && other.keyword !== 'anyOf')
      result.push({ path: pathOf(issue), message: `must be ${options.map(alternative).join(' or ')}` })
    } else if (unions.has(issue.instancePath)) {
      continue
    } else if (params.additionalProperty !== undefined) {
      result.push({ path: pathOf(issue, params.additionalProperty), message: 'is not a known field' })
    } else {
      result.push({ path: pathOf(issue, params.missingProperty), message: issue.message ?? 'is invalid' })
    }
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

  app.setNotFoundHandler(function handleNotFound (request, reply) {
    return send(request, reply, 404, 'Not Found', `No route ${request.method} ${request.url.split('?')[0]}`)
  })
}, { name: 'errors' })
