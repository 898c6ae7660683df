// LangGraph checkpoints of agent threads, per project: what RenderStoreCheckpointSaver keeps through the service.
// The service never interprets a checkpoint: it keeps the serialized bytes the saver sent (type + base64), the
// metadata as JSON (so lists can filter on it) and the channel versions (so a read can hand back the channel values).
import { createHash } from 'node:crypto'
import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { BatchGetCommand, BatchWriteCommand, GetCommand, PutCommand, QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb'
import { conflict, notFound } from '../errors.js'
import { isConditionFailure } from '../table/video-item.js'

/*
 * Items, in the service's one table (keys never start with VIDEO# or IDEMP#, so nothing collides):
 *   thread index   pk=PROJECT#{p}#THREADS        sk=THREAD#{threadId}          (listing the project's threads)
 *   checkpoint     pk=PROJECT#{p}#THREAD#{t}     sk=CHECKPOINT#{ns}#{checkpointId}   written once, conditionally
 *   channel value  pk=PROJECT#{p}#THREAD#{t}     sk=BLOB#{ns}#{channel}#{version}    written once (first wins)
 *   pending write  pk=PROJECT#{p}#THREAD#{t}     sk=WRITE#{ns}#{checkpointId}#{taskId}#{idx}
 *                  idx >= 0 first wins (a repeat of the same task's write changes nothing); idx < 0 (LangGraph's
 *                  special writes: error, interrupt, resume) is replaced, as every LangGraph saver does
 * ns and channel are URI-encoded in keys, so '#' never occurs inside a key part. Checkpoint ids are uuid6: their
 * string order is their time order, so a descending query is newest first.
 * Payloads larger than INLINE_BYTES go to the video bucket under checkpoints/{p}/{t}/{sha256} (content-addressed, so
 * a repeated write rewrites the same object): the video bucket, not the code bucket, because code may sit under
 * Object Lock and versioning, where deleting a thread would leave its state behind; checkpoints are working state.
 */

/** Serialized bytes as LangGraph's serde gave them: its type tag and the bytes, base64. */
export interface Payload {
  type: string
  data: string
}

export interface StoredBlob extends Payload {
  channel: string
  version: string
}

export interface StoredWrite extends Payload {
  taskId: string
  idx: number
  channel: string
  taskPath: string
}

export interface CheckpointPut {
  checkpointNs: string
  parentCheckpointId?: string
  checkpoint: Payload
  metadata: Record<string, unknown>
  channelVersions: Record<string, string | number>
  blobs: StoredBlob[]
}

export interface StoredCheckpoint {
  threadId: string
  checkpointNs: string
  checkpointId: string
  parentCheckpointId?: string
  checkpoint: Payload
  metadata: Record<string, unknown>
  channelVersions: Record<string, string | number>
  blobs: StoredBlob[]
  pendingWrites: StoredWrite[]
  createdAt: string
}

export interface ListCheckpoints {
  checkpointNs?: string
  before?: string
  filter?: Record<string, unknown>
  limit: number
  cursor?: string
}

export const INLINE_BYTES = 96 * 1024
const PAGE = 100

const enc = (part: string): string => encodeURIComponent(part)
export const threadKey = (projectId: string, threadId: string): string => `PROJECT#${projectId}#THREAD#${threadId}`
const threadsKey = (projectId: string): string => `PROJECT#${projectId}#THREADS`
const checkpointSk = (ns: string, id: string): string => `CHECKPOINT#${enc(ns)}#${id}`
const blobSk = (ns: string, channel: string, version: string): string => `BLOB#${enc(ns)}#${enc(channel)}#${enc(version)}`
const writePrefix = (ns: string, checkpointId: string): string => `WRITE#${enc(ns)}#${checkpointId}#`
const s3Prefix = (projectId: string, threadId: string): string => `checkpoints/${projectId}/${threadId}/`

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')

/** Same content, whatever order its keys came in. */
function canonical (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`
  if (typeof value === 'object' && value !== null) {
    return `{${Object.keys(value).sort().map((key) => `${JSON.stringify(key)}:${canonical((value as Record<string, unknown>)[key])}`).join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

export function metadataMatches (metadata: Record<string, unknown>, filter: Record<string, unknown> | undefined): boolean {
  if (filter === undefined) return true
  return Object.entries(filter).every(([key, value]) => canonical(metadata[key]) === canonical(value))
}

export interface CheckpointStoreOptions {
  ddb: DynamoDBDocumentClient
  s3: S3Client
  table: string
  bucket: string
  sse?: Record<string, unknown>
}

export function createCheckpointStore ({ ddb, s3, table, bucket, sse = {} }: CheckpointStoreOptions) {
  /** The payload as an item holds it: inline, or the key of the S3 object that holds it. */
  async function keep (projectId: string, threadId: string, payload: Payload): Promise<Record<string, unknown>> {
    if (payload.data.length <= INLINE_BYTES) return { type: payload.type, data: payload.data }
    const key = `${s3Prefix(projectId, threadId)}${sha256(payload.data)}`
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: payload.data, ContentType: 'text/plain', ...sse }))
    return { type: payload.type, s3Key: key }
  }

  async function load (stored: Record<string, unknown>): Promise<Payload> {
    if (typeof stored.s3Key !== 'string') return { type: String(stored.type), data: String(stored.data ?? '') }
    const { Body } = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: stored.s3Key }))
    return { type: String(stored.type), data: await (Body as { transformToString: () => Promise<string> }).transformToString() }
  }

  async function queryAll (input: ConstructorParameters<typeof QueryCommand>[0]): Promise<Array<Record<string, unknown>>> {
    const items: Array<Record<string, unknown>> = []
    let start: Record<string, unknown> | undefined
    do {
      const { Items = [], LastEvaluatedKey } = await ddb.send(new QueryCommand({ ...input, ExclusiveStartKey: start }))
      items.push(...Items)
      start = LastEvaluatedKey
    } while (start !== undefined)
    return items
  }

  async function writeItems (projectId: string, threadId: string, ns: string, checkpointId: string): Promise<StoredWrite[]> {
    const items = await queryAll({
      TableName: table,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
      ExpressionAttributeValues: { ':pk': threadKey(projectId, threadId), ':prefix': writePrefix(ns, checkpointId) },
      ConsistentRead: true
    })
    return await Promise.all(items.map(async (item) => ({
      taskId: String(item.taskId), idx: Number(item.idx), channel: String(item.channel), taskPath: String(item.taskPath ?? ''), ...await load(item.value as Record<string, unknown>)
    })))
  }

  async function blobItems (projectId: string, threadId: string, ns: string, versions: Record<string, string | number>): Promise<StoredBlob[]> {
    const keys = Object.entries(versions).map(([channel, version]) => ({ pk: threadKey(projectId, threadId), sk: blobSk(ns, channel, String(version)) }))
    const found: Array<Record<string, unknown>> = []
    for (let at = 0; at < keys.length; at += 100) {
      let request: Record<string, { Keys: Array<Record<string, unknown>>, ConsistentRead: boolean }> | undefined = { [table]: { Keys: keys.slice(at, at + 100), ConsistentRead: true } }
      while (request !== undefined && Object.keys(request).length > 0) {
        const answer = await ddb.send(new BatchGetCommand({ RequestItems: request }))
        found.push(...(answer.Responses?.[table] ?? []))
        request = answer.UnprocessedKeys as typeof request
      }
    }
    const blobs = await Promise.all(found.map(async (item) => ({ channel: String(item.channel), version: String(item.version), ...await load(item.value as Record<string, unknown>) })))
    return blobs.filter((blob) => blob.type !== 'empty')
  }

  async function assemble (projectId: string, item: Record<string, unknown>): Promise<StoredCheckpoint> {
    const threadId = String(item.threadId)
    const checkpointNs = String(item.checkpointNs ?? '')
    const checkpointId = String(item.checkpointId)
    const channelVersions = JSON.parse(String(item.channelVersions)) as Record<string, string | number>
    const [checkpoint, blobs, pendingWrites] = await Promise.all([
      load(item.checkpoint as Record<string, unknown>),
      blobItems(projectId, threadId, checkpointNs, channelVersions),
      writeItems(projectId, threadId, checkpointNs, checkpointId)
    ])
    return {
      threadId,
      checkpointNs,
      checkpointId,
      ...(typeof item.parentCheckpointId === 'string' ? { parentCheckpointId: item.parentCheckpointId } : {}),
      checkpoint,
      metadata: JSON.parse(String(item.metadata)) as Record<string, unknown>,
      channelVersions,
      blobs,
      pendingWrites,
      createdAt: String(item.createdAt)
    }
  }

  /** Records the thread in the project's index (idempotent: a repeat only moves updatedAt). */
  async function indexThread (projectId: string, threadId: string): Promise<void> {
    const now = new Date().toISOString()
    await ddb.send(new UpdateCommand({
      TableName: table,
      Key: { pk: threadsKey(projectId), sk: `THREAD#${threadId}` },
      UpdateExpression: 'SET threadId = :t, projectId = :p, createdAt = if_not_exists(createdAt, :now), updatedAt = :now',
      ExpressionAttributeValues: { ':t': threadId, ':p': projectId, ':now': now }
    }))
  }

  return {
    /**
     * Stores a checkpoint under its id. Channel values first, then the checkpoint item (the commit point), so a
     * checkpoint that reads as stored has all its values. Each part is written once: a repeat (a retry after a lost
     * answer) finds its own item and answers created=false; another content under the same id is a 409.
     */
    async putCheckpoint (projectId: string, threadId: string, checkpointId: string, put: CheckpointPut): Promise<{ created: boolean, checkpointNs: string }> {
      const ns = put.checkpointNs
      const contentSha256 = sha256(canonical({ ...put, blobs: undefined }))
      const key = { pk: threadKey(projectId, threadId), sk: checkpointSk(ns, checkpointId) }
      const existing = (await ddb.send(new GetCommand({ TableName: table, Key: key, ConsistentRead: true }))).Item
      if (existing !== undefined) return answerExisting(existing)
      await indexThread(projectId, threadId)
      await Promise.all(put.blobs.map(async (blob) => {
        const value = await keep(projectId, threadId, blob)
        await ddb.send(new PutCommand({
          TableName: table,
          Item: { pk: key.pk, sk: blobSk(ns, blob.channel, blob.version), channel: blob.channel, version: blob.version, value },
          ConditionExpression: 'attribute_not_exists(pk)'
        })).catch((error: unknown) => { if (!isConditionFailure(error)) throw error })
      }))
      try {
        await ddb.send(new PutCommand({
          TableName: table,
          Item: {
            ...key,
            threadId,
            checkpointNs: ns,
            checkpointId,
            parentCheckpointId: put.parentCheckpointId,
            checkpoint: await keep(projectId, threadId, put.checkpoint),
            metadata: JSON.stringify(put.metadata),
            channelVersions: JSON.stringify(put.channelVersions),
            contentSha256,
            createdAt: new Date().toISOString()
          },
          ConditionExpression: 'attribute_not_exists(pk)',
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD'
        }))
      } catch (error) {
        if (!isConditionFailure(error)) throw error
        const again = (await ddb.send(new GetCommand({ TableName: table, Key: key, ConsistentRead: true }))).Item
        if (again === undefined) throw error
        return answerExisting(again)
      }
      return { created: true, checkpointNs: ns }

      function answerExisting (item: Record<string, unknown>): { created: boolean, checkpointNs: string } {
        if (item.contentSha256 !== contentSha256) throw conflict(`checkpoint ${checkpointId} of thread ${threadId} is already stored with other content; checkpoint ids name one checkpoint`)
        return { created: false, checkpointNs: ns }
      }
    },

    /** Pending writes of one task against a checkpoint; see the layout for which repeat wins. */
    async putWrites (projectId: string, threadId: string, checkpointId: string, taskId: string, checkpointNs: string, taskPath: string, writes: Array<Payload & { idx: number, channel: string }>): Promise<{ stored: number }> {
      await indexThread(projectId, threadId)
      let stored = 0
      await Promise.all(writes.map(async (write) => {
        const value = await keep(projectId, threadId, write)
        const item = { pk: threadKey(projectId, threadId), sk: `${writePrefix(checkpointNs, checkpointId)}${taskId}#${write.idx}`, taskId, idx: write.idx, channel: write.channel, taskPath, value }
        try {
          await ddb.send(new PutCommand({ TableName: table, Item: item, ...(write.idx >= 0 ? { ConditionExpression: 'attribute_not_exists(pk)' } : {}) }))
          stored++
        } catch (error) {
          if (!isConditionFailure(error)) throw error
        }
      }))
      return { stored }
    },

    /** One checkpoint, or the thread's newest in the namespace ('latest'); 404 when there is none. */
    async getCheckpoint (projectId: string, threadId: string, checkpointId: string | 'latest', checkpointNs: string): Promise<StoredCheckpoint> {
      let item: Record<string, unknown> | undefined
      if (checkpointId === 'latest') {
        const { Items = [] } = await ddb.send(new QueryCommand({
          TableName: table,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
          ExpressionAttributeValues: { ':pk': threadKey(projectId, threadId), ':prefix': `CHECKPOINT#${enc(checkpointNs)}#` },
          ScanIndexForward: false,
          Limit: 1,
          ConsistentRead: true
        }))
        item = Items[0]
      } else {
        item = (await ddb.send(new GetCommand({ TableName: table, Key: { pk: threadKey(projectId, threadId), sk: checkpointSk(checkpointNs, checkpointId) }, ConsistentRead: true }))).Item
      }
      if (item === undefined) throw notFound(`no checkpoint ${checkpointId} in namespace ${JSON.stringify(checkpointNs)} of thread ${threadId}`)
      return await assemble(projectId, item)
    },

    /** A thread's checkpoints, newest first within each namespace, filtered; `cursor` is the sk to continue after. */
    async listCheckpoints (projectId: string, threadId: string, options: ListCheckpoints): Promise<{ items: StoredCheckpoint[], next?: string }> {
      const pk = threadKey(projectId, threadId)
      const prefix = options.checkpointNs === undefined ? 'CHECKPOINT#' : `CHECKPOINT#${enc(options.checkpointNs)}#`
      const found: Array<Record<string, unknown>> = []
      let start: Record<string, unknown> | undefined = options.cursor === undefined ? undefined : { pk, sk: options.cursor }
      let next: string | undefined
      scan: for (;;) {
        const { Items = [], LastEvaluatedKey }: { Items?: Array<Record<string, unknown>>, LastEvaluatedKey?: Record<string, unknown> } = await ddb.send(new QueryCommand({
          TableName: table,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
          ExpressionAttributeValues: { ':pk': pk, ':prefix': prefix },
          ScanIndexForward: false,
          ExclusiveStartKey: start,
          Limit: PAGE,
          ConsistentRead: true
        }))
        for (const item of Items) {
          if (options.before !== undefined && String(item.checkpointId) >= options.before) continue
          if (!metadataMatches(JSON.parse(String(item.metadata)) as Record<string, unknown>, options.filter)) continue
          found.push(item)
          if (found.length >= options.limit) {
            next = String(item.sk)
            break scan
          }
        }
        if (LastEvaluatedKey === undefined) break
        start = LastEvaluatedKey
      }
      const items = await Promise.all(found.map(async (item) => await assemble(projectId, item)))
      return { items, next }
    },

    /** The project's threads, in id order, a page at a time. */
    async listThreads (projectId: string, limit: number, after?: string): Promise<{ items: Array<{ threadId: string, createdAt: string, updatedAt: string }>, next?: string }> {
      const { Items = [], LastEvaluatedKey } = await ddb.send(new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': threadsKey(projectId) },
        ExclusiveStartKey: after === undefined ? undefined : { pk: threadsKey(projectId), sk: `THREAD#${after}` },
        Limit: limit,
        ConsistentRead: true
      }))
      const items = Items.map((item) => ({ threadId: String(item.threadId), createdAt: String(item.createdAt), updatedAt: String(item.updatedAt) }))
      return { items, next: LastEvaluatedKey === undefined ? undefined : items.at(-1)?.threadId }
    },

    /**
     * Removes a thread: its items, its S3 payloads, then its index entry (last, so a delete that failed part way is
     * still listed and can be repeated). Deleting a thread that is not there is not an error.
     */
    async deleteThread (projectId: string, threadId: string): Promise<{ deletedItems: number }> {
      const pk = threadKey(projectId, threadId)
      const items = await queryAll({ TableName: table, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': pk }, ProjectionExpression: 'pk, sk', ConsistentRead: true })
      for (let at = 0; at < items.length; at += 25) {
        let requests = items.slice(at, at + 25).map((item) => ({ DeleteRequest: { Key: { pk: item.pk, sk: item.sk } } }))
        while (requests.length > 0) {
          const { UnprocessedItems } = await ddb.send(new BatchWriteCommand({ RequestItems: { [table]: requests } }))
          requests = (UnprocessedItems?.[table] ?? []) as typeof requests
        }
      }
      let token: string | undefined
      do {
        const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: s3Prefix(projectId, threadId), ContinuationToken: token }))
        const objects = (listed.Contents ?? []).map((object) => ({ Key: object.Key as string }))
        if (objects.length > 0) await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects, Quiet: true } }))
        token = listed.IsTruncated === true ? listed.NextContinuationToken : undefined
      } while (token !== undefined)
      await ddb.send(new BatchWriteCommand({ RequestItems: { [table]: [{ DeleteRequest: { Key: { pk: threadsKey(projectId), sk: `THREAD#${threadId}` } } }] } }))
      return { deletedItems: items.length }
    }
  }
}

export type CheckpointStore = ReturnType<typeof createCheckpointStore>
