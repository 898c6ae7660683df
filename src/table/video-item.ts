// The DynamoDB layout every store shares: item keys, the video record, and the checks of a conditional write.
import { GetCommand, UpdateCommand, type DeleteCommand, type DynamoDBDocumentClient, type PutCommand } from '@aws-sdk/lib-dynamodb'
import { unmarshall } from '@aws-sdk/util-dynamodb'

/*
 * Items, all in one table with string keys pk / sk:
 *   video record         pk=VIDEO#{projectId}#{videoId}  sk=VIDEO
 *                        gsi1pk=PROJECT#{projectId} gsi1sk={createdAt}#{videoId}  (project listing, newest first)
 *                        attributes: projectId, videoId, title, description, tags, customMetadata, status,
 *                        createdAt, updatedAt, revision (ETag source, +1 on every change),
 *                        latestCodeVersion, latestCodeSha256, latestRenderVersion, latestUploadId: hints that only
 *                        ever move forward, after the version item they name exists;
 *                        deletingSince (DELETE_MARK) while a DELETE of the video runs
 *   code version         pk=VIDEO#…  sk=CODE#{version:09d}     written once, conditionally; carries commitToken
 *   render version       pk=VIDEO#…  sk=RENDER#{version:09d}   written once, conditionally; carries commitToken
 *   scene clip           pk=VIDEO#…  sk=SCENE#{version:09d}#{scene:05d}
 *   upload session       pk=VIDEO#…  sk=UPLOAD#{uploadId}   (expiresAtEpoch: TTL)
 *   idempotency record   pk=IDEMP#{sha256 of caller, route, key}  sk=IDEMP   (expiresAtEpoch: TTL)
 * IDs match ^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$, so '#' never occurs inside them.
 */
export function videoKey (projectId: string, videoId: string): { pk: string, sk: string } {
  return { pk: `VIDEO#${projectId}#${videoId}`, sk: 'VIDEO' }
}

/** The video record, read consistently (undefined for an unknown video): every store reads it so. */
export async function readVideoRecord (ddb: DynamoDBDocumentClient, table: string, projectId: string, videoId: string): Promise<Record<string, unknown> | undefined> {
  const { Item } = await ddb.send(new GetCommand({ TableName: table, Key: videoKey(projectId, videoId), ConsistentRead: true }))
  return Item
}

export function projectIndexKey (projectId: string): string {
  return `PROJECT#${projectId}`
}

export type VersionKind = 'CODE' | 'RENDER'

export const MAX_VERSION = 999_999_999

export function versionSortKey (kind: VersionKind, version: number): string {
  return `${kind}#${String(version).padStart(9, '0')}`
}

export function sceneSortKey (version: number, sceneNumber: number): string {
  return `SCENE#${String(version).padStart(9, '0')}#${String(sceneNumber).padStart(5, '0')}`
}

export function scenePrefix (version: number): string {
  return `SCENE#${String(version).padStart(9, '0')}#`
}

export function uploadSortKey (uploadId: string): string {
  return `UPLOAD#${uploadId}`
}

/**
 * Set on the video record (epoch ms) when a DELETE begins, before it lists what to remove. A version committed after
 * that listing would outlive the video; its writer sees the mark (or the missing record) when it advances the latest
 * pointer, and withdraws its version itself. A DELETE that failed part way leaves the mark until it is repeated.
 */
export const DELETE_MARK = 'deletingSince'

/** The video record's attribute that points at the latest version of a kind. */
export const LATEST_ATTRIBUTE: Record<VersionKind, string> = { CODE: 'latestCodeVersion', RENDER: 'latestRenderVersion' }

export const isConditionFailure = (error: unknown): boolean => (error as { name?: string }).name === 'ConditionalCheckFailedException'

/**
 * A conditional write (Put, Update or Delete) whose failed condition is an answer, not an error: true when it was
 * applied, false when its condition failed; anything else (a timeout, a throttle) is thrown, since it may have landed.
 */
export async function writeIf (ddb: DynamoDBDocumentClient, command: PutCommand | UpdateCommand | DeleteCommand): Promise<boolean> {
  try {
    await ddb.send(command as never)
    return true
  } catch (error) {
    if (isConditionFailure(error)) return false
    throw error
  }
}

/**
 * The item a failed condition was checked against: the one the error carries where the backend returns it
 * (ReturnValuesOnConditionCheckFailure; the document client leaves it marshalled), else a consistent read.
 */
export async function itemBehindFailedCondition (ddb: DynamoDBDocumentClient, table: string, key: { pk: string, sk: string }, error: unknown): Promise<Record<string, unknown> | undefined> {
  const returned = (error as { Item?: Parameters<typeof unmarshall>[0] } | undefined)?.Item
  if (returned !== undefined && Object.keys(returned).length > 0) return unmarshall(returned)
  const { Item } = await ddb.send(new GetCommand({ TableName: table, Key: key, ConsistentRead: true }))
  return Item
}

/**
 * Creates the video record if it is missing (the first code version, upload or session of a video does). Every
 * clause is if_not_exists, so repeating it (an SDK retry, a second writer) changes nothing; `set` adds attributes.
 * Answers the record (ALL_NEW), or what the write changed (UPDATED_OLD: createdAt absent when it created the record).
 */
export async function ensureVideoRecord (ddb: DynamoDBDocumentClient, table: string, projectId: string, videoId: string, set: Record<string, unknown> = {}, returnValues: 'ALL_NEW' | 'UPDATED_OLD' = 'ALL_NEW'): Promise<Record<string, unknown>> {
  const nowIso = new Date().toISOString()
  const extra = setClauses(set, 'e')
  const { Attributes } = await ddb.send(new UpdateCommand({
    TableName: table,
    Key: videoKey(projectId, videoId),
    UpdateExpression: 'SET projectId = :projectId, videoId = :videoId, createdAt = if_not_exists(createdAt, :now), ' +
      'updatedAt = if_not_exists(updatedAt, :now), #status = if_not_exists(#status, :created), gsi1pk = :gsi1pk, ' +
      'gsi1sk = if_not_exists(gsi1sk, :gsi1sk), tags = if_not_exists(tags, :emptyList), revision = if_not_exists(revision, :one)' +
      extra.clauses.map((clause) => `, ${clause}`).join(''),
    ExpressionAttributeNames: { '#status': 'status', ...extra.names },
    ExpressionAttributeValues: {
      ':projectId': projectId,
      ':videoId': videoId,
      ':now': nowIso,
      ':created': 'created',
      ':gsi1pk': projectIndexKey(projectId),
      ':gsi1sk': `${nowIso}#${videoId}`,
      ':emptyList': [],
      ':one': 1,
      ...extra.values
    },
    ReturnValues: returnValues
  }))
  return Attributes ?? {}
}

/** `#p0 = :p0, …` for a map of attributes (undefined values skipped), with the names and values to send. */
export function setClauses (attributes: Record<string, unknown>, prefix = 'a'): { clauses: string[], names: Record<string, string>, values: Record<string, unknown> } {
  const names: Record<string, string> = {}
  const values: Record<string, unknown> = {}
  const clauses = Object.entries(attributes).filter(([, value]) => value !== undefined).map(([name, value], index) => {
    names[`#${prefix}${index}`] = name
    values[`:${prefix}${index}`] = value
    return `#${prefix}${index} = :${prefix}${index}`
  })
  return { clauses, names, values }
}
