// What a render-store call can fail with, typed so that callers decide on retry, fallback or escalation.
import type { ProblemDetailsType } from '../../schemas/common.js'

/** An RFC 9457 problem document as the service sends it (application/problem+json), extensions included. */
export type Problem = ProblemDetailsType & Record<string, unknown>

/** A failed render-store call: an HTTP error answer (status >= 400) or, with status 0, a network failure. */
export class RenderStoreError extends Error {
  override name = 'RenderStoreError'
  /** the HTTP status, or 0 when no answer came (connection refused, reset, timeout) */
  readonly status: number
  /** the problem document the service sent, when it sent one */
  readonly problem?: Problem
  /** seconds the service asked to wait (Retry-After), when it said so */
  readonly retryAfter?: number
  /** method and path of the failed call, for messages and logs */
  readonly request: string

  constructor (message: string, options: { status: number, request: string, problem?: Problem, retryAfter?: number, cause?: unknown }) {
    super(message, { cause: options.cause })
    this.status = options.status
    this.request = options.request
    this.problem = options.problem
    this.retryAfter = options.retryAfter
  }

  /** true for failures worth retrying: no answer at all, 429 and 5xx */
  get retryable (): boolean {
    return isRetryableStatus(this.status)
  }

  /** true when no HTTP answer came back */
  get isNetworkError (): boolean {
    return this.status === 0
  }
}

/** Network failures (0), 429 and 5xx may succeed when tried again; any other 4xx will not. */
export function isRetryableStatus (status: number): boolean {
  return status === 0 || status === 429 || status >= 500
}

/** Seconds from a Retry-After header (delta-seconds or an HTTP date), undefined when absent or unreadable. */
export function parseRetryAfter (value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined
  if (/^\d+$/.test(value.trim())) return Number(value.trim())
  const date = Date.parse(value)
  if (Number.isNaN(date)) return undefined
  return Math.max(0, Math.ceil((date - now) / 1000))
}
