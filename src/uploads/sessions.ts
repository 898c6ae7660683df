// Upload sessions: one DynamoDB item per upload (proxied or direct), so any replica can report its progress.
import { randomUUID } from 'node:crypto'
import { DeleteCommand, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb'
import type { AwsClients } from '../aws/clients.js'
import type { Config } from '../config.js'
import { HttpProblem, conflict, isDependencyUnavailable } from '../errors.js'
import { ensureVideoRecord, isConditionFailure, itemBehindFailedCondition, uploadSortKey, videoKey } from '../table/video-item.js'

export type UploadMode = 'proxied' | 'direct'
import type { UploadStatus } from '../../schemas/common.js'
export type { UploadStatus }
export const TERMINAL_UPLOAD_STATUSES: readonly UploadStatus[] = ['completed', 'failed', 'aborted', 'expired']

export interface UploadSession {
  uploadId: string
  projectId: string
  videoId: string
  mode: UploadMode
  status: UploadStatus
  bytesUploaded: number
  /** absent for proxied uploads of unknown length */
  totalBytes?: number
  contentType: string
  createdAt: string
  updatedAt: string
  lastError?: string
  retryCount: number
  renderVersion?: number
  /** why a failed session failed, where a word says more than lastError: 'abandoned' (its replica stopped) */
  failureReason?: string
  /** while status is uploading: epoch ms until which the replica working on it has promised to renew this */
  leaseUntil?: number
  /** which execution holds the lease (renewals by anyone else are refused) */
  leaseOwner?: string
  /** TTL: DynamoDB deletes the item some time after this epoch second */
  expiresAtEpoch: number
  /** further attributes a flow keeps on its session (direct uploads: key, parts, sha256, ...) */
  [attribute: string]: unknown
}

export interface CreateUploadSessionInput {
  projectId: string
  videoId: string
  mode: UploadMode
  contentType: string
  totalBytes?: number
  uploadId?: string
  status?: 'pending' | 'uploading'
  /** how long the session item is kept; default 7 days */
  ttlSeconds?: number
  /** extra attributes stored on the item */
  attributes?: Record<string, unknown>
}

export interface UploadSessionPatch {
  status?: UploadStatus
  bytesUploaded?: number
  totalBytes?: number
  lastError?: string
  failureReason?: string
  renderVersion?: number
  retryCount?: number
  attributes?: Record<string, unknown>
  /** only apply when the stored status is one of these; otherwise 409 */
  expectStatus?: readonly UploadStatus[]
}

const DEFAULT_TTL_SECONDS = 7 * 24 * 3600
const PROGRESS_INTERVAL_MS = 1000
const SESSION_KEYS = new Set(['pk', 'sk'])
export const DEFAULT_UPLOAD_LEASE_MS = 30_000
/** What a proxied session whose lease lapsed reads as its lastError. */
export const ABANDONED_ERROR = 'the replica receiving this upload stopped before it finished (its lease lapsed); upload again'
/** What a direct session whose completing replica stopped reads as its lastError. */
export const INTERRUPTED_COMPLETE_ERROR = 'the replica completing this upload stopped before it finished (its lease lapsed); complete again'

/** What the caller of create() needs to undo a session that must leave nothing behind (413 mid-stream). */
interface Undo { previousUploadId?: string, createdVideo: boolean }


/**
 * A failure after which the write certainly did not happen: the service refused it as such (validation, access,
 * a condition). Network errors, timeouts, throttling and 5xx may hide an attempt that landed.
 */
const isDefiniteFailure = (error: unknown): boolean => {
  const failure = error as { $fault?: string, $metadata?: { httpStatusCode?: number } }
  return !isDependencyUnavailable(error) && (failure.$fault === 'client' || ((failure.$metadata?.httpStatusCode ?? 0) >= 400 && (failure.$metadata?.httpStatusCode ?? 0) < 500))
}

/** The lease length the configuration asks for (UPLOAD_LEASE_MS). */
export const uploadLeaseMsOf = (config: Config): number => (config as { uploadLeaseMs?: number }).uploadLeaseMs ?? DEFAULT_UPLOAD_LEASE_MS


/** True when a stored session is uploading and nobody has renewed its lease in time. */
export function leaseLapsed (item: Record<string, unknown>, now = Date.now()): boolean {
  return item.status === 'uploading' && typeof item.leaseUntil === 'number' && item.leaseUntil < now
}

/**
 * A stored item as every reader sees it. Two states are derived, not stored: TTL deletion is lazy, so an open
 * session past its expiry reads expired; an uploading session whose lease lapsed reads failed/abandoned (proxied:
 * the bytes went with the replica) or pending again (direct: the bytes are in S3, complete may be called again).
 */
export function toSession (item: Record<string, unknown>, now = Date.now()): UploadSession {
  const session = Object.fromEntries(Object.entries(item).filter(([name]) => !SESSION_KEYS.has(name))) as UploadSession
  // An uploading session whose lease is live is being worked on (a long verify may outlast its completeBy): not expired.
  const working = session.status === 'uploading' && typeof session.leaseUntil === 'number' && session.leaseUntil >= now
  if (!TERMINAL_UPLOAD_STATUSES.includes(session.status) && session.expiresAtEpoch * 1000 < now && !working) {
    session.status = 'expired'
  } else if (leaseLapsed(session, now)) {
    if (session.mode === 'direct') {
      session.status = 'pending'
      session.lastError = INTERRUPTED_COMPLETE_ERROR
    } else {
      session.status = 'failed'
      session.failureReason = 'abandoned'
      session.lastError = ABANDONED_ERROR
    }
  }
  return session
}

/** A session held by a live lease elsewhere: 409 with Retry-After and leaseUntil (epoch ms) for the caller. */
export class SessionBusy extends HttpProblem {
  readonly leaseUntil: number
  constructor (uploadId: string, leaseUntil: number, now = Date.now()) {
    const retryAfterSeconds = Math.max(1, Math.ceil((leaseUntil - now) / 1000))
    super(409, 'Conflict', `upload ${uploadId} is being worked on by another request; retry after ${new Date(leaseUntil).toISOString()}`, {
      extensions: { status: 'uploading', leaseUntil: new Date(leaseUntil).toISOString() },
      headers: { 'retry-after': String(retryAfterSeconds) }
    })
    this.leaseUntil = leaseUntil
  }
}

export interface BeginOptions {
  /** the stored statuses that may begin (default: pending); an uploading one whose lease lapsed always may (direct only) */
  expect?: readonly UploadStatus[]
  /** further attributes set in the same update */
  attributes?: Record<string, unknown>
}

export function createUploadSessions ({ aws, config }: { aws: AwsClients, config: Config }) {
  const { ddb } = aws
  const table = config.table
  const leaseMs = uploadLeaseMsOf(config)
  const progressState = new Map<string, { lastWriteAt: number, writing: boolean }>()
  const undoState = new WeakMap<UploadSession, Undo>()
  const sessionKey = (session: { projectId: string, videoId: string, uploadId: string }): { pk: string, sk: string } =>
    ({ pk: videoKey(session.projectId, session.videoId).pk, sk: uploadSortKey(session.uploadId) })

  /** The stored item, consistently read (a condition failure's ALL_OLD where the backend returns it, else a GetItem). */
  const storedItem = async (key: { pk: string, sk: string }, error?: unknown): Promise<Record<string, unknown> | undefined> =>
    await itemBehindFailedCondition(ddb, table, key, error)

  /** Stores a new session and points the video record's latestUploadId at it (creating the record if missing). */
  async function create (input: CreateUploadSessionInput): Promise<UploadSession> {
    const now = new Date()
    const nowIso = now.toISOString()
    const status = input.status ?? 'pending'
    const session: UploadSession = {
      ...input.attributes,
      uploadId: input.uploadId ?? randomUUID(),
      projectId: input.projectId,
      videoId: input.videoId,
      mode: input.mode,
      status,
      bytesUploaded: 0,
      ...(input.totalBytes !== undefined ? { totalBytes: input.totalBytes } : {}),
      contentType: input.contentType,
      createdAt: nowIso,
      updatedAt: nowIso,
      retryCount: 0,
      ...(status === 'uploading' ? { leaseUntil: now.getTime() + leaseMs, leaseOwner: randomUUID() } : {}),
      expiresAtEpoch: Math.floor(now.getTime() / 1000) + (input.ttlSeconds ?? DEFAULT_TTL_SECONDS)
    }
    const key = sessionKey(session)
    try {
      await ddb.send(new PutCommand({
        TableName: table,
        Item: { ...key, ...session },
        ConditionExpression: 'attribute_not_exists(sk)',
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD'
      }))
    } catch (error) {
      if (!isConditionFailure(error)) throw error
      // The SDK retries a write whose answer was lost; the retry then fails its own condition. Our item is ours.
      const old = await storedItem(key, error)
      if (old?.uploadId !== session.uploadId || old.createdAt !== session.createdAt) throw conflict(`upload ${session.uploadId} already exists`)
    }
    try {
      const Attributes = await ensureVideoRecord(ddb, table, input.projectId, input.videoId, { latestUploadId: session.uploadId }, 'UPDATED_OLD')
      // A retried update answers what its own first attempt wrote: then what was there before is unknown.
      const retried = Attributes?.latestUploadId === session.uploadId
      undoState.set(session, retried
        ? { createdVideo: false }
        : { previousUploadId: Attributes?.latestUploadId as string | undefined, createdVideo: Attributes?.createdAt === undefined })
    } catch (error) {
      // Only a refused update certainly left nothing pointing at the session; after a lost answer it may be the
      // video's latest upload now. An unreferenced session is harmless (it expires), a dangling pointer is not.
      if (isDefiniteFailure(error)) await ddb.send(new DeleteCommand({ TableName: table, Key: key })).catch(() => {})
      throw error
    }
    return session
  }

  async function get (projectId: string, videoId: string, uploadId: string): Promise<UploadSession | undefined> {
    const Item = await storedItem({ pk: videoKey(projectId, videoId).pk, sk: uploadSortKey(uploadId) })
    return Item === undefined ? undefined : toSession(Item)
  }

  /** The newest upload of a video (the one the video record's latestUploadId names). */
  async function latest (projectId: string, videoId: string): Promise<UploadSession | undefined> {
    const { Item } = await ddb.send(new GetCommand({ TableName: table, Key: videoKey(projectId, videoId), ConsistentRead: true, ProjectionExpression: 'latestUploadId' }))
    const uploadId = Item?.latestUploadId as string | undefined
    return uploadId === undefined ? undefined : await get(projectId, videoId, uploadId)
  }

  /** The condition that a write is still this holder's lease (sessions without an owner predate leases). */
  function ownerCondition (session: UploadSession, values: Record<string, unknown>): string {
    if (session.leaseOwner === undefined) return ''
    values[':owner'] = session.leaseOwner
    return ' AND (attribute_not_exists(leaseOwner) OR leaseOwner = :owner)'
  }

  /**
   * Records bytes received, at most about once a second per upload and never two writes at once; never throws
   * (progress is advisory: a failed write must not fail the upload). The final count is written by finish().
   * Each write also renews the lease.
   */
  function progress (session: UploadSession, bytesUploaded: number): void {
    session.bytesUploaded = bytesUploaded
    const state = progressState.get(session.uploadId) ?? { lastWriteAt: 0, writing: false }
    progressState.set(session.uploadId, state)
    const now = Date.now()
    if (state.writing || now - state.lastWriteAt < PROGRESS_INTERVAL_MS) return
    state.writing = true
    state.lastWriteAt = now
    const values: Record<string, unknown> = { ':bytes': bytesUploaded, ':uploading': 'uploading', ':pending': 'pending', ':now': new Date(now).toISOString(), ':lease': now + leaseMs }
    const owner = ownerCondition(session, values)
    ddb.send(new UpdateCommand({
      TableName: table,
      Key: sessionKey(session),
      UpdateExpression: 'SET bytesUploaded = :bytes, #status = :uploading, updatedAt = :now, leaseUntil = :lease',
      ConditionExpression: `#status IN (:pending, :uploading)${owner}`,
      ExpressionAttributeNames: { '#status': 'status' },
      ExpressionAttributeValues: values
    })).then(() => { session.leaseUntil = now + leaseMs }, () => {}).finally(() => { state.writing = false })
  }

  /** Renews the lease once; false when the session is no longer uploading under this holder's lease. */
  async function renew (session: UploadSession): Promise<boolean> {
    const until = Date.now() + leaseMs
    const values: Record<string, unknown> = { ':uploading': 'uploading', ':lease': until }
    const owner = ownerCondition(session, values)
    try {
      await ddb.send(new UpdateCommand({
        TableName: table,
        Key: sessionKey(session),
        UpdateExpression: 'SET leaseUntil = :lease',
        ConditionExpression: `#status = :uploading${owner}`,
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: values
      }))
      session.leaseUntil = until
      return true
    } catch (error) {
      if (isConditionFailure(error)) return false
      throw error
    }
  }

  /**
   * Keeps the lease of an uploading session alive while this replica works on it: renews every lease/3 ms until
   * the returned function is called (call it in a finally). Renewal errors are retried at the next tick; when the
   * session stops being this holder's (finished, failed, taken over) renewing stops and onLost is called.
   */
  function keepAlive (session: UploadSession, options: { onLost?: () => void } = {}): () => void {
    let stopped = false
    let renewing = false
    const timer = setInterval(() => {
      if (stopped || renewing) return
      renewing = true
      renew(session).then((kept) => {
        if (kept || stopped) return
        stop()
        options.onLost?.()
      }, () => {}).finally(() => { renewing = false })
    }, Math.max(1, Math.floor(leaseMs / 3)))
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
  async function begin (session: UploadSession, options: BeginOptions = {}): Promise<{ session: UploadSession, takenOver: boolean }> {
    const expect = options.expect ?? ['pending']
    const now = Date.now()
    const key = sessionKey(session)
    const names: Record<string, string> = { '#status': 'status', '#mode': 'mode' }
    const values: Record<string, unknown> = {
      ':uploading': 'uploading', ':direct': 'direct', ':now_ms': now, ':now_s': Math.floor(now / 1000),
      ':lease': now + leaseMs, ':owner': randomUUID(), ':updated': new Date(now).toISOString()
    }
    const allowed = expect.map((status, index) => { values[`:expect${index}`] = status; return `:expect${index}` })
    const assignments = ['#status = :uploading', 'leaseUntil = :lease', 'leaseOwner = :owner', 'updatedAt = :updated']
    Object.entries(options.attributes ?? {}).forEach(([name, value], index) => {
      names[`#a${index}`] = name
      values[`:a${index}`] = value
      assignments.push(`#a${index} = :a${index}`)
    })
    const fromExpected = allowed.length === 0 ? '' : `#status IN (${allowed.join(', ')}) OR `
    try {
      const { Attributes } = await ddb.send(new UpdateCommand({
        TableName: table,
        Key: key,
        UpdateExpression: `SET ${assignments.join(', ')}`,
        ConditionExpression: `attribute_exists(sk) AND expiresAtEpoch >= :now_s AND (${fromExpected}(#status = :uploading AND #mode = :direct AND leaseUntil < :now_ms))`,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
        ReturnValues: 'ALL_OLD',
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD'
      }))
      const old = Attributes ?? {}
      const updated = { ...old, status: 'uploading', leaseUntil: now + leaseMs, leaseOwner: values[':owner'], updatedAt: values[':updated'], ...options.attributes }
      return { session: toSession(updated, now), takenOver: old.status === 'uploading' }
    } catch (error) {
      if (!isConditionFailure(error)) throw error
      const old = await storedItem(key, error)
      if (old === undefined) throw conflict(`upload ${session.uploadId} does not exist`, { status: null })
      if (old.status === 'uploading' && typeof old.leaseUntil === 'number' && old.leaseUntil >= now) throw new SessionBusy(session.uploadId, old.leaseUntil, now)
      const seen = toSession(old, now)
      throw conflict(`upload ${session.uploadId} is ${seen.status}, not ${expect.join(' or ')}`, { status: seen.status })
    }
  }

  /** Applies a status change (and the final byte count, error, render version); returns the stored session. */
  async function finish (session: UploadSession, patch: UploadSessionPatch): Promise<UploadSession> {
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
        leaseUntil: entering ? now + leaseMs : undefined,
        leaseOwner: owner
      }).filter(([, value]) => value !== undefined))
    }
    const names: Record<string, string> = {}
    const values: Record<string, unknown> = {}
    const parts = Object.entries(assignments).map(([name, value], index) => {
      names[`#a${index}`] = name
      values[`:a${index}`] = value
      return `#a${index} = :a${index}`
    })
    let condition = 'attribute_exists(sk)'
    if (patch.expectStatus !== undefined) {
      names['#status'] = 'status'
      const allowed = patch.expectStatus.map((status, index) => { values[`:expect${index}`] = status; return `:expect${index}` })
      condition += ` AND #status IN (${allowed.join(', ')})`
    }
    try {
      const { Attributes } = await ddb.send(new UpdateCommand({
        TableName: table,
        Key: sessionKey(session),
        UpdateExpression: `SET ${parts.join(', ')}`,
        ConditionExpression: condition,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
        ReturnValues: 'ALL_NEW'
      }))
      if (patch.status !== undefined && TERMINAL_UPLOAD_STATUSES.includes(patch.status)) progressState.delete(session.uploadId)
      if (entering) Object.assign(session, { leaseUntil: assignments.leaseUntil, leaseOwner: owner })
      return toSession(Attributes ?? {}, now)
    } catch (error) {
      if (isConditionFailure(error)) throw conflict(`upload ${session.uploadId} is not in a state that allows this (expected ${patch.expectStatus?.join(' or ') ?? 'an existing session'})`)
      throw error
    }
  }

  /**
   * Removes a session as if it had never been (bad input found mid-stream: 413): deletes the item, points
   * latestUploadId back, and deletes a video record that create() made and nothing else has used since.
   */
  async function discard (session: UploadSession): Promise<void> {
    progressState.delete(session.uploadId)
    const undo = undoState.get(session) ?? { createdVideo: false }
    const key = videoKey(session.projectId, session.videoId)
    await ddb.send(new DeleteCommand({ TableName: table, Key: sessionKey(session) }))
    try {
      if (undo.createdVideo) {
        await ddb.send(new DeleteCommand({
          TableName: table,
          Key: key,
          ConditionExpression: 'latestUploadId = :uploadId AND attribute_not_exists(latestRenderVersion) AND attribute_not_exists(latestCodeVersion) AND attribute_not_exists(renderClaim) AND attribute_not_exists(codeClaim) AND revision = :one',
          ExpressionAttributeValues: { ':uploadId': session.uploadId, ':one': 1 }
        }))
      } else {
        await ddb.send(new UpdateCommand({
          TableName: table,
          Key: key,
          UpdateExpression: undo.previousUploadId === undefined ? 'REMOVE latestUploadId' : 'SET latestUploadId = :previous',
          ConditionExpression: 'latestUploadId = :uploadId',
          ExpressionAttributeValues: { ':uploadId': session.uploadId, ...(undo.previousUploadId === undefined ? {} : { ':previous': undo.previousUploadId }) }
        }))
      }
    } catch (error) {
      // Someone else touched the record meanwhile: it is theirs now, leave it.
      if (!isConditionFailure(error)) throw error
    }
  }

  return { create, get, latest, progress, keepAlive, renew, begin, finish, discard, leaseMs }
}

export type UploadSessions = ReturnType<typeof createUploadSessions>
