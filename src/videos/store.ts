// Video records: create, read, list newest first, conditional patch, and delete with everything stored under them.
import { AbortMultipartUploadCommand } from '@aws-sdk/client-s3'
import { BatchWriteCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb'
import type { AwsClients } from '../aws/clients.js'
import type { Config } from '../config.js'
import { HttpProblem, conflict, notFound, preconditionFailed } from '../errors.js'
import { decodeCursor, encodeCursor } from '../table/cursor.js'
import { createPrefixDeleter, type RetainedVersion } from '../aws/prefix-delete.js'
import { DELETE_MARK, isConditionFailure, projectIndexKey, readVideoRecord, videoKey } from '../table/video-item.js'
import type { PatchVideoBodyType, PutVideoBodyType, VideoListType, VideoStatusType, VideoType } from '../../schemas/videos.js'
import fp from 'fastify-plugin'

/** Allowed status changes; setting the current status again is always allowed. */
export const STATUS_TRANSITIONS: Record<VideoStatusType, readonly VideoStatusType[]> = {
  created: ['code_ready', 'failed'],
  code_ready: ['rendering', 'failed'],
  rendering: ['uploaded', 'failed'],
  uploaded: ['code_ready', 'failed'],
  failed: ['code_ready', 'rendering']
}

/** The one place a DynamoDB video item becomes the API's video: keys and index attributes stay inside. */
export function toVideo (item: Record<string, unknown>, config: Pick<Config, 'videoBucket' | 'codeBucket'>): VideoType {
  const projectId = item.projectId as string
  const videoId = item.videoId as string
  const optional = <T>(name: string): T | undefined => item[name] as T | undefined
  const renderKey = optional<string>('latestRenderKey')
  const codeKey = optional<string>('latestCodeKey')
  return {
    projectId,
    videoId,
    title: optional('title'),
    description: optional('description'),
    tags: (item.tags as string[] | undefined) ?? [],
    customMetadata: (item.customMetadata as Record<string, string> | undefined) ?? {},
    status: (item.status as VideoStatusType | undefined) ?? 'created',
    latestRenderVersion: optional<number>('latestRenderVersion') ?? null,
    latestCodeVersion: optional<number>('latestCodeVersion') ?? null,
    durationSeconds: optional('durationSeconds'),
    resolution: optional('resolution'),
    sizeBytes: optional('sizeBytes') ?? optional('latestRenderSizeBytes'),
    sceneCount: optional('sceneCount'),
    s3Paths: {
      video: renderKey === undefined ? undefined : `s3://${config.videoBucket}/${renderKey}`,
      code: codeKey === undefined ? undefined : `s3://${config.codeBucket}/${codeKey}`,
      prefix: `s3://${config.videoBucket}/videos/${projectId}/${videoId}/`
    },
    revision: (item.revision as number | undefined) ?? 1,
    createdAt: item.createdAt as string,
    updatedAt: (item.updatedAt as string | undefined) ?? (item.createdAt as string)
  }
}

const CURSOR_KEYS = ['pk', 'sk', 'gsi1pk', 'gsi1sk'] as const

/** An opaque cursor back into the index position it came from; anything else (or another project's) is a 400. */
function decodeVideoCursor (cursor: string, projectId: string): Record<string, string> {
  return decodeCursor(cursor, (position) => {
    const valid = Object.keys(position).length === CURSOR_KEYS.length &&
      CURSOR_KEYS.every((name) => typeof position[name] === 'string') &&
      position.gsi1pk === projectIndexKey(projectId)
    return valid ? position as Record<string, string> : undefined
  }, ' for this project')
}

/** SET clauses for the fields a client gave, with their names and values. */
function assignments (fields: Record<string, unknown>): { clauses: string[], names: Record<string, string>, values: Record<string, unknown> } {
  const clauses: string[] = []
  const names: Record<string, string> = {}
  const values: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined) continue
    names[`#f_${name}`] = name
    values[`:f_${name}`] = value
    clauses.push(`#f_${name} = :f_${name}`)
  }
  return { clauses, names, values }
}

export function createVideoStore ({ aws, config }: { aws: AwsClients, config: Config }) {
  const { ddb, s3 } = aws
  const table = config.table

  const readItem = async (projectId: string, videoId: string): Promise<Record<string, unknown> | undefined> =>
    await readVideoRecord(ddb, table, projectId, videoId)

  async function listVideos (projectId: string, { limit, cursor }: { limit: number, cursor?: string }): Promise<VideoListType> {
    const exclusiveStartKey = cursor === undefined ? undefined : decodeVideoCursor(cursor, projectId)
    const { Items = [] } = await ddb.send(new QueryCommand({
      TableName: table,
      IndexName: 'gsi1',
      KeyConditionExpression: 'gsi1pk = :project',
      ExpressionAttributeValues: { ':project': projectIndexKey(projectId) },
      ScanIndexForward: false,
      // One more than asked: a full last page then ends with no cursor instead of one that leads to an empty page.
      Limit: limit + 1,
      ExclusiveStartKey: exclusiveStartKey
    }))
    const page = Items.slice(0, limit)
    const last = page.at(-1)
    const more = Items.length > limit
    const nextCursor = more && last !== undefined ? encodeCursor(Object.fromEntries(CURSOR_KEYS.map((name) => [name, last[name]]))) : null
    return { items: page.map((item) => toVideo(item, config)), nextCursor }
  }

  async function getVideo (projectId: string, videoId: string): Promise<VideoType> {
    const item = await readItem(projectId, videoId)
    if (item === undefined) throw notFound(`video ${projectId}/${videoId} does not exist`)
    return toVideo(item, config)
  }

  /** Creates the record or updates the given fields; versions and status of an existing record stay as they are. */
  async function putVideo (projectId: string, videoId: string, fields: PutVideoBodyType): Promise<{ video: VideoType, created: boolean }> {
    const now = new Date().toISOString()
    const given = assignments({ title: fields.title, description: fields.description, tags: fields.tags, customMetadata: fields.customMetadata })
    const { Attributes = {} } = await ddb.send(new UpdateCommand({
      TableName: table,
      Key: videoKey(projectId, videoId),
      UpdateExpression: [
        'SET projectId = :projectId, videoId = :videoId, updatedAt = :now, createdAt = if_not_exists(createdAt, :now)',
        'gsi1pk = :gsi1pk, gsi1sk = if_not_exists(gsi1sk, :gsi1sk), #status = if_not_exists(#status, :created)',
        ...(fields.tags === undefined ? ['tags = if_not_exists(tags, :noTags)'] : []),
        ...given.clauses
      ].join(', ') + ' ADD revision :one',
      ExpressionAttributeNames: { '#status': 'status', ...given.names },
      ExpressionAttributeValues: {
        ':projectId': projectId,
        ':videoId': videoId,
        ':now': now,
        ':gsi1pk': projectIndexKey(projectId),
        ':gsi1sk': `${now}#${videoId}`,
        ':created': 'created',
        ':one': 1,
        ...(fields.tags === undefined ? { ':noTags': [] } : {}),
        ...given.values
      },
      ReturnValues: 'ALL_NEW'
    }))
    // Every writer of a video record starts revision at 1, so 1 after this write means this write created it.
    return { video: toVideo(Attributes, config), created: Attributes.revision === 1 }
  }

  /**
   * Applies a partial update if the record is still at one of the expected revisions ('*': any); a stale revision
   * is 412, a status change the lifecycle does not allow is 409.
   */
  async function patchVideo (projectId: string, videoId: string, expected: '*' | number[], changes: PatchVideoBodyType): Promise<VideoType> {
    for (let attempt = 0; ; attempt++) {
      const item = await readItem(projectId, videoId)
      if (item === undefined) throw notFound(`video ${projectId}/${videoId} does not exist`)
      const revision = (item.revision as number | undefined) ?? 1
      if (expected !== '*' && !expected.includes(revision)) {
        throw preconditionFailed(`the video changed since that ETag; its current ETag is W/"r${revision}"`)
      }
      const current = (item.status as VideoStatusType | undefined) ?? 'created'
      if (changes.status !== undefined && changes.status !== current && !STATUS_TRANSITIONS[current].includes(changes.status)) {
        throw conflict(`status cannot change from ${current} to ${changes.status}; from ${current} it may become ${STATUS_TRANSITIONS[current].join(' or ')}`)
      }
      const given = assignments(changes)
      try {
        const { Attributes = {} } = await ddb.send(new UpdateCommand({
          TableName: table,
          Key: videoKey(projectId, videoId),
          UpdateExpression: `SET ${['updatedAt = :now', ...given.clauses].join(', ')} ADD revision :one`,
          ConditionExpression: item.revision === undefined ? 'attribute_exists(pk) AND attribute_not_exists(revision)' : 'revision = :revision',
          ExpressionAttributeNames: given.names,
          ExpressionAttributeValues: {
            ':now': new Date().toISOString(),
            ':one': 1,
            ...(item.revision === undefined ? {} : { ':revision': revision }),
            ...given.values
          },
          ReturnValues: 'ALL_NEW'
        }))
        return toVideo(Attributes, config)
      } catch (error) {
        if (!isConditionFailure(error)) throw error
        // Another writer came first: a concrete ETag is now stale; '*' re-reads and re-validates a few times.
        if (expected !== '*' || attempt >= 2) throw preconditionFailed('the video changed while it was being updated; read it again')
      }
    }
  }

  const deletePrefix = createPrefixDeleter(s3)

  async function itemKeys (projectId: string, videoId: string): Promise<Array<Record<string, unknown>>> {
    const keys: Array<Record<string, unknown>> = []
    let start: Record<string, unknown> | undefined
    do {
      const page = await ddb.send(new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': videoKey(projectId, videoId).pk },
        ExclusiveStartKey: start
      }))
      keys.push(...(page.Items ?? []))
      start = page.LastEvaluatedKey
    } while (start !== undefined)
    return keys
  }

  async function deleteItems (keys: Array<{ pk: unknown, sk: unknown }>): Promise<void> {
    for (let index = 0; index < keys.length; index += 25) {
      let requests = keys.slice(index, index + 25).map(({ pk, sk }) => ({ DeleteRequest: { Key: { pk, sk } } }))
      for (let attempt = 0; requests.length > 0; attempt++) {
        if (attempt > 5) throw new HttpProblem(503, 'Service Unavailable', 'the table is throttling deletes; retry the delete', { headers: { 'retry-after': '5' } })
        const { UnprocessedItems } = await ddb.send(new BatchWriteCommand({ RequestItems: { [table]: requests } }))
        requests = (UnprocessedItems?.[table] ?? []) as typeof requests
        if (requests.length > 0) await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt))
      }
    }
  }

  /**
   * Removes a video: its objects in both buckets first (every version, where a bucket keeps versions), then its items,
   * the video record last, so a failure part way leaves a record that a repeated DELETE finishes. Answers the object
   * versions S3 Object Lock keeps (legal hold, retention): they stay, under a delete marker, until their lock lapses.
   */
  async function deleteVideo (projectId: string, videoId: string): Promise<{ retained: RetainedVersion[] }> {
    // Marked before anything is listed: a version committed after the listing is withdrawn by its writer (DELETE_MARK).
    try {
      await ddb.send(new UpdateCommand({
        TableName: table,
        Key: videoKey(projectId, videoId),
        UpdateExpression: 'SET #deleting = :now',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeNames: { '#deleting': DELETE_MARK },
        ExpressionAttributeValues: { ':now': Date.now() }
      }))
    } catch (error) {
      if (isConditionFailure(error)) throw notFound(`video ${projectId}/${videoId} does not exist`)
      throw error
    }
    const items = await itemKeys(projectId, videoId)
    // Multipart uploads in flight hold parts that no listing shows; abort them (best effort: local S3 answers 405).
    await Promise.all(items.filter((item) => typeof item.s3UploadId === 'string' && typeof item.key === 'string').map(async (session) => {
      await s3.send(new AbortMultipartUploadCommand({ Bucket: config.videoBucket, Key: session.key as string, UploadId: session.s3UploadId as string })).catch(() => {})
    }))
    const folder = `${projectId}/${videoId}/`
    const buckets = [...new Set([config.videoBucket, config.codeBucket])]
    const retained = (await Promise.all(['videos/', 'code/', 'staging/'].flatMap((root) =>
      buckets.map(async (bucket) => await deletePrefix(bucket, root + folder))))).flat()
    const video = videoKey(projectId, videoId)
    await deleteItems(items.filter((item) => item.sk !== video.sk) as Array<{ pk: unknown, sk: unknown }>)
    await deleteItems([video])
    return { retained }
  }

  return { listVideos, getVideo, putVideo, patchVideo, deleteVideo }
}

export type VideoStore = ReturnType<typeof createVideoStore>

declare module 'fastify' {
  interface FastifyInstance {
    videoStore: VideoStore
  }
}

export default fp(async function videoStorePlugin (app) {
  app.decorate('videoStore', createVideoStore({ aws: app.aws, config: app.config }))
}, { name: 'video-store', dependencies: ['aws'] })
