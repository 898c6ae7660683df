// Reading checkpoints back: payloads (inline or in S3), channel values, pending writes, one checkpoint, lists.
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { BatchGetCommand, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb'
import { notFound } from '../errors.js'
import { checkpointObjectPrefix } from '../table/keys.js'
import { blobSk, checkpointPrefix, checkpointSk, metadataMatches, sha256, threadKey, threadsKey, writePrefix } from './keys.js'
import type { CheckpointContext, ListCheckpoints, Payload, StoredBlob, StoredCheckpoint, StoredWrite } from './store.js'

export const INLINE_BYTES = 96 * 1024
const PAGE = 100

type Item = Record<string, unknown>

/** The payload as an item holds it: inline, or the key of the S3 object that holds it. */
export async function keep ({ s3, bucket, sse }: CheckpointContext, projectId: string, threadId: string, payload: Payload): Promise<Item> {
  if (payload.data.length <= INLINE_BYTES) return { type: payload.type, data: payload.data }
  const key = `${checkpointObjectPrefix(projectId, threadId)}${sha256(payload.data)}`
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: payload.data, ContentType: 'text/plain', ...sse }))
  return { type: payload.type, s3Key: key }
}

async function load ({ s3, bucket }: CheckpointContext, stored: Item): Promise<Payload> {
  if (typeof stored.s3Key !== 'string') return { type: String(stored.type), data: String(stored.data ?? '') }
  const { Body } = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: stored.s3Key }))
  return { type: String(stored.type), data: await (Body as { transformToString: () => Promise<string> }).transformToString() }
}

export async function queryAll ({ ddb }: CheckpointContext, input: ConstructorParameters<typeof QueryCommand>[0]): Promise<Item[]> {
  const items: Item[] = []
  let start: Item | undefined
  do {
    const { Items = [], LastEvaluatedKey } = await ddb.send(new QueryCommand({ ...input, ExclusiveStartKey: start }))
    items.push(...Items)
    start = LastEvaluatedKey
  } while (start !== undefined)
  return items
}

async function writeItems (context: CheckpointContext, projectId: string, threadId: string, ns: string, checkpointId: string): Promise<StoredWrite[]> {
  const items = await queryAll(context, {
    TableName: context.table,
    KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
    ExpressionAttributeValues: { ':pk': threadKey(projectId, threadId), ':prefix': writePrefix(ns, checkpointId) },
    ConsistentRead: true
  })
  return await Promise.all(items.map(async (item) => ({
    taskId: String(item.taskId), idx: Number(item.idx), channel: String(item.channel), taskPath: String(item.taskPath ?? ''), ...await load(context, item.value as Item)
  })))
}

async function blobItems (context: CheckpointContext, projectId: string, threadId: string, ns: string, versions: Record<string, string | number>): Promise<StoredBlob[]> {
  const { ddb, table } = context
  const keys = Object.entries(versions).map(([channel, version]) => ({ pk: threadKey(projectId, threadId), sk: blobSk(ns, channel, String(version)) }))
  const found: Item[] = []
  for (let at = 0; at < keys.length; at += 100) {
    let request: Record<string, { Keys: Item[], ConsistentRead: boolean }> | undefined = { [table]: { Keys: keys.slice(at, at + 100), ConsistentRead: true } }
    while (request !== undefined && Object.keys(request).length > 0) {
      const answer = await ddb.send(new BatchGetCommand({ RequestItems: request }))
      found.push(...(answer.Responses?.[table] ?? []))
      request = answer.UnprocessedKeys as typeof request
    }
  }
  const blobs = await Promise.all(found.map(async (item) => ({ channel: String(item.channel), version: String(item.version), ...await load(context, item.value as Item) })))
  return blobs.filter((blob) => blob.type !== 'empty')
}

async function assemble (context: CheckpointContext, projectId: string, item: Item): Promise<StoredCheckpoint> {
  const threadId = String(item.threadId)
  const checkpointNs = String(item.checkpointNs ?? '')
  const checkpointId = String(item.checkpointId)
  const channelVersions = JSON.parse(String(item.channelVersions)) as Record<string, string | number>
  const [checkpoint, blobs, pendingWrites] = await Promise.all([
    load(context, item.checkpoint as Item),
    blobItems(context, projectId, threadId, checkpointNs, channelVersions),
    writeItems(context, projectId, threadId, checkpointNs, checkpointId)
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

/** One checkpoint, or the thread's newest in the namespace ('latest'); 404 when there is none. */
export async function getCheckpoint (context: CheckpointContext, projectId: string, threadId: string, checkpointId: string | 'latest', checkpointNs: string): Promise<StoredCheckpoint> {
  const { ddb, table } = context
  let item: Item | undefined
  if (checkpointId === 'latest') {
    const { Items = [] } = await ddb.send(new QueryCommand({
      TableName: table,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
      ExpressionAttributeValues: { ':pk': threadKey(projectId, threadId), ':prefix': checkpointPrefix(checkpointNs) },
      ScanIndexForward: false,
      Limit: 1,
      ConsistentRead: true
    }))
    item = Items[0]
  } else {
    item = (await ddb.send(new GetCommand({ TableName: table, Key: { pk: threadKey(projectId, threadId), sk: checkpointSk(checkpointNs, checkpointId) }, ConsistentRead: true }))).Item
  }
  if (item === undefined) throw notFound(`no checkpoint ${checkpointId} in namespace ${JSON.stringify(checkpointNs)} of thread ${threadId}`)
  return await assemble(context, projectId, item)
}

/** A thread's checkpoints, newest first within each namespace, filtered; `cursor` is the sk to continue after. */
export async function listCheckpoints (context: CheckpointContext, projectId: string, threadId: string, options: ListCheckpoints): Promise<{ items: StoredCheckpoint[], next?: string }> {
  const pk = threadKey(projectId, threadId)
  const found: Item[] = []
  let start: Item | undefined = options.cursor === undefined ? undefined : { pk, sk: options.cursor }
  let next: string | undefined
  scan: for (;;) {
    const { Items = [], LastEvaluatedKey }: { Items?: Item[], LastEvaluatedKey?: Item } = await context.ddb.send(new QueryCommand({
      TableName: context.table,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
      ExpressionAttributeValues: { ':pk': pk, ':prefix': checkpointPrefix(options.checkpointNs) },
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
  const items = await Promise.all(found.map(async (item) => await assemble(context, projectId, item)))
  return { items, next }
}

/** The project's threads, in id order, a page at a time. */
export async function listThreads ({ ddb, table }: CheckpointContext, projectId: string, limit: number, after?: string): Promise<{ items: Array<{ threadId: string, createdAt: string, updatedAt: string }>, next?: string }> {
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
}
