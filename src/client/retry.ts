// Exponential backoff with full jitter for render-store calls: only failures that may pass are tried again.
import { setTimeout as sleep } from 'node:timers/promises'
import { RenderStoreError } from './errors.js'

export interface RetryOptions {
  /** retries after the first attempt (default 3) */
  retries?: number
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

export const DEFAULT_RETRY = { retries: 3, initialDelayMs: 1000, multiplier: 2, maxDelayMs: 30_000 } as const

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
 * Runs `attempt` and tries again on network errors, 429 and 5xx, waiting with exponential backoff and full jitter
 * (or the server's Retry-After). Anything else, and the last failure, is thrown as it came.
 */
export async function withRetry<T> (attempt: (attemptNumber: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const retries = options.retries ?? DEFAULT_RETRY.retries
  for (let retry = 0; ; retry++) {
    try {
      return await attempt(retry + 1)
    } catch (error) {
      if (!(error instanceof RenderStoreError) || !error.retryable || retry >= retries || options.signal?.aborted === true) throw error
      const delay = retryDelayMs(retry + 1, error, options)
      options.onRetry?.(retry + 1, error, delay)
      await sleep(delay, undefined, { signal: options.signal })
    }
  }
}
