// Upload sessions: one DynamoDB item per upload (proxied or direct), so any replica can report its progress.
import { randomUUID } from 'node:crypto'
import { DeleteCommand, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb'
import type { AwsClients } from './aws/clients.js'
import type { Config } from './config.js'
import { conflict } from './errors.js'
import { projectIndexKey, uploadSortKey, videoKey } from './video-records.js'

export type UploadMode = 'proxied' | 'direct'
export type UploadStatus = 'pending' | 'uploading' | 'completed' | 'failed' | 'aborted' | 'expired'
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
  renderVersion?: number
  retryCount?: number
  attributes?: Record<string, unknown>
  /** only apply when the stored status is one of these; otherwise 409 */
  expectStatus?: readonly UploadStatus[]
}

const DEFAULT_TTL_SECONDS = 7 * 24 * 3600
const PROGRESS_INTERVAL_MS = 1000
const SESSION_KEYS = new Set(['pk', 'sk'])

/** What the caller of create() needs to undo a session that must leave nothing behind (413 mid-stream). */
interface Undo { previousUploadId?: string, createdVideo: boolean }

const isConditionFailure = (error: unknown): boolean => (error as { name?: string }).name === 'ConditionalCheckFailedException'

function toSession (item: Record<string, unknown>): UploadSession {
  const session = Object.fromEntries(Object.entries(item).filter(([name]) => !SESSION_KEYS.has(name))) as UploadSession
  // TTL deletion is lazy: an open session past its expiry is reported as expired.
  if (!TERMINAL_UPLOAD_STATUSES.includes(session.status) && session.expiresAtEpoch * 1000 < Date.now()) session.status = 'expired'
  return session
}

export function createUploadSessions ({ aws, config }: { aws: AwsClients, config: Config }) {
  const { ddb } = aws
  const table = config.table
  const progressState = new Map<string, { lastWriteAt: number, writing: boolean }>()
  const undoState = new WeakMap<UploadSession, Undo>()

  /** Stores a new session and points the video record's latestUploadId at it (creating the record if missing). */
  async function create (input: CreateUploadSessionInput): Promise<UploadSession> {
    const now = new Date()
    const nowIso = now.toISOString()
    const session: UploadSession = {
      ...input.attributes,
      uploadId: input.uploadId ?? randomUUID(),
      projectId: input.projectId,
      videoId: input.videoId,
      mode: input.mode,
      status: input.status ?? 'pending',
      bytesUploaded: 0,
      ...(input.totalBytes !== undefined ? { totalBytes: input.totalBytes } : {}),
      contentType: input.contentType,
      createdAt: nowIso,
      updatedAt: nowIso,
      retryCount: 0,
      expiresAtEpoch: Math.floor(now.getTime() / 1000) + (input.ttlSeconds ?? DEFAULT_TTL_SECONDS)
    }
    const { pk } = videoKey(input.projectId, input.videoId)
    await ddb.send(new PutCommand({
      TableName: table,
      Item: { pk, sk: uploadSortKey(session.uploadId), ...session },
      ConditionExpression: 'attribute_not_exists(sk)'
    }))
    try {
      const { Attributes } = await ddb.send(new UpdateCommand({
        TableName: table,
        Key: videoKey(input.projectId, input.videoId),
        UpdateExpression: 'SET latestUploadId = :uploadId, projectId = :projectId, videoId = :videoId, createdAt = if_not_exists(createdAt, :now), ' +
          'updatedAt = if_not_exists(updatedAt, :now), #status = if_not_exists(#status, :created), gsi1pk = :gsi1pk, ' +
          'gsi1sk = if_not_exists(gsi1sk, :gsi1sk), tags = if_not_exists(tags, :emptyList), revision = if_not_exists(revision, :one)',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: {
          ':uploadId': session.uploadId,
          ':projectId': input.projectId,
          ':videoId': input.videoId,
          ':now': nowIso,
          ':created': 'created',
          ':gsi1pk': projectIndexKey(input.projectId),
          ':gsi1sk': `${nowIso}#${input.videoId}`,
          ':emptyList': [],
          ':one': 1
        },
        ReturnValues: 'UPDATED_OLD'
      }))
      undoState.set(session, { previousUploadId: Attributes?.latestUploadId as string | undefined, createdVideo: Attributes?.createdAt === undefined })
    } catch (error) {
      await ddb.send(new DeleteCommand({ TableName: table, Key: { pk, sk: uploadSortKey(session.uploadId) } })).catch(() => {})
      throw error
    }
    return session
  }

  async function get (projectId: string, videoId: string, uploadId: string): Promise<UploadSession | undefined> {
    const { Item } = await ddb.send(new GetCommand({
      TableName: table,
      Key: { pk: videoKey(projectId, videoId).pk, sk: uploadSortKey(uploadId) },
      ConsistentRead: true
    }))
    return Item === undefined ? undefined : toSession(Item)
  }

  /** The newest upload of a video (the one the video record's latestUploadId names). */
  async function latest (projectId: string, videoId: string): Promise<UploadSession | undefined> {
    const { Item } = await ddb.send(new GetCommand({ TableName: table, Key: videoKey(projectId, videoId), ConsistentRead: true, ProjectionExpression: 'latestUploadId' }))
    const uploadId = Item?.latestUploadId as string | undefined
    return uploadId === undefined ? undefined : await get(projectId, videoId, uploadId)
  }

  /**
   * Records bytes received, at most about once a second per upload and never two writes at once; never throws
   * (progress is advisory: a failed write must not fail the upload). The final count is written by finish().
   */
  function progress (session: UploadSession, bytesUploaded: number): void {
    session.bytesUploaded = bytesUploaded
    const state = progressState.get(session.uploadId) ?? { lastWriteAt: 0, writing: false }
    progressState.set(session.uploadId, state)
    const now = Date.now()
    if (state.writing || now - state.lastWriteAt < PROGRESS_INTERVAL_MS) return
    state.writing = true
    state.lastWriteAt = now
    ddb.send(new UpdateCommand({
      TableName: table,
      Key: { pk: videoKey(session.projectId, session.videoId).pk, sk: uploadSortKey(session.uploadId) },
      UpdateExpression: 'SET bytesUploaded = :bytes, #status = :uploading, updatedAt = :now',
      ConditionExpression: '#status IN (:pending, :uploading)',
      ExpressionAttributeNames: { '#status': 'status' },
      ExpressionAttributeValues: { ':bytes': bytesUploaded, ':uploading': 'uploading', ':pending': 'pending', ':now': new Date(now).toISOString() }
    })).catch(() => {}).finally(() => { state.writing = false })
  }

  /** Applies a status change (and the final byte count, error, render version); returns the stored session. */
  async function finish (session: UploadSession, patch: UploadSessionPatch): Promise<UploadSession> {
    const assignments: Record<string, unknown> = {
      ...patch.attributes,
      updatedAt: new Date().toISOString(),
      ...Object.fromEntries(Object.entries({
        status: patch.status,
        bytesUploaded: patch.bytesUploaded,
        totalBytes: patch.totalBytes,
        lastError: patch.lastError,
        renderVersion: patch.renderVersion,
        retryCount: patch.retryCount
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
        Key: { pk: videoKey(session.projectId, session.videoId).pk, sk: uploadSortKey(session.uploadId) },
        UpdateExpression: `SET ${parts.join(', ')}`,
        ConditionExpression: condition,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
        ReturnValues: 'ALL_NEW'
      }))
      if (patch.status !== undefined && TERMINAL_UPLOAD_STATUSES.includes(patch.status)) progressState.delete(session.uploadId)
      return toSession(Attributes ?? {})
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
    await ddb.send(new DeleteCommand({ TableName: table, Key: { pk: key.pk, sk: uploadSortKey(session.uploadId) } }))
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

  return { create, get, latest, progress, finish, discard }
}

export type UploadSessions = ReturnType<typeof createUploadSessions>
