// S3 Object Lock for code objects: only where the bucket has it enabled; everywhere else a 409 that says so.
import { GetObjectLockConfigurationCommand, GetObjectRetentionCommand, PutObjectLegalHoldCommand, PutObjectRetentionCommand, type S3Client } from '@aws-sdk/client-s3'
import { badRequest, conflict, isDependencyUnavailable } from '../errors.js'
import type { CodeLockRequestType, CodeLockState as CodeLockStateSchema } from '../../schemas/code.js'
import type { Static } from 'typebox'

/** The lock recorded on a version (the API's CodeLockState). */
export type CodeLockState = Static<typeof CodeLockStateSchema>

/** True when the bucket has Object Lock enabled; a backend that lacks the API (local S3) counts as not enabled. */
export async function bucketHasObjectLock (s3: S3Client, bucket: string): Promise<boolean> {
  try {
    const answer = await s3.send(new GetObjectLockConfigurationCommand({ Bucket: bucket }))
    return answer.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled'
  } catch (error) {
    if (isDependencyUnavailable(error) && (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== 501) throw error
    return false
  }
}

/** Refuses a lock request with a 409 (nothing changed) unless the bucket supports it; checks the date is ahead. */
export async function assertLockable (s3: S3Client, bucket: string, request: CodeLockRequestType): Promise<void> {
  if ('retainUntil' in request && !(Date.parse(request.retainUntil) > Date.now())) {
    throw badRequest('retainUntil must be a time in the future')
  }
  if (!await bucketHasObjectLock(s3, bucket)) {
    throw conflict(`the code bucket ${bucket} does not have S3 Object Lock enabled, so versions cannot be locked; nothing was changed`)
  }
}

/** The lock as it will be recorded on the version after `request` is applied to `current`. */
export function nextLockState (current: CodeLockState | undefined, request: CodeLockRequestType): CodeLockState {
  if ('legalHold' in request) return { ...current, legalHold: request.legalHold }
  return { ...current, mode: request.mode, retainUntil: new Date(request.retainUntil).toISOString() }
}

export function isLocked (lock: CodeLockState | undefined): boolean {
  if (lock === undefined) return false
  return lock.legalHold === true || (lock.retainUntil !== undefined && Date.parse(lock.retainUntil) > Date.now())
}

/**
 * The rule S3 applies to a retention already in place, when `request` breaks it: without bypassing governance (this
 * service never does), a retention can only be extended, in the same mode. Undefined when the request keeps it.
 */
export function retentionRuleBroken (current: { mode?: string, retainUntil?: string }, request: { mode: string, retainUntil: string }): string | undefined {
  if (current.retainUntil === undefined || !(Date.parse(current.retainUntil) > Date.now())) return undefined
  if (current.mode !== undefined && current.mode !== request.mode) {
    return `its mode cannot change from ${current.mode} to ${request.mode} while it lasts`
  }
  if (Date.parse(request.retainUntil) < Date.parse(current.retainUntil)) {
    return `its date cannot move earlier than ${new Date(current.retainUntil).toISOString()}`
  }
  return undefined
}

/** Applies retention or a legal hold to an existing object (the bucket was checked first). */
export async function applyObjectLock (s3: S3Client, bucket: string, key: string, request: CodeLockRequestType): Promise<void> {
  if ('legalHold' in request) {
    await s3.send(new PutObjectLegalHoldCommand({ Bucket: bucket, Key: key, LegalHold: { Status: request.legalHold ? 'ON' : 'OFF' } }))
    return
  }
  try {
    await s3.send(new PutObjectRetentionCommand({
      Bucket: bucket,
      Key: key,
      Retention: { Mode: request.mode, RetainUntilDate: new Date(request.retainUntil) },
      BypassGovernanceRetention: false
    }))
  } catch (error) {
    // S3 refuses (403 AccessDenied on AWS and Ceph) to shorten or weaken a retention: that is a conflict with the
    // version's current lock, not a failure of the service. Any other refusal (IAM, say) goes on as it is.
    if (isDependencyUnavailable(error)) throw error
    const current = await s3.send(new GetObjectRetentionCommand({ Bucket: bucket, Key: key })).then(
      ({ Retention }) => ({ mode: Retention?.Mode, retainUntil: Retention?.RetainUntilDate?.toISOString() }),
      () => undefined)
    const broken = current === undefined ? undefined : retentionRuleBroken(current, request)
    if (current === undefined || broken === undefined) throw error
    throw conflict(
      `S3 Object Lock refused the change: the version is retained in ${current.mode ?? 'an unknown'} mode until ${current.retainUntil ?? '?'}, and a retention can only be extended in the same mode (${broken}); nothing was changed`,
      { rule: 'object-lock-retention-only-extends', currentLock: current })
  }
}

/** The PutObject parameters that lock an object as it is written. */
export function objectLockParameters (request: CodeLockRequestType | undefined): Record<string, unknown> {
  if (request === undefined) return {}
  if ('legalHold' in request) return { ObjectLockLegalHoldStatus: request.legalHold ? 'ON' : 'OFF' }
  return { ObjectLockMode: request.mode, ObjectLockRetainUntilDate: new Date(request.retainUntil) }
}
