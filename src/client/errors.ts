// What a render-store call can fail with, typed so that callers decide on retry, fallback or escalation.
import type { ProblemDetailsType } from '../../schemas/common.js'

/** An RFC 9457 problem document as the service sends it (application/problem+json), extensions included. */
export type Problem = ProblemDetailsType & Record<string, unknown>

/** A failed render-store call: an HTTP error answer (status >= 400) or, with status 0, a network failure. */
export class RenderStoreError extends Error {
  override name = 'RenderStoreError'
  /** the HTTP status, or 0 when no (whole) answer came (connection refused, reset, timeout, body cut) */
  readonly status: number
  /** the problem document the service sent, when it sent one */
  readonly problem?: Problem
  /** seconds the service asked to wait (Retry-After), when it said so */
  readonly retryAfter?: number
  /** method and path of the failed call, for messages and logs */
  readonly request: string
  /**
   * the Idempotency-Key every attempt of this write carried: calling again with it (option `idempotencyKey`) cannot
   * store twice, whatever the lost attempts did
   */
  readonly idempotencyKey?: string
  private readonly markedPermanent: boolean

  constructor (message: string, options: { status: number, request: string, problem?: Problem, retryAfter?: number, cause?: unknown, idempotencyKey?: string, permanent?: boolean }) {
    super(message, { cause: options.cause })
    this.status = options.status
    this.request = options.request
    this.problem = options.problem
    this.retryAfter = options.retryAfter
    this.idempotencyKey = options.idempotencyKey
    this.markedPermanent = options.permanent === true
  }

  /**
   * True for failures worth retrying: no answer at all, 429, 5xx, and 409 with Retry-After (the same idempotency key
   * is still being worked on); never a failure the service called permanent.
   */
  get retryable (): boolean {
    if (this.permanent) return false
    return isRetryableStatus(this.status) || this.inProgress
  }

  /**
   * True when retrying cannot cure it: 501, a problem whose `type` ends in `/permanent` (or that says
   * `retryable: false`), or whose detail calls it permanent without a Retry-After.
   */
  get permanent (): boolean {
    return this.markedPermanent || isPermanentAnswer(this.status, this.problem, this.retryAfter)
  }

  /** True for "the first request with this Idempotency-Key is still running": 409 with Retry-After. */
  get inProgress (): boolean {
    return this.status === 409 && this.retryAfter !== undefined
  }

  /** true when no HTTP answer came back */
  get isNetworkError (): boolean {
    return this.status === 0
  }
}

/** Network failures (0), 429 and 5xx but 501 may succeed when tried again; any other 4xx will not. */
export function isRetryableStatus (status: number): boolean {
  return status === 0 || status === 429 || (status >= 500 && status !== 501)
}

/** Whether an error answer says retrying is pointless, whatever its status. */
export function isPermanentAnswer (status: number, problem?: Problem, retryAfter?: number): boolean {
  if (status === 501) return true
  if (problem === undefined) return false
  if (typeof problem.type === 'string' && /(^|\/)permanent$/i.test(problem.type)) return true
  if (problem.retryable === false) return true
  return retryAfter === undefined && typeof problem.detail === 'string' && /\bpermanent(ly)?\b/i.test(problem.detail)
}

/** Seconds from a Retry-After header (delta-seconds or an HTTP date), undefined when absent or unreadable. */
export function parseRetryAfter (value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined
  if (/^\d+$/.test(value.trim())) return Number(value.trim())
  const date = Date.parse(value)
  if (Number.isNaN(date)) return undefined
  return Math.max(0, Math.ceil((date - now) / 1000))
}
