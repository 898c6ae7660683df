// The lease and status moves of an upload session: progress writes that renew the lease, renewing while a replica
// works on a session, taking a session over (begin), and applying a status change (finish). Each function takes the
// SessionContext that createUploadSessions (sessions.ts) builds.
import { randomUUID } from 'node:crypto'
import { UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb'
import { conflict } from '../errors.js'
import { recordBestEffortFailure } from '../http/metrics.js'
import { isConditionFailure, itemBehindFailedCondition, setClauses, uploadSortKey, videoKey, writeIf } from '../table/video-item.js'
import {
  SessionBusy, TERMINAL_UPLOAD_STATUSES, toSession, type BeginOptions, type UploadSession, type UploadSessionPatch
} from './sessions.js'

const PROGRESS_INTERVAL_MS = 1000

/** What the session functions work with (built once by createUploadSessions). */
export interface SessionContext {
  ddb: DynamoDBDocumentClient
  table: string
  leaseMs: number
  progressState: Map<string, { lastWriteAt: number, writing: boolean }>
  log?: { warn: (object: object, message: string) => void }
}

export const sessionKey = (session: { projectId: string, videoId: string, uploadId: string }): { pk: string, sk: string } =>
  ({ pk: videoKey(session.projectId, session.videoId).pk, sk: uploadSortKey(session.uploadId) })

/** The condition that a write is still this holder's lease (sessions without an owner predate leases). */
function ownerCondition (session: UploadSession, values: Record<string, unknown>): string {
  if (session.leaseOwner === undefined) return ''
  values[':owner'] = session.leaseOwner
  return ' AND (attribute_not_exists(leaseOwner) OR leaseOwner = :owner)'
}

/**
 * Records bytes received, at most about once a second per upload and never two writes at once; never throws
 * (progress is advisory: a failed write must not fail the upload, it is logged and counted). A session no longer
 * pending or uploading under this lease is left as it is. The final count is written by finish(). Each write also
 * renews the lease.
 */
export async function progress (ctx: SessionContext, session: UploadSession, bytesUploaded: number): Promise<void> {
  session.bytesUploaded = bytesUploaded
  const state = ctx.progressState.get(session.uploadId) ?? { lastWriteAt: 0, writing: false }
  ctx.progressState.set(session.uploadId, state)
  const now = Date.now()
  if (state.writing || now - state.lastWriteAt < PROGRESS_INTERVAL_MS) return
  state.writing = true
  state.lastWriteAt = now
  const values: Record<string, unknown> = { ':bytes': bytesUploaded, ':uploading': 'uploading', ':pending': 'pending', ':now': new Date(now).toISOString(), ':lease': now + ctx.leaseMs }
  const owner = ownerCondition(session, values)
  await writeIf(ctx.ddb, new UpdateCommand({
    TableName: ctx.table,
    Key: sessionKey(session),
    UpdateExpression: 'SET bytesUploaded = :bytes, #status = :uploading, updatedAt = :now, leaseUntil = :lease',
    ConditionExpression: `#status IN (:pending, :uploading)${owner}`,
    ExpressionAttributeNames: { '#status': 'status' },
    ExpressionAttributeValues: values
  })).then((written) => { if (written) session.leaseUntil = now + ctx.leaseMs }, (error: unknown) => { recordBestEffortFailure('upload-progress', error, ctx.log) })
    .finally(() => { state.writing = false })
}

/** Renews the lease once; false when the session is no longer uploading under this holder's lease. */
export async function renew (ctx: SessionContext, session: UploadSession): Promise<boolean> {
  const until = Date.now() + ctx.leaseMs
  const values: Record<string, unknown> = { ':uploading': 'uploading', ':lease': until }
  const owner = ownerCondition(session, values)
  const kept = await writeIf(ctx.ddb, new UpdateCommand({
    TableName: ctx.table,
    Key: sessionKey(session),
    UpdateExpression: 'SET leaseUntil = :lease',
    ConditionExpression: `#status = :uploading${owner}`,
    ExpressionAttributeNames: { '#status': 'status' },
    ExpressionAttributeValues: values
  }))
  if (kept) session.leaseUntil = until
  return kept
}

/**
 * Keeps the lease of an uploading session alive while this replica works on it: renews every lease/3 ms until
 * the returned function is called (call it in a finally). Renewal errors are logged and retried at the next tick;
 * when the session stops being this holder's (finished, failed, taken over) renewing stops and onLost is called.
 */
export function keepAlive (ctx: SessionContext, session: UploadSession, options: { onLost?: () => void } = {}): () => void {
  let stopped = false
  let renewing = false
  const timer = setInterval(() => {
    if (stopped || renewing) return
    renewing = true
    renew(ctx, session).then((kept) => {
      if (kept || stopped) return
      stop()
      options.onLost?.()
    }, (error: unknown) => { recordBestEffortFailure('upload-lease-renew', error, ctx.log) }).finally(() => { renewing = false })
  }, Math.max(1, Math.floor(ctx.leaseMs / 3)))
  timer.unref()
  const stop = (): void => { stopped = true; clearInterval(timer) }
  return stop
}

/**
 * Moves a session to uploading under a fresh lease held by the caller, in one conditional update: from one of
 * the expected statuses (default pending), or, for a direct session, from uploading whose lease lapsed (its
 * replica died: the caller takes over and must look for that replica's commit). A live lease elsewhere is a
 * SessionBusy (409, Retry-After, leaseUntil); any other state a 409 naming it.
 */
export async function begin (ctx: SessionContext, session: UploadSession, options: BeginOptions = {}): Promise<{ session: UploadSession, takenOver: boolean }> {
  const expect = options.expect ?? ['pending']
  const now = Date.now()
  const key = sessionKey(session)
  const extra = setClauses(options.attributes ?? {})
  const names: Record<string, string> = { '#status': 'status', '#mode': 'mode', ...extra.names }
  const values: Record<string, unknown> = {
    ':uploading': 'uploading', ':direct': 'direct', ':now_ms': now, ':now_s': Math.floor(now / 1000),
    ':lease': now + ctx.leaseMs, ':owner': randomUUID(), ':updated': new Date(now).toISOString(), ...extra.values
  }
  const allowed = expect.map((status, index) => { values[`:expect${index}`] = status; return `:expect${index}` })
  const assignments = ['#status = :uploading', 'leaseUntil = :lease', 'leaseOwner = :owner', 'updatedAt = :updated', ...extra.clauses]
  const fromExpected = allowed.length === 0 ? '' : `#status IN (${allowed.join(', ')}) OR `
  try {
    const { Attributes } = await ctx.ddb.send(new UpdateCommand({
      TableName: ctx.table,
      Key: key,
      UpdateExpression: `SET ${assignments.join(', ')}`,
      ConditionExpression: `attribute_exists(sk) AND expiresAtEpoch >= :now_s AND (${fromExpected}(#status = :uploading AND #mode = :direct AND leaseUntil < :now_ms))`,
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
      ReturnValues: 'ALL_OLD',
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD'
    }))
    const old = Attributes ?? {}
    const updated = { ...old, status: 'uploading', leaseUntil: now + ctx.leaseMs, leaseOwner: values[':owner'], updatedAt: values[':updated'], ...options.attributes }
    return { session: toSession(updated, now), takenOver: old.status === 'uploading' }
  } catch (error) {
    if (!isConditionFailure(error)) throw error
    const old = await itemBehindFailedCondition(ctx.ddb, ctx.table, key, error)
    if (old === undefined) throw conflict(`upload ${session.uploadId} does not exist`, { status: null })
    if (old.status === 'uploading' && typeof old.leaseUntil === 'number' && old.leaseUntil >= now) throw new SessionBusy(session.uploadId, old.leaseUntil, now)
    const seen = toSession(old, now)
    throw conflict(`upload ${session.uploadId} is ${seen.status}, not ${expect.join(' or ')}`, { status: seen.status })
  }
}

/** Applies a status change (and the final byte count, error, render version); returns the stored session. */
export async function finish (ctx: SessionContext, session: UploadSession, patch: UploadSessionPatch): Promise<UploadSession> {
  const now = Date.now()
  const entering = patch.status === 'uploading'
  const owner = entering ? randomUUID() : undefined
  const assignments: Record<string, unknown> = {
    ...patch.attributes,
    updatedAt: new Date(now).toISOString(),
    ...Object.fromEntries(Object.entries({
      status: patch.status,
      bytesUploaded: patch.bytesUploaded,
      totalBytes: patch.totalBytes,
      lastError: patch.lastError,
      failureReason: patch.failureReason,
      renderVersion: patch.renderVersion,
      retryCount: patch.retryCount,
      // whoever moves a session to uploading holds a fresh lease on it
      leaseUntil: entering ? now + ctx.leaseMs : undefined,
      leaseOwner: owner
    }).filter(([, value]) => value !== undefined))
  }
  const { clauses, names, values } = setClauses(assignments)
  let condition = 'attribute_exists(sk)'
  if (patch.expectStatus !== undefined) {
    names['#status'] = 'status'
    const allowed = patch.expectStatus.map((status, index) => { values[`:expect${index}`] = status; return `:expect${index}` })
    condition += ` AND #status IN (${allowed.join(', ')})`
  }
  try {
    const { Attributes } = await ctx.ddb.send(new UpdateCommand({
      TableName: ctx.table,
      Key: sessionKey(session),
      UpdateExpression: `SET ${clauses.join(', ')}`,
      ConditionExpression: condition,
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
      ReturnValues: 'ALL_NEW'
    }))
    if (patch.status !== undefined && TERMINAL_UPLOAD_STATUSES.includes(patch.status)) ctx.progressState.delete(session.uploadId)
    if (entering) Object.assign(session, { leaseUntil: assignments.leaseUntil, leaseOwner: owner })
    return toSession(Attributes ?? {}, now)
  } catch (error) {
    if (isConditionFailure(error)) throw conflict(`upload ${session.uploadId} is not in a state that allows this (expected ${patch.expectStatus?.join(' or ') ?? 'an existing session'})`)
    throw error
  }
}
