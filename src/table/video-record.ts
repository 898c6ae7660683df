// The video record (pk=VIDEO#{p}#{v}, sk=VIDEO): its typed shape, its consistent read, and "create it if missing".
import { GetCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb'
import type { VideoLifecycleStatus } from '../../schemas/videos.js'
import { setClauses } from './conditions.js'
import { projectIndexKey, videoKey, type VersionKind } from './keys.js'

/** The video record as stored. Only projectId and videoId are sure to be there: older writers left out the rest. */
export interface VideoRecord {
  pk: string
  sk: string
  gsi1pk?: string
  gsi1sk?: string
  projectId: string
  videoId: string
  title?: string
  description?: string
  tags?: string[]
  customMetadata?: Record<string, string>
  status?: VideoLifecycleStatus
  createdAt: string
  updatedAt?: string
  /** ETag source, +1 on every change */
  revision?: number
  // Hints that only ever move forward, after the version item they name exists:
  latestCodeVersion?: number
  latestCodeSha256?: string
  latestCodeKey?: string
  latestRenderVersion?: number
  latestRenderKey?: string
  latestRenderSha256?: string
  latestUploadId?: string
  // What the latest render says about the video:
  durationSeconds?: number
  resolution?: string
  sizeBytes?: number
  latestRenderSizeBytes?: number
  sceneCount?: number
  /** epoch ms: a DELETE of the video began (DELETE_MARK) */
  deletingSince?: number
}

/**
 * Set on the video record (epoch ms) when a DELETE begins, before it lists what to remove. A version committed after
 * that listing would outlive the video; its writer sees the mark (or the missing record) when it advances the latest
 * pointer, and withdraws its version itself. A DELETE that failed part way leaves the mark until it is repeated.
 */
export const DELETE_MARK = 'deletingSince' satisfies keyof VideoRecord

/** The video record's attribute that points at the latest version of a kind. */
export const LATEST_ATTRIBUTE = { CODE: 'latestCodeVersion', RENDER: 'latestRenderVersion' } as const satisfies Record<VersionKind, keyof VideoRecord>

/** The video record, read consistently (undefined for an unknown video): every store reads it so. */
export async function readVideoRecord (ddb: DynamoDBDocumentClient, table: string, projectId: string, videoId: string): Promise<VideoRecord | undefined> {
  const { Item } = await ddb.send(new GetCommand({ TableName: table, Key: videoKey(projectId, videoId), ConsistentRead: true }))
  return Item as VideoRecord | undefined
}

/**
 * The clauses that give a record its identity and index entry on its first write, and leave an existing one as it
 * is (createdAt, status and the index position are if_not_exists): every writer that may create a record uses them.
 */
export function creationClauses (projectId: string, videoId: string, nowIso: string): { clauses: string[], names: Record<string, string>, values: Record<string, unknown> } {
  return {
    clauses: ['projectId = :projectId', 'videoId = :videoId', 'createdAt = if_not_exists(createdAt, :now)', '#status = if_not_exists(#status, :created)',
      'gsi1pk = :gsi1pk', 'gsi1sk = if_not_exists(gsi1sk, :gsi1sk)'],
    names: { '#status': 'status' },
    values: { ':projectId': projectId, ':videoId': videoId, ':now': nowIso, ':created': 'created', ':gsi1pk': projectIndexKey(projectId), ':gsi1sk': `${nowIso}#${videoId}` }
  }
}

/**
 * Creates the video record if it is missing (the first code version, upload or session of a video does). Every
 * clause is if_not_exists, so repeating it (an SDK retry, a second writer) changes nothing; `set` adds attributes.
 * Answers the record (ALL_NEW), or what the write changed (UPDATED_OLD: createdAt absent when it created the record).
 */
export async function ensureVideoRecord (ddb: DynamoDBDocumentClient, table: string, projectId: string, videoId: string, set?: Partial<VideoRecord>): Promise<VideoRecord>
export async function ensureVideoRecord (ddb: DynamoDBDocumentClient, table: string, projectId: string, videoId: string, set: Partial<VideoRecord>, returnValues: 'UPDATED_OLD'): Promise<Partial<VideoRecord>>
export async function ensureVideoRecord (ddb: DynamoDBDocumentClient, table: string, projectId: string, videoId: string, set: Partial<VideoRecord> = {}, returnValues: 'ALL_NEW' | 'UPDATED_OLD' = 'ALL_NEW'): Promise<Partial<VideoRecord>> {
  const creation = creationClauses(projectId, videoId, new Date().toISOString())
  const extra = setClauses(set, 'e')
  const { Attributes } = await ddb.send(new UpdateCommand({
    TableName: table,
    Key: videoKey(projectId, videoId),
    UpdateExpression: 'SET ' + [...creation.clauses, 'updatedAt = if_not_exists(updatedAt, :now)', 'tags = if_not_exists(tags, :emptyList)',
      'revision = if_not_exists(revision, :one)', ...extra.clauses].join(', '),
    ExpressionAttributeNames: { ...creation.names, ...extra.names },
    ExpressionAttributeValues: { ...creation.values, ':emptyList': [], ':one': 1, ...extra.values },
    ReturnValues: returnValues
  }))
  return (Attributes ?? {}) as Partial<VideoRecord>
}
