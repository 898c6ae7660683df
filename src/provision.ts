import {
  CreateBucketCommand, HeadBucketCommand, PutBucketEncryptionCommand, PutBucketLifecycleConfigurationCommand,
  PutPublicAccessBlockCommand, type S3Client
} from '@aws-sdk/client-s3'
import { CreateTableCommand, DescribeTableCommand, UpdateTimeToLiveCommand, waitUntilTableExists, type DynamoDBClient } from '@aws-sdk/client-dynamodb'
import type { FastifyBaseLogger } from 'fastify'
type Logger = Pick<FastifyBaseLogger, 'info' | 'warn'>
import type { Config } from './config.js'

/** Table layout shared by the stores: one item collection per video, a GSI listing a project's videos. */
export const TABLE_KEYS = { partitionKey: 'pk', sortKey: 'sk', projectIndex: 'gsi1', projectIndexPartitionKey: 'gsi1pk', projectIndexSortKey: 'gsi1sk', ttlAttribute: 'expiresAtEpoch' } as const

function errorName (error: unknown): string {
  return (error as { name?: string }).name ?? 'Error'
}

/** Applies a setting the backend may lack; answers the reason it was refused (name and HTTP status), or undefined when applied. */
async function optionalFeature (apply: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await apply()
    return undefined
  } catch (error) {
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode
    return status === undefined ? errorName(error) : `${errorName(error)} ${status}`
  }
}

function reportMissing (log: Logger, target: string, missing: Record<string, string | undefined>): void {
  const refused = Object.entries(missing).filter(([, reason]) => reason !== undefined)
  if (refused.length === 0) return
  log.warn({ target, missing: Object.fromEntries(refused) }, `${target}: not supported by this backend, going on without: ${refused.map(([feature, reason]) => `${feature} (${reason ?? ''})`).join(', ')}`)
}

async function ensureBucket (s3: S3Client, config: Config, bucket: string, log: Logger): Promise<void> {
  let created = false
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }))
  } catch (error) {
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode
    if (status !== 404 && errorName(error) !== 'NotFound' && errorName(error) !== 'NoSuchBucket') throw error
    await s3.send(new CreateBucketCommand({
      Bucket: bucket,
      CreateBucketConfiguration: config.region === 'us-east-1' ? undefined : { LocationConstraint: config.region as never }
    }))
    created = true
  }
  const missing: Record<string, string | undefined> = {}
  if (config.sse.algorithm !== 'none') {
    missing['default encryption'] = await optionalFeature(async () => await s3.send(new PutBucketEncryptionCommand({
      Bucket: bucket,
      ServerSideEncryptionConfiguration: {
        Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: config.sse.algorithm as 'AES256' | 'aws:kms', KMSMasterKeyID: config.sse.kmsKeyId }, BucketKeyEnabled: config.sse.algorithm === 'aws:kms' }]
      }
    })))
  }
  missing['public access block'] = await optionalFeature(async () => await s3.send(new PutPublicAccessBlockCommand({
    Bucket: bucket,
    PublicAccessBlockConfiguration: { BlockPublicAcls: true, IgnorePublicAcls: true, BlockPublicPolicy: true, RestrictPublicBuckets: true }
  })))
  // Multipart uploads whose replica died (abandoned sessions) would otherwise keep their parts, billed, forever.
  missing['lifecycle rule aborting incomplete multipart uploads'] = await optionalFeature(async () => await s3.send(new PutBucketLifecycleConfigurationCommand({
    Bucket: bucket,
    LifecycleConfiguration: {
      Rules: [
        { ID: 'abort-incomplete-multipart', Status: 'Enabled', Filter: { Prefix: '' }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } },
        { ID: 'expire-upload-staging', Status: 'Enabled', Filter: { Prefix: 'staging/' }, Expiration: { Days: 2 } }
      ]
    }
  })))
  reportMissing(log, bucket, missing)
  log.info({ bucket, created }, created ? `created bucket ${bucket}` : `bucket ${bucket} exists`)
}

async function ensureTable (dynamodb: DynamoDBClient, config: Config, log: Logger): Promise<void> {
  const { partitionKey, sortKey, projectIndex, projectIndexPartitionKey, projectIndexSortKey, ttlAttribute } = TABLE_KEYS
  try {
    await dynamodb.send(new DescribeTableCommand({ TableName: config.table }))
    log.info({ table: config.table }, `table ${config.table} exists`)
    return
  } catch (error) {
    if (errorName(error) !== 'ResourceNotFoundException') throw error
  }
  try {
    await dynamodb.send(new CreateTableCommand({
      TableName: config.table,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: partitionKey, AttributeType: 'S' },
        { AttributeName: sortKey, AttributeType: 'S' },
        { AttributeName: projectIndexPartitionKey, AttributeType: 'S' },
        { AttributeName: projectIndexSortKey, AttributeType: 'S' }
      ],
      KeySchema: [{ AttributeName: partitionKey, KeyType: 'HASH' }, { AttributeName: sortKey, KeyType: 'RANGE' }],
      GlobalSecondaryIndexes: [{
        IndexName: projectIndex,
        KeySchema: [{ AttributeName: projectIndexPartitionKey, KeyType: 'HASH' }, { AttributeName: projectIndexSortKey, KeyType: 'RANGE' }],
        Projection: { ProjectionType: 'ALL' }
      }]
    }))
  } catch (error) {
    // Another replica created it first: that is fine.
    if (errorName(error) !== 'ResourceInUseException') throw error
  }
  await waitUntilTableExists({ client: dynamodb, maxWaitTime: 120, minDelay: 1, maxDelay: 5 }, { TableName: config.table })
  const ttl = await optionalFeature(async () => await dynamodb.send(new UpdateTimeToLiveCommand({
    TableName: config.table, TimeToLiveSpecification: { AttributeName: ttlAttribute, Enabled: true }
  })))
  reportMissing(log, config.table, { 'TTL on upload sessions': ttl })
  log.info({ table: config.table }, `created table ${config.table}`)
}

/** Creates, idempotently, the two buckets and the table the stores need. */
export async function provisionStorage (clients: { s3: S3Client, dynamodb: DynamoDBClient }, config: Config, log: Logger): Promise<void> {
  await Promise.all([
    ensureBucket(clients.s3, config, config.videoBucket, log),
    ensureBucket(clients.s3, config, config.codeBucket, log),
    ensureTable(clients.dynamodb, config, log)
  ])
}
