/** An error that is the client's answer: it carries its HTTP status and RFC 9457 fields. */
export class HttpProblem extends Error {
  readonly statusCode: number
  readonly title: string
  readonly extensions: Record<string, unknown>
  readonly headers: Record<string, string>

  constructor (statusCode: number, title: string, detail?: string, options: { extensions?: Record<string, unknown>, headers?: Record<string, string> } = {}) {
    super(detail ?? title)
    this.name = 'HttpProblem'
    this.statusCode = statusCode
    this.title = title
    this.extensions = options.extensions ?? {}
    this.headers = options.headers ?? {}
  }
}

export const notFound = (detail: string): HttpProblem => new HttpProblem(404, 'Not Found', detail)
export const conflict = (detail: string, extensions?: Record<string, unknown>): HttpProblem => new HttpProblem(409, 'Conflict', detail, { extensions })
export const badRequest = (detail: string): HttpProblem => new HttpProblem(400, 'Bad Request', detail)
export const payloadTooLarge = (detail: string): HttpProblem => new HttpProblem(413, 'Payload Too Large', detail)
export const unsupportedMediaType = (detail: string): HttpProblem => new HttpProblem(415, 'Unsupported Media Type', detail)
export const preconditionFailed = (detail: string): HttpProblem => new HttpProblem(412, 'Precondition Failed', detail)
export const serviceUnavailable = (detail: string, retryAfterSeconds = 5): HttpProblem =>
  new HttpProblem(503, 'Service Unavailable', detail, { headers: { 'retry-after': String(retryAfterSeconds) } })

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ECONNABORTED', 'UND_ERR_SOCKET'])
const THROTTLE_NAMES = new Set(['ThrottlingException', 'ProvisionedThroughputExceededException', 'RequestLimitExceeded', 'SlowDown', 'TooManyRequestsException', 'ServiceUnavailable', 'InternalError', 'InternalServerError', 'TimeoutError', 'RequestTimeout', 'RequestTimeoutException'])

/** True for failures of S3 or DynamoDB that a later retry may cure: network errors, throttling, 5xx. */
export function isDependencyUnavailable (error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false
  const failure = error as { name?: string, code?: string, $metadata?: { httpStatusCode?: number }, $fault?: string, cause?: unknown }
  if (failure.code !== undefined && NETWORK_CODES.has(failure.code)) return true
  if (failure.name !== undefined && THROTTLE_NAMES.has(failure.name)) return true
  if (failure.$metadata !== undefined && (failure.$fault === 'server' || (failure.$metadata.httpStatusCode ?? 0) >= 500)) return true
  return failure.cause !== undefined && failure.cause !== error && isDependencyUnavailable(failure.cause)
}
