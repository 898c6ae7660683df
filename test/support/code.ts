// Shared by the code version tests: what is stored for a video, straight from S3 and DynamoDB.
import { ListObjectsV2Command } from '@aws-sdk/client-s3'
import { QueryCommand } from '@aws-sdk/lib-dynamodb'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { videoKey } from '../../src/table/video-item.js'

export const codeUrl = (videoId: string, suffix = '', projectId = 'p1'): string => `/v1/projects/${projectId}/videos/${videoId}/code${suffix}`

/** Every S3 key under the video's code prefix and every DynamoDB item of the video (record and versions). */
export async function storedFor (app: FastifyInstance, videoId: string, projectId = 'p1'): Promise<{ keys: string[], items: Array<Record<string, unknown>> }> {
  const listing = await app.aws.s3.send(new ListObjectsV2Command({ Bucket: app.config.codeBucket, Prefix: `code/${projectId}/${videoId}/` }))
  const { Items = [] } = await app.aws.ddb.send(new QueryCommand({
    TableName: app.config.table,
    KeyConditionExpression: 'pk = :pk',
    ExpressionAttributeValues: { ':pk': videoKey(projectId, videoId).pk },
    ConsistentRead: true
  }))
  return { keys: (listing.Contents ?? []).map((object) => object.Key ?? ''), items: Items }
}

export async function postCode (app: FastifyInstance, videoId: string, body: Record<string, unknown>): Promise<LightMyRequestResponse> {
  return await app.inject({ method: 'POST', url: codeUrl(videoId), payload: body })
}

/** These tests assert behaviour, not speed: on a loaded machine, overload shedding and rate limits must not change the answers. */
export const steady = { overload: { maxEventLoopDelayMs: 0, maxHeapBytes: 0 }, rateLimit: { max: 0, windowMs: 60_000 } }
