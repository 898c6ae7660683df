// Deleting a video: the DELETE mark, its objects in both buckets (every version), its items, the record last.
import { AbortMultipartUploadCommand, type S3Client } from '@aws-sdk/client-s3'
import { BatchWriteCommand, QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb'
import type { Config } from '../config.js'
import { HttpProblem, notFound } from '../errors.js'
import { recordBestEffortFailure } from '../http/metrics.js'
import type { RetainedVersion, createPrefixDeleter } from '../aws/prefix-delete.js'
import { VIDEO_OBJECT_ROOTS, videoKey, videoObjectPrefix } from '../table/keys.js'
import { writeIf } from '../table/conditions.js'
import { DELETE_MARK } from '../table/video-record.js'

export interface VideoDeletion {
  ddb: DynamoDBDocumentClient
  s3: S3Client
  table: string
  config: Pick<Config, 'videoBucket' | 'codeBucket'>
  deletePrefix: ReturnType<typeof createPrefixDeleter>
  log?: Parameters<typeof recordBestEffortFailure>[2]
}

type ItemKey = { pk: unknown, sk: unknown }

/** Every item of a video (its record, versions, scenes, sessions), read page by page. */
async function videoItems ({ ddb, table }: VideoDeletion, projectId: string, videoId: string): Promise<Array<Record<string, unknown>>> {
  const items: Array<Record<string, unknown>> = []
  let start: Record<string, unknown> | undefined
  do {
    const page = await ddb.send(new QueryCommand({
      TableName: table,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': videoKey(projectId, videoId).pk },
      ExclusiveStartKey: start
    }))
    items.push(...(page.Items ?? []))
    start = page.LastEvaluatedKey
  } while (start !== undefined)
  return items
}

/** Deletes items 25 at a time, retrying what the table left unprocessed; a table that keeps throttling is a 503. */
async function deleteItems ({ ddb, table }: VideoDeletion, keys: ItemKey[]): Promise<void> {
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

/** Multipart uploads in flight hold parts that no listing shows: abort them (best effort: local S3 answers 405). */
async function abortOpenUploads ({ s3, config, log }: VideoDeletion, items: Array<Record<string, unknown>>): Promise<void> {
  await Promise.all(items.filter((item) => typeof item.s3UploadId === 'string' && typeof item.key === 'string').map(async (session) => {
    await s3.send(new AbortMultipartUploadCommand({ Bucket: config.videoBucket, Key: session.key as string, UploadId: session.s3UploadId as string }))
      .catch((error: unknown) => { recordBestEffortFailure('video-delete-abort-multipart', error, log) })
  }))
}

/**
 * Removes a video: its objects in both buckets first (every version, where a bucket keeps versions), then its items,
 * the video record last, so a failure part way leaves a record that a repeated DELETE finishes. Answers the object
 * versions S3 Object Lock keeps (legal hold, retention): they stay, under a delete marker, until their lock lapses.
 */
export async function deleteVideo (context: VideoDeletion, projectId: string, videoId: string): Promise<{ retained: RetainedVersion[] }> {
  const { ddb, table, config, deletePrefix } = context
  // Marked before anything is listed: a version committed after the listing is withdrawn by its writer (DELETE_MARK).
  const marked = await writeIf(ddb, new UpdateCommand({
    TableName: table,
    Key: videoKey(projectId, videoId),
    UpdateExpression: 'SET #deleting = :now',
    ConditionExpression: 'attribute_exists(pk)',
    ExpressionAttributeNames: { '#deleting': DELETE_MARK },
    ExpressionAttributeValues: { ':now': Date.now() }
  }))
  if (!marked) throw notFound(`video ${projectId}/${videoId} does not exist`)
  const items = await videoItems(context, projectId, videoId)
  await abortOpenUploads(context, items)
  const buckets = [...new Set([config.videoBucket, config.codeBucket])]
  const retained = (await Promise.all(VIDEO_OBJECT_ROOTS.flatMap((root) =>
    buckets.map(async (bucket) => await deletePrefix(bucket, videoObjectPrefix(projectId, videoId, root)))))).flat()
  const record = videoKey(projectId, videoId)
  await deleteItems(context, items.filter((item) => item.sk !== record.sk) as ItemKey[])
  await deleteItems(context, [record])
  return { retained }
}
