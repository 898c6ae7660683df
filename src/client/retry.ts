// Exponential backoff with full jitter for render-store calls: only failures that may pass are tried again.
import { setTimeout as sleep } from 'node:timers/promises'
import { RenderStoreError } from './errors.js'

export interface RetryOptions {
  /** retries after the first attempt (default 3) */
  retries?: number
  /**
   * further waits while the service says the same idempotency key is still running (409 + Retry-After), on top of
   * `retries` (default 10): the first attempt is alive, so waiting for its answer is not a failure
   */
  inProgressRetries?: number
  /** backoff ceiling of the first retry in ms (default 1000) */
  initialDelayMs?: number
  /** growth of the ceiling per retry (default 2) */
  multiplier?: number
  /** largest wait in ms, also caps Retry-After (default 30000) */
  maxDelayMs?: number
  /** told before each wait: the retry number (1-based), the error and the wait */
  onRetry?: (retry: number, error: RenderStoreError, delayMs: number) => void
  /** stops waiting and retrying */
  signal?: AbortSignal
  /** random source in [0, 1), replaceable for tests */
  random?: () => number
}

export const DEFAULT_RETRY = { retries: 3, inProgressRetries: 10, initialDelayMs: 1000, multiplier: 2, maxDelayMs: 30_000 } as const

/** The wait before retry number `retry` (1-based): the server's Retry-After when given, else full jitter. */
export function retryDelayMs (retry: number, error: RenderStoreError, options: RetryOptions = {}): number {
  const initial = options.initialDelayMs ?? DEFAULT_RETRY.initialDelayMs
  const multiplier = options.multiplier ?? DEFAULT_RETRY.multiplier
  const max = options.maxDelayMs ?? DEFAULT_RETRY.maxDelayMs
  if (error.retryAfter !== undefined) return Math.min(error.retryAfter * 1000, max)
  const ceiling = Math.min(max, initial * multiplier ** (retry - 1))
  return Math.floor((options.random ?? Math.random)() * ceiling)
}

/**
 * Runs `attempt` and tries again on what RenderStoreError calls retryable (network errors, 429, 5xx that are not
 * permanent, 409 + Retry-After), waiting with exponential backoff and full jitter (or the server's Retry-After).
 * Anything else, and the last failure, is thrown as it came. A write is safe to retry only when every attempt
 * carries the same Idempotency-Key: the client does that.
 */
export async function withRetry<T> (attempt: (attemptNumber: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const retries = options.retries ?? DEFAULT_RETRY.retries
  const inProgressRetries = options.inProgressRetries ?? DEFAULT_RETRY.inProgressRetries
  let failures = 0
  let waits = 0
  for (let attempts = 1; ; attempts++) {
    try {
      return await attempt(attempts)
    } catch (error) {
      if (!(error instanceof RenderStoreError) || !error.retryable || options.signal?.aborted === true) throw error
      if (error.inProgress) {
        if (waits >= inProgressRetries || retries === 0) throw error
        waits++
      } else {
        if (failures >= retries) throw error
        failures++
      }
      const delay = retryDelayMs(Math.max(1, failures), error, options)
      options.onRetry?.(attempts, error, delay)
      await sleep(delay, undefined, { signal: options.signal })
    }
  }
}
