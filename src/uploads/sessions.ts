// Upload sessions: one DynamoDB item per upload (proxied or direct), so any replica can report its progress.
// This file has the session's shape, how a stored item reads, and creating and discarding one; its lease and status
// moves (progress, renew, keepAlive, begin, finish) are in session-lease.ts.
import { randomUUID } from 'node:crypto'
import { DeleteCommand, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb'
import type { AwsClients } from '../aws/clients.js'
import type { Config } from '../config.js'
import { HttpProblem, conflict, isDependencyUnavailable } from '../errors.js'
import { recordBestEffortFailure } from '../http/metrics.js'
import { ensureVideoRecord, isConditionFailure, itemBehindFailedCondition, uploadSortKey, videoKey, writeIf } from '../table/video-item.js'
import { begin, finish, keepAlive, progress, renew, sessionKey, type SessionContext } from './session-lease.js'

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

type Log = SessionContext['log']

export function createUploadSessions ({ aws, config, log }: { aws: AwsClients, config: Config, log?: Log }) {
  const ctx: SessionContext = { ddb: aws.ddb, table: config.table, leaseMs: uploadLeaseMsOf(config), progressState: new Map(), log }
  const undoState = new WeakMap<UploadSession, Undo>()
  return {
    create: async (input: CreateUploadSessionInput) => await create(ctx, undoState, input),
    get: async (projectId: string, videoId: string, uploadId: string) => await get(ctx, projectId, videoId, uploadId),
    latest: async (projectId: string, videoId: string) => await latest(ctx, projectId, videoId),
    /** Records progress at most once a second; never fails (a failed write is logged and counted). Callers need not wait. */
    progress: async (session: UploadSession, bytesUploaded: number) => { await progress(ctx, session, bytesUploaded) },
    keepAlive: (session: UploadSession, options?: { onLost?: () => void }) => keepAlive(ctx, session, options),
    renew: async (session: UploadSession) => await renew(ctx, session),
    begin: async (session: UploadSession, options?: BeginOptions) => await begin(ctx, session, options),
    finish: async (session: UploadSession, patch: UploadSessionPatch) => await finish(ctx, session, patch),
    discard: async (session: UploadSession) => { await discard(ctx, undoState.get(session), session) },
    leaseMs: ctx.leaseMs
  }
}

export type UploadSessions = ReturnType<typeof createUploadSessions>

/** Stores a new session and points the video record's latestUploadId at it (creating the record if missing). */
async function create ({ ddb, table, leaseMs, log }: SessionContext, undoState: WeakMap<UploadSession, Undo>, input: CreateUploadSessionInput): Promise<UploadSession> {
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
    const old = await itemBehindFailedCondition(ddb, table, key, error)
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
    if (isDefiniteFailure(error)) {
      await ddb.send(new DeleteCommand({ TableName: table, Key: key })).catch((cleanup: unknown) => { recordBestEffortFailure('upload-session-delete', cleanup, log) })
    }
    throw error
  }
  return session
}

async function get ({ ddb, table }: SessionContext, projectId: string, videoId: string, uploadId: string): Promise<UploadSession | undefined> {
  const Item = await itemBehindFailedCondition(ddb, table, { pk: videoKey(projectId, videoId).pk, sk: uploadSortKey(uploadId) }, undefined)
  return Item === undefined ? undefined : toSession(Item)
}

/** The newest upload of a video (the one the video record's latestUploadId names). */
async function latest (ctx: SessionContext, projectId: string, videoId: string): Promise<UploadSession | undefined> {
  const { Item } = await ctx.ddb.send(new GetCommand({ TableName: ctx.table, Key: videoKey(projectId, videoId), ConsistentRead: true, ProjectionExpression: 'latestUploadId' }))
  const uploadId = Item?.latestUploadId as string | undefined
  return uploadId === undefined ? undefined : await get(ctx, projectId, videoId, uploadId)
}

/**
 * Removes a session as if it had never been (bad input found mid-stream: 413): deletes the item, points
 * latestUploadId back, and deletes a video record that create() made and nothing else has used since.
 * Someone else touching the record meanwhile fails the condition: the record is theirs now, it is left.
 */
async function discard ({ ddb, table, progressState }: SessionContext, undo: Undo = { createdVideo: false }, session: UploadSession): Promise<void> {
  progressState.delete(session.uploadId)
  const key = videoKey(session.projectId, session.videoId)
  await ddb.send(new DeleteCommand({ TableName: table, Key: sessionKey(session) }))
  if (undo.createdVideo) {
    await writeIf(ddb, new DeleteCommand({
      TableName: table,
      Key: key,
      ConditionExpression: 'latestUploadId = :uploadId AND attribute_not_exists(latestRenderVersion) AND attribute_not_exists(latestCodeVersion) AND attribute_not_exists(renderClaim) AND attribute_not_exists(codeClaim) AND revision = :one',
      ExpressionAttributeValues: { ':uploadId': session.uploadId, ':one': 1 }
    }))
  } else {
    await writeIf(ddb, new UpdateCommand({
      TableName: table,
      Key: key,
      UpdateExpression: undo.previousUploadId === undefined ? 'REMOVE latestUploadId' : 'SET latestUploadId = :previous',
      ConditionExpression: 'latestUploadId = :uploadId',
      ExpressionAttributeValues: { ':uploadId': session.uploadId, ...(undo.previousUploadId === undefined ? {} : { ':previous': undo.previousUploadId }) }
    }))
  }
}
