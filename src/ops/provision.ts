import {
  CreateBucketCommand, GetObjectLockConfigurationCommand, HeadBucketCommand, PutBucketEncryptionCommand,
  PutBucketLifecycleConfigurationCommand, PutBucketVersioningCommand, PutObjectLockConfigurationCommand, PutPublicAccessBlockCommand,
  type S3Client
} from '@aws-sdk/client-s3'
import { CreateTableCommand, DescribeTableCommand, UpdateTimeToLiveCommand, waitUntilTableExists, type DynamoDBClient } from '@aws-sdk/client-dynamodb'
import type { FastifyBaseLogger } from 'fastify'
type Logger = Pick<FastifyBaseLogger, 'info' | 'warn'>
import type { Config } from '../config.js'

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

/** A setup request the backend cannot fulfil, said in one line (no stack): what was asked, what happened, what to do. */
export class ProvisionError extends Error {
  override name = 'ProvisionError'
}

/** What provisioning found or did to one bucket, as `npm run setup` reports it. */
export interface BucketReport {
  bucket: string
  created: boolean
  /** 'created-with' | 'turned-on' | 'present' | 'absent': Object Lock on this bucket after setup */
  objectLock: 'created-with' | 'turned-on' | 'present' | 'absent'
  /** the lifecycle rules applied, by ID, or undefined when the backend refused them */
  lifecycleRules?: string[]
}

/** The lifecycle rules of both buckets (the CloudFormation template has the same, test/ops/iam.test.ts compares them). */
export function lifecycleRules (config: Pick<Config, 'noncurrentVersionExpiryDays'>) {
  return [
    // Multipart uploads whose replica died (abandoned sessions) would otherwise keep their parts, billed, forever.
    { ID: 'abort-incomplete-multipart', Status: 'Enabled' as const, Filter: { Prefix: '' }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } },
    { ID: 'expire-upload-staging', Status: 'Enabled' as const, Filter: { Prefix: 'staging/' }, Expiration: { Days: 2 } },
    // In a versioned bucket (Object Lock) a deleted object leaves its versions behind: they go after this many days
    // (a locked version once its lock lapses), and then the delete marker left with nothing under it.
    {
      ID: 'expire-noncurrent-versions',
      Status: 'Enabled' as const,
      Filter: { Prefix: '' },
      NoncurrentVersionExpiration: { NoncurrentDays: config.noncurrentVersionExpiryDays },
      Expiration: { ExpiredObjectDeleteMarker: true }
    }
  ]
}

async function objectLockEnabled (s3: S3Client, bucket: string): Promise<boolean> {
  try {
    const { ObjectLockConfiguration } = await s3.send(new GetObjectLockConfigurationCommand({ Bucket: bucket }))
    return ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled'
  } catch (error) {
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode
    // No configuration (404), or a backend without the API (local S3: 501 / 405): no Object Lock.
    if (status === 404 || status === 405 || status === 501 || errorName(error) === 'ObjectLockConfigurationNotFoundError') return false
    throw error
  }
}

/** Turns Object Lock on for an existing bucket (AWS allows it since 2023; versioning first), or says why it cannot. */
async function turnOnObjectLock (s3: S3Client, bucket: string): Promise<void> {
  try {
    await s3.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }))
    await s3.send(new PutObjectLockConfigurationCommand({ Bucket: bucket, ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled' } }))
  } catch (error) {
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode
    throw new ProvisionError(`CODE_OBJECT_LOCK=true, but the code bucket ${bucket} exists without S3 Object Lock and the backend refused to turn it on (${errorName(error)}${status === undefined ? '' : ` ${status}`}); ` +
      'use a new code bucket (AWS_S3_CODE_BUCKET) that setup creates with Object Lock, or unset CODE_OBJECT_LOCK')
  }
}

async function ensureBucket (s3: S3Client, config: Config, bucket: string, log: Logger, options: { objectLock: boolean }): Promise<BucketReport> {
  let created = false
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }))
  } catch (error) {
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode
    if (status !== 404 && errorName(error) !== 'NotFound' && errorName(error) !== 'NoSuchBucket') throw error
    await s3.send(new CreateBucketCommand({
      Bucket: bucket,
      CreateBucketConfiguration: config.region === 'us-east-1' ? undefined : { LocationConstraint: config.region as never },
      // Object Lock also turns versioning on; it can never be turned off again.
      ObjectLockEnabledForBucket: options.objectLock ? true : undefined
    }))
    created = true
  }
  // Only a bucket that must have Object Lock fails setup when its configuration cannot be read.
  const hasLock = await objectLockEnabled(s3, bucket).catch((error: unknown) => { if (options.objectLock) throw error; return false })
  let objectLock: BucketReport['objectLock'] = hasLock ? (created && options.objectLock ? 'created-with' : 'present') : 'absent'
  if (options.objectLock && objectLock === 'absent') {
    if (created) throw new ProvisionError(`CODE_OBJECT_LOCK=true, but the backend created the code bucket ${bucket} without S3 Object Lock (it does not support it); unset CODE_OBJECT_LOCK for this backend`)
    await turnOnObjectLock(s3, bucket)
    objectLock = 'turned-on'
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
  const rules = lifecycleRules(config)
  const lifecycle = await optionalFeature(async () => await s3.send(new PutBucketLifecycleConfigurationCommand({ Bucket: bucket, LifecycleConfiguration: { Rules: rules } })))
  missing['lifecycle rules (aborting incomplete multipart uploads, expiring noncurrent versions)'] = lifecycle
  reportMissing(log, bucket, missing)
  const report: BucketReport = { bucket, created, objectLock, lifecycleRules: lifecycle === undefined ? rules.map((rule) => rule.ID) : undefined }
  log.info(report, describeBucket(report, config))
  return report
}

/** One line saying what setup found or did to a bucket. */
function describeBucket (report: BucketReport, config: Pick<Config, 'noncurrentVersionExpiryDays'>): string {
  const lock = {
    'created-with': 'created with S3 Object Lock (and versioning)',
    'turned-on': 'S3 Object Lock turned on (and versioning)',
    present: 'has S3 Object Lock',
    absent: 'no Object Lock'
  }[report.objectLock]
  const lifecycle = report.lifecycleRules === undefined
    ? 'no lifecycle rules (refused by the backend)'
    : `lifecycle: incomplete multipart uploads aborted after 1 day, staging/ expired after 2 days, noncurrent versions removed after ${config.noncurrentVersionExpiryDays} days`
  return `bucket ${report.bucket}: ${report.created ? 'created' : 'exists'}; ${lock}; ${lifecycle}`
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
export async function provisionStorage (clients: { s3: S3Client, dynamodb: DynamoDBClient }, config: Config, log: Logger): Promise<{ videoBucket: BucketReport, codeBucket: BucketReport }> {
  const [videoBucket, codeBucket] = await Promise.all([
    ensureBucket(clients.s3, config, config.videoBucket, log, { objectLock: false }),
    ensureBucket(clients.s3, config, config.codeBucket, log, { objectLock: config.codeObjectLock }),
    ensureTable(clients.dynamodb, config, log)
  ])
  return { videoBucket, codeBucket }
}
