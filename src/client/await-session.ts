// Waiting for an upload session the service is still completing (its complete answered 202).
import { setTimeout as sleep } from 'node:timers/promises'
import { RenderStoreError, parseRetryAfter } from './errors.js'
import { DEFAULT_RETRY, type RetryOptions } from './retry.js'
import type { CallOptions } from './options.js'
import type { Answer, Transport } from './transport.js'
import type { UploadSessionState } from './types.js'

/**
 * Polls a session that is being completed (honouring Retry-After, else a growing interval) while it reads
 * `uploading`. Returns when it is completed, or pending again (the replica completing it died: the next complete takes
 * it over); throws when it ended failed, aborted or expired, or when the wait passed its deadline.
 */
export async function awaitSession (http: Transport, sessionPath: string, accepted: Answer, deadline: number, options: CallOptions, clientRetry?: RetryOptions): Promise<void> {
  const policy: RetryOptions = { ...clientRetry, ...(options.retry === false ? {} : options.retry) }
  const initial = policy.initialDelayMs ?? DEFAULT_RETRY.initialDelayMs
  const max = policy.maxDelayMs ?? DEFAULT_RETRY.maxDelayMs
  const request = `GET ${sessionPath}`
  let state = JSON.parse(accepted.text) as UploadSessionState
  let retryAfter = parseRetryAfter(accepted.headers.get('retry-after'))
  let poll = 0
  let polled = 0
  do {
    // The session is read at least once after a 202, however short the wait allowed.
    if (polled > 0 && Date.now() >= deadline) {
      throw new RenderStoreError(`${request}: still ${state.status} after waiting; complete again later with idempotency key ${String(options.idempotencyKey)}`,
        { status: 202, request, retryAfter, idempotencyKey: options.idempotencyKey })
    }
    const delay = Math.min(max, retryAfter !== undefined ? retryAfter * 1000 : initial * 1.5 ** poll++, Math.max(0, deadline - Date.now()))
    await sleep(delay, undefined, { signal: options.signal })
    const answer = await http.call({ method: 'GET', path: sessionPath }, { signal: options.signal, retry: options.retry })
    state = JSON.parse(answer.text) as UploadSessionState
    retryAfter = parseRetryAfter(answer.headers.get('retry-after'))
    polled++
  } while (state.status === 'uploading')
  if (state.status !== 'completed' && state.status !== 'pending') {
    const reason = (state as { failureReason?: string }).failureReason ?? state.lastError
    throw new RenderStoreError(`${request}: upload ${state.status}${reason !== undefined ? `: ${reason}` : ''}`, { status: 409, request, permanent: true, idempotencyKey: options.idempotencyKey })
  }
}
