// Who writes a version: the commit token its item carries, and what a caller must not do when the outcome is unknown.
import { HttpProblem } from '../errors.js'
import type { VersionKind } from '../table/keys.js'

/** Who is writing: the token its version item carries, and whether that token may have committed already. */
export interface WriteIdentity {
  token: string
  /**
   * true for a repeat (same Idempotency-Key after a failure, a taken-over request, a retried complete); set while a
   * write runs when its idempotency lease could not be renewed (another execution may take it over)
   */
  mayExist: boolean
  /** epoch ms: no commit with this token is older than this (bounds the search for it) */
  since?: number
}

/** A fresh write's identity; `since` bounds any later search for its token to what was written after it began. */
export const newIdentity = (token: string): WriteIdentity => ({ token, mayExist: false, since: Date.now() })

/** A 503 whose write may still land: the caller must not clean up anything that write may reference. */
export class OutcomeUnknown extends HttpProblem {
  constructor (detail: string) {
    super(503, 'Service Unavailable', detail, { headers: { 'retry-after': '5' } })
  }
}

export const unknownOutcome = (kind: VersionKind): OutcomeUnknown =>
  new OutcomeUnknown(`storage did not confirm the ${kind.toLowerCase()} version in time; it may still be stored: repeat the request with the same Idempotency-Key to learn the outcome`)
