// LangGraph checkpoints of agent threads, per project: what RenderStoreCheckpointSaver keeps through the service.
// The service never interprets a checkpoint: it keeps the serialized bytes the saver sent (type + base64), the
// metadata as JSON (so lists can filter on it) and the channel versions (so a read can hand back the channel values).
// Key layout: keys.ts; reads: read.ts.
import { DeleteObjectsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3'
import { BatchWriteCommand, GetCommand, PutCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb'
import type { Static } from 'typebox'
import { conflict, serviceUnavailable } from '../errors.js'
import type { recordBestEffortFailure } from '../http/metrics.js'
import { checkpointObjectPrefix } from '../table/keys.js'
import { writeIf } from '../table/conditions.js'
import { blobSk, canonical, checkpointSk, sha256, threadIndexKey, threadKey, writePrefix } from './keys.js'
import { getCheckpoint, keep, listCheckpoints, listThreads, queryAll } from './read.js'
import type { Blob, CheckpointRecord, PendingWrite, Payload as PayloadSchema, PutCheckpointType } from '../../schemas/checkpoints.js'
import { bindContext } from '../stores.js'

export { metadataMatches, threadKey } from './keys.js'
export { INLINE_BYTES } from './read.js'

/** Serialized bytes as LangGraph's serde gave them: its type tag and the bytes, base64. */
export type Payload = Static<typeof PayloadSchema>
export type StoredBlob = Static<typeof Blob>
export type StoredWrite = Static<typeof PendingWrite>
export type StoredCheckpoint = Static<typeof CheckpointRecord>
/** A checkpoint to store: the request body, its namespace given ('' for the root graph). */
export type CheckpointPut = PutCheckpointType & { checkpointNs: string }

export interface ListCheckpoints {
  checkpointNs?: string
  before?: string
  filter?: Record<string, unknown>
  limit: number
  cursor?: string
}

export interface CheckpointStoreOptions {
  ddb: DynamoDBDocumentClient
  s3: S3Client
  table: string
  bucket: string
  sse?: Record<string, unknown>
  log?: Parameters<typeof recordBestEffortFailure>[2]
}

export type CheckpointContext = Required<Pick<CheckpointStoreOptions, 'ddb' | 's3' | 'table' | 'bucket' | 'sse'>> & Pick<CheckpointStoreOptions, 'log'>

/** Records the thread in the project's index (idempotent: a repeat only moves updatedAt). */
async function indexThread ({ ddb, table }: CheckpointContext, projectId: string, threadId: string): Promise<void> {
  const now = new Date().toISOString()
  await ddb.send(new UpdateCommand({
    TableName: table,
    Key: threadIndexKey(projectId, threadId),
    UpdateExpression: 'SET threadId = :t, projectId = :p, createdAt = if_not_exists(createdAt, :now), updatedAt = :now',
    ExpressionAttributeValues: { ':t': threadId, ':p': projectId, ':now': now }
  }))
}

/**
 * Stores a checkpoint under its id. Channel values first, then the checkpoint item (the commit point), so a
 * checkpoint that reads as stored has all its values. Each part is written once: a repeat (a retry after a lost
 * answer) finds its own item and answers created=false; another content under the same id is a 409.
 */
export async function putCheckpoint (context: CheckpointContext, projectId: string, threadId: string, checkpointId: string, put: CheckpointPut): Promise<{ created: boolean, checkpointNs: string }> {
  const { ddb, table } = context
  const ns = put.checkpointNs
  const contentSha256 = sha256(canonical({ ...put, blobs: undefined }))
  const key = { pk: threadKey(projectId, threadId), sk: checkpointSk(ns, checkpointId) }
  const stored = async (): Promise<Record<string, unknown> | undefined> => (await ddb.send(new GetCommand({ TableName: table, Key: key, ConsistentRead: true }))).Item
  const answerExisting = (item: Record<string, unknown>): { created: boolean, checkpointNs: string } => {
    if (item.contentSha256 !== contentSha256) throw conflict(`checkpoint ${checkpointId} of thread ${threadId} is already stored with other content; checkpoint ids name one checkpoint`)
    return { created: false, checkpointNs: ns }
  }
  const existing = await stored()
  if (existing !== undefined) return answerExisting(existing)
  await indexThread(context, projectId, threadId)
  await Promise.all(put.blobs.map(async (blob) => {
    const value = await keep(context, projectId, threadId, blob)
    // First wins: the same channel version is the same value.
    await writeIf(ddb, new PutCommand({
      TableName: table,
      Item: { pk: key.pk, sk: blobSk(ns, blob.channel, blob.version), channel: blob.channel, version: blob.version, value },
      ConditionExpression: 'attribute_not_exists(pk)'
    }))
  }))
  const created = await writeIf(ddb, new PutCommand({
    TableName: table,
    Item: {
      ...key,
      threadId,
      checkpointNs: ns,
      checkpointId,
      parentCheckpointId: put.parentCheckpointId,
      checkpoint: await keep(context, projectId, threadId, put.checkpoint),
      metadata: JSON.stringify(put.metadata),
      channelVersions: JSON.stringify(put.channelVersions),
      contentSha256,
      createdAt: new Date().toISOString()
    },
    ConditionExpression: 'attribute_not_exists(pk)'
  }))
  if (created) return { created: true, checkpointNs: ns }
  const again = await stored()
  // It was there a moment ago and is gone now: the thread is being deleted. A repeat sees what is left.
  if (again === undefined) throw serviceUnavailable(`checkpoint ${checkpointId} of thread ${threadId} changed while it was stored; repeat the request`, 1)
  return answerExisting(again)
}

/** Pending writes of one task against a checkpoint; see the layout (keys.ts) for which repeat wins. */
export async function putWrites (context: CheckpointContext, projectId: string, threadId: string, checkpointId: string, taskId: string, checkpointNs: string, taskPath: string, writes: Array<Payload & { idx: number, channel: string }>): Promise<{ stored: number }> {
  const { ddb, table } = context
  await indexThread(context, projectId, threadId)
  let stored = 0
  await Promise.all(writes.map(async (write) => {
    const value = await keep(context, projectId, threadId, write)
    const item = { pk: threadKey(projectId, threadId), sk: `${writePrefix(checkpointNs, checkpointId)}${taskId}#${write.idx}`, taskId, idx: write.idx, channel: write.channel, taskPath, value }
    if (await writeIf(ddb, new PutCommand({ TableName: table, Item: item, ...(write.idx >= 0 ? { ConditionExpression: 'attribute_not_exists(pk)' } : {}) }))) stored++
  }))
  return { stored }
}

/**
 * Removes a thread: its items, its S3 payloads, then its index entry (last, so a delete that failed part way is
 * still listed and can be repeated). Deleting a thread that is not there is not an error.
 */
export async function deleteThread (context: CheckpointContext, projectId: string, threadId: string): Promise<{ deletedItems: number }> {
  const { ddb, s3, table, bucket } = context
  const pk = threadKey(projectId, threadId)
  const items = await queryAll(context, { TableName: table, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': pk }, ProjectionExpression: 'pk, sk', ConsistentRead: true })
  for (let at = 0; at < items.length; at += 25) {
    let requests = items.slice(at, at + 25).map((item) => ({ DeleteRequest: { Key: { pk: item.pk, sk: item.sk } } }))
    while (requests.length > 0) {
      const { UnprocessedItems } = await ddb.send(new BatchWriteCommand({ RequestItems: { [table]: requests } }))
      requests = (UnprocessedItems?.[table] ?? []) as typeof requests
    }
  }
  let token: string | undefined
  do {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: checkpointObjectPrefix(projectId, threadId), ContinuationToken: token }))
    const objects = (listed.Contents ?? []).map((object) => ({ Key: object.Key as string }))
    if (objects.length > 0) await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects, Quiet: true } }))
    token = listed.IsTruncated === true ? listed.NextContinuationToken : undefined
  } while (token !== undefined)
  await ddb.send(new BatchWriteCommand({ RequestItems: { [table]: [{ DeleteRequest: { Key: threadIndexKey(projectId, threadId) } }] } }))
  return { deletedItems: items.length }
}

export function createCheckpointStore ({ ddb, s3, table, bucket, sse = {}, log }: CheckpointStoreOptions) {
  const context: CheckpointContext = { ddb, s3, table, bucket, sse, log }
  return bindContext(context, { putCheckpoint, putWrites, getCheckpoint, listCheckpoints, listThreads, deleteThread })
}

export type CheckpointStore = ReturnType<typeof createCheckpointStore>
