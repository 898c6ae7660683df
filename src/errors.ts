/** An error that is the client's answer: it carries its HTTP status and RFC 9457 fields. */
export class HttpProblem extends Error {
  readonly statusCode: number
  readonly title: string
  readonly extensions: Record<string, unknown>
  readonly headers: Record<string, string>
  /** the RFC 9457 `type` URI; about:blank unless the problem has its own (see PROBLEM_BASE) */
  readonly type: string

  constructor (statusCode: number, title: string, detail?: string, options: { extensions?: Record<string, unknown>, headers?: Record<string, string>, type?: string } = {}) {
    super(detail ?? title)
    this.name = 'HttpProblem'
    this.statusCode = statusCode
    this.title = title
    this.extensions = options.extensions ?? {}
    this.headers = options.headers ?? {}
    this.type = options.type ?? 'about:blank'
  }
}

/**
 * Problem types of this service: PROBLEM_BASE + a name, and `/permanent` at the end when repeating the request cannot
 * succeed until someone changes something (the client reads a 5xx whose type ends in /permanent as not retryable).
 */
export const PROBLEM_BASE = 'https://render-store.dev/problems/'

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

/** 5xx answers that say the backend lacks the operation or feature: retrying gets the same answer. */
const NOT_IMPLEMENTED = new Set(['NotImplemented', 'NotImplementedException'])

type SdkFailure = { name?: string, code?: string, message?: string, $metadata?: { httpStatusCode?: number }, $fault?: string, cause?: unknown }

/** True for failures of S3 or DynamoDB that a later retry may cure: network errors, throttling, timeouts, 5xx (not 501). */
export function isDependencyUnavailable (error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false
  const failure = error as SdkFailure
  if (failure.code !== undefined && NETWORK_CODES.has(failure.code)) return true
  if (failure.name !== undefined && THROTTLE_NAMES.has(failure.name)) return true
  if (failure.$metadata !== undefined && !isNotImplemented(failure) && (failure.$fault === 'server' || (failure.$metadata.httpStatusCode ?? 0) >= 500)) return true
  return failure.cause !== undefined && failure.cause !== error && isDependencyUnavailable(failure.cause)
}

function isNotImplemented (failure: SdkFailure): boolean {
  return (failure.name !== undefined && NOT_IMPLEMENTED.has(failure.name)) || failure.$metadata?.httpStatusCode === 501
}

/** What a permanent storage refusal means and what to check, by the error name S3 or DynamoDB gave. */
const PERMANENT_REFUSALS: Array<{ names: string[], slug: string, title: string, check: string }> = [
  {
    names: ['AccessDenied', 'AccessDeniedException', 'AllAccessDisabled', 'AccountProblem', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'ExpiredTokenException', 'InvalidToken', 'UnrecognizedClientException', 'MissingAuthenticationTokenException', 'InvalidSignatureException', 'IncompleteSignatureException', 'InvalidClientTokenId', 'RequestTimeTooSkewed'],
    slug: 'storage-access-denied',
    title: 'Storage access denied',
    check: 'the service\'s AWS credentials, its IAM policy (deploy/ has the one it needs), bucket policies and the KMS key policy, and the clock'
  },
  {
    names: ['NoSuchBucket', 'ResourceNotFoundException'],
    slug: 'storage-missing',
    title: 'Storage not provisioned',
    check: 'that the buckets and table named by AWS_S3_VIDEO_BUCKET, AWS_S3_CODE_BUCKET and AWS_DYNAMODB_TABLE exist in AWS_REGION (npm run setup creates them)'
  },
  {
    names: ['KMS.DisabledException', 'KMS.NotFoundException', 'KMS.KMSInvalidStateException', 'KMS.InvalidKeyUsageException', 'KMS.AccessDeniedException', 'KMSAccessDeniedException', 'KMSDisabledException', 'KMSInvalidStateException', 'KMSNotFoundException'],
    slug: 'storage-encryption-key',
    title: 'Storage encryption key unusable',
    check: 'that AWS_KMS_KEY_ID names an enabled key the service may use (S3_SSE)'
  }
]

/**
 * An S3 or DynamoDB refusal that the same request will get again: a 409 where the stored state changed under the
 * request (a failed precondition or condition), else a 500 whose problem type ends in /permanent, naming the storage
 * error and what to check. Undefined for anything else (network, throttling, 5xx: see isDependencyUnavailable).
 */
export function storageRefusal (error: unknown): HttpProblem | undefined {
  if (typeof error !== 'object' || error === null || isDependencyUnavailable(error)) return undefined
  const failure = error as SdkFailure
  if (failure.$metadata === undefined || failure.name === undefined) return undefined
  const status = failure.$metadata.httpStatusCode
  const code = failure.name
  const storage = { code, status }
  if (code === 'PreconditionFailed' || status === 412 || code === 'ConditionalCheckFailedException' || code === 'TransactionCanceledException') {
    return new HttpProblem(409, 'Conflict', `the stored object or record changed while this request was using it (${code}); nothing was changed: read the current state and repeat the request`, {
      type: `${PROBLEM_BASE}storage-changed`, extensions: { storage }
    })
  }
  if (isNotImplemented(failure)) {
    return permanent('storage-not-implemented', 'Storage feature not available', `the storage backend does not implement an operation this request needs (${code}${status !== undefined ? ` ${status}` : ''})`, 'that AWS_ENDPOINT_URL* point at S3 and DynamoDB (or a backend that implements the feature)', storage)
  }
  const known = PERMANENT_REFUSALS.find((refusal) => refusal.names.includes(code))
  if (known !== undefined) return permanent(known.slug, known.title, `S3 or DynamoDB refused the service's request (${code}${status !== undefined ? ` ${status}` : ''})`, known.check, storage)
  // A missing object or upload (404) is this service's own inconsistency or a race with a delete: left to the caller.
  if (status === 404) return undefined
  if (failure.$fault === 'client' || (status !== undefined && status >= 400 && status < 500)) {
    return permanent('storage-refused', 'Storage refused the request', `S3 or DynamoDB refused the service's request as invalid (${code}${status !== undefined ? ` ${status}` : ''}); repeating it will not help`, 'the service\'s configuration against the backend (S3_SSE and AWS_KMS_KEY_ID, the table\'s key schema, the region); the log has the full storage error', storage)
  }
  return undefined
}

function permanent (slug: string, title: string, detail: string, check: string, storage: { code: string, status?: number }): HttpProblem {
  return new HttpProblem(500, title, `${detail}; check ${check}`, { type: `${PROBLEM_BASE}${slug}/permanent`, extensions: { storage, retryable: false } })
}
