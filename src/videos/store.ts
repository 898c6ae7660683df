// Video records: create, read, list newest first, conditional patch, and delete (src/videos/delete.ts).
import { QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb'
import type { AwsClients } from '../aws/clients.js'
import type { Config } from '../config.js'
import { conflict, notFound, preconditionFailed } from '../errors.js'
import type { recordBestEffortFailure } from '../http/metrics.js'
import { encodeCursor } from '../table/cursor.js'
import { projectIndexKey, videoKey } from '../table/keys.js'
import { setClauses, tryWrite } from '../table/conditions.js'
import { creationClauses, readVideoRecord, type VideoRecord } from '../table/video-record.js'
import { createPrefixDeleter } from '../aws/prefix-delete.js'
import { deleteVideo, type VideoDeletion } from './delete.js'
import { CURSOR_KEYS, decodeVideoCursor, refusedTransition, toVideo } from './record.js'
import type { PatchVideoBodyType, PutVideoBodyType, VideoListType, VideoType } from '../../schemas/videos.js'
import fp from 'fastify-plugin'
import { bindContext } from '../stores.js'

export { STATUS_TRANSITIONS, toVideo } from './record.js'

export interface VideoStoreContext extends VideoDeletion {
  ddb: DynamoDBDocumentClient
  table: string
  config: Config
}

/** A page of the project's videos, most recently created first. */
export async function listVideos (context: VideoStoreContext, projectId: string, { limit, cursor }: { limit: number, cursor?: string }): Promise<VideoListType> {
  const { ddb, table, config } = context
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
  const page = Items.slice(0, limit) as VideoRecord[]
  const last = page.at(-1)
  const more = Items.length > limit
  const nextCursor = more && last !== undefined ? encodeCursor(Object.fromEntries(CURSOR_KEYS.map((name) => [name, last[name]]))) : null
  return { items: page.map((record) => toVideo(record, config)), nextCursor }
}

async function existingRecord ({ ddb, table }: VideoStoreContext, projectId: string, videoId: string): Promise<VideoRecord> {
  const record = await readVideoRecord(ddb, table, projectId, videoId)
  if (record === undefined) throw notFound(`video ${projectId}/${videoId} does not exist`)
  return record
}

export async function getVideo (context: VideoStoreContext, projectId: string, videoId: string): Promise<VideoType> {
  return toVideo(await existingRecord(context, projectId, videoId), context.config)
}

/** Creates the record or updates the given fields; versions and status of an existing record stay as they are. */
export async function putVideo ({ ddb, table, config }: VideoStoreContext, projectId: string, videoId: string, fields: PutVideoBodyType): Promise<{ video: VideoType, created: boolean }> {
  const creation = creationClauses(projectId, videoId, new Date().toISOString())
  const given = setClauses({ title: fields.title, description: fields.description, tags: fields.tags, customMetadata: fields.customMetadata }, 'f')
  const { Attributes = {} } = await ddb.send(new UpdateCommand({
    TableName: table,
    Key: videoKey(projectId, videoId),
    UpdateExpression: 'SET ' + [
      ...creation.clauses,
      'updatedAt = :now',
      ...(fields.tags === undefined ? ['tags = if_not_exists(tags, :noTags)'] : []),
      ...given.clauses
    ].join(', ') + ' ADD revision :one',
    ExpressionAttributeNames: { ...creation.names, ...given.names },
    ExpressionAttributeValues: {
      ...creation.values,
      ':one': 1,
      ...(fields.tags === undefined ? { ':noTags': [] } : {}),
      ...given.values
    },
    ReturnValues: 'ALL_NEW'
  }))
  // Every writer of a video record starts revision at 1, so 1 after this write means this write created it.
  return { video: toVideo(Attributes as VideoRecord, config), created: Attributes.revision === 1 }
}

/**
 * Applies a partial update if the record is still at one of the expected revisions ('*': any); a stale revision
 * is 412, a status change the lifecycle does not allow is 409.
 */
export async function patchVideo (context: VideoStoreContext, projectId: string, videoId: string, expected: '*' | number[], changes: PatchVideoBodyType): Promise<VideoType> {
  for (let attempt = 0; ; attempt++) {
    const record = await existingRecord(context, projectId, videoId)
    const revision = record.revision ?? 1
    if (expected !== '*' && !expected.includes(revision)) {
      throw preconditionFailed(`the video changed since that ETag; its current ETag is W/"r${revision}"`)
    }
    const refused = refusedTransition(record.status ?? 'created', changes.status)
    if (refused !== undefined) throw conflict(refused)
    const written = await writePatch(context, record, changes)
    if (written !== undefined) return toVideo(written, context.config)
    // Another writer came first: a concrete ETag is now stale; '*' re-reads and re-validates a few times.
    if (expected !== '*' || attempt >= 2) throw preconditionFailed('the video changed while it was being updated; read it again')
  }
}

/** The changes, if the record is still the one read (its revision): the record after them, else undefined. */
async function writePatch ({ ddb, table }: VideoStoreContext, record: VideoRecord, changes: PatchVideoBodyType): Promise<VideoRecord | undefined> {
  const given = setClauses(changes, 'f')
  const outcome = await tryWrite(ddb, new UpdateCommand({
    TableName: table,
    Key: videoKey(record.projectId, record.videoId),
    UpdateExpression: `SET ${['updatedAt = :now', ...given.clauses].join(', ')} ADD revision :one`,
    ConditionExpression: record.revision === undefined ? 'attribute_exists(pk) AND attribute_not_exists(revision)' : 'revision = :revision',
    ExpressionAttributeNames: given.names,
    ExpressionAttributeValues: {
      ':now': new Date().toISOString(),
      ':one': 1,
      ...(record.revision === undefined ? {} : { ':revision': record.revision }),
      ...given.values
    },
    ReturnValues: 'ALL_NEW'
  }))
  return outcome.applied ? (outcome.output.Attributes ?? {}) as VideoRecord : undefined
}

export function createVideoStore ({ aws, config, log }: { aws: AwsClients, config: Config, log?: Parameters<typeof recordBestEffortFailure>[2] }) {
  const context: VideoStoreContext = { ddb: aws.ddb, s3: aws.s3, table: config.table, config, log, deletePrefix: createPrefixDeleter(aws.s3) }
  return bindContext(context, { listVideos, getVideo, putVideo, patchVideo, deleteVideo })
}

export type VideoStore = ReturnType<typeof createVideoStore>

declare module 'fastify' {
  interface FastifyInstance {
    videoStore: VideoStore
  }
}

export default fp(async function videoStorePlugin (app) {
  app.decorate('videoStore', createVideoStore({ aws: app.aws, config: app.config, log: app.log }))
}, { name: 'video-store', dependencies: ['aws'] })
