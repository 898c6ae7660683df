// The strict test tier's side of test/helper.ts: buckets and a table of this test file's own on the Ceph RADOS
// Gateway and DynamoDB Local that scripts/strict/start.sh started once for the run (npm run test:strict).
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  AbortMultipartUploadCommand, DeleteBucketCommand, DeleteObjectCommand, ListMultipartUploadsCommand,
  ListObjectVersionsCommand, PutObjectLegalHoldCommand, type S3Client
} from '@aws-sdk/client-s3'
import { DeleteTableCommand } from '@aws-sdk/client-dynamodb'
import { loadConfig, type Config } from '../../src/config.js'
import { createAwsClients } from '../../src/aws/clients.js'
import type { Emulator, EmbeddedAws } from '../../src/local/embedded.js'
import { provisionStorage } from '../../src/ops/provision.js'
import type { TestAws } from '../helper.js'

type Test = { teardown: (fn: () => unknown) => void }

export interface StrictBackend {
  s3Endpoint: string
  dynamodbEndpoint: string
  accessKeyId: string
  secretAccessKey: string
}

/** The strict backends named by the environment start.sh wrote, or undefined for the embedded default. */
export function strictBackend (env: NodeJS.ProcessEnv = process.env): StrictBackend | undefined {
  if (env.RENDER_STORE_TEST_BACKEND !== 'strict') return undefined
  const s3Endpoint = env.RENDER_STORE_STRICT_S3_ENDPOINT
  const dynamodbEndpoint = env.RENDER_STORE_STRICT_DYNAMODB_ENDPOINT
  const accessKeyId = env.RENDER_STORE_STRICT_ACCESS_KEY
  const secretAccessKey = env.RENDER_STORE_STRICT_SECRET_KEY
  if (s3Endpoint === undefined || dynamodbEndpoint === undefined || accessKeyId === undefined || secretAccessKey === undefined) {
    throw new Error('RENDER_STORE_TEST_BACKEND=strict needs RENDER_STORE_STRICT_{S3_ENDPOINT,DYNAMODB_ENDPOINT,ACCESS_KEY,SECRET_KEY}: run `npm run test:strict`, or source the env file scripts/strict/start.sh prints')
  }
  return { s3Endpoint, dynamodbEndpoint, accessKeyId, secretAccessKey }
}

/** Stands in for an emulator handle: the strict backends are shared by the whole run and are never stopped by a test. */
function sharedBackend (kind: 's3' | 'dynamodb', endpoint: string): Emulator {
  const refuse = async (): Promise<void> => { throw new Error(`the strict tier's ${kind} is shared by every test file: a test that stops or restarts it belongs in the embedded tier only (scripts/strict/files.txt)`) }
  return { kind, endpoint, port: Number(new URL(endpoint).port), pid: undefined, stop: refuse, restart: refuse }
}

/**
 * Ceph RGW 16.2.15 bug: after PutPublicAccessBlock every PutObject and UploadPart is 403 AccessDenied, even for the
 * bucket's owner (real S3 only blocks public ACLs and policies). Provisioning on this backend skips that one call;
 * the product still makes it on AWS.
 */
function skipPublicAccessBlock (s3: S3Client): void {
  s3.middlewareStack.add((next, context) => async (args) => {
    if (context.commandName === 'PutPublicAccessBlockCommand') return { output: { $metadata: {} }, response: {} } as never
    return await next(args)
  }, { step: 'initialize', name: 'strictTierSkipPublicAccessBlock' })
}

const quietLog = { info: () => {}, warn: () => {} }

export async function startStrictAws (t: Test, strict: StrictBackend, environment: Record<string, string>, options: { codeObjectLock?: boolean }): Promise<TestAws> {
  // The service in AWS mode takes credentials from the SDK's default chain: the environment, for this process and the
  // child processes tests start.
  process.env.AWS_ACCESS_KEY_ID = strict.accessKeyId
  process.env.AWS_SECRET_ACCESS_KEY = strict.secretAccessKey
  delete process.env.AWS_SESSION_TOKEN
  delete process.env.AWS_PROFILE
  const dataDir = mkdtempSync(join(tmpdir(), 'render-store-strict-test-'))
  const id = `rs${Date.now().toString(36)}${randomBytes(4).toString('hex')}`
  const base = loadConfig({
    LOG_LEVEL: 'silent',
    DATA_DIR: dataDir,
    ALLOW_ANONYMOUS: 'true',
    AWS_S3_VIDEO_BUCKET: `${id}-videos`,
    AWS_S3_CODE_BUCKET: `${id}-code`,
    AWS_DYNAMODB_TABLE: id,
    AWS_ENDPOINT_URL_S3: strict.s3Endpoint,
    AWS_ENDPOINT_URL_DYNAMODB: strict.dynamodbEndpoint,
    ...environment
  })
  // The code bucket gets Object Lock as `npm run setup` gives it (CODE_OBJECT_LOCK=true).
  const config: Config = { ...base, healthCacheMs: 0, overload: { maxEventLoopDelayMs: 0, maxHeapBytes: 0 }, ...(options.codeObjectLock === true ? { codeObjectLock: true } : {}) }
  const aws = createAwsClients(config)
  skipPublicAccessBlock(aws.s3)
  await provisionStorage(aws, config, quietLog)
  aws.destroy()
  const embedded: EmbeddedAws = { s3: sharedBackend('s3', strict.s3Endpoint), dynamodb: sharedBackend('dynamodb', strict.dynamodbEndpoint), close: async () => {} }
  t.teardown(async () => {
    await removeStorage(config).catch(() => {})
    rmSync(dataDir, { recursive: true, force: true })
  })
  return { embedded, config, dataDir }
}

/** Best effort: empties and deletes this file's buckets (every version, locks bypassed where S3 allows) and its table. */
export async function removeStorage (config: Config): Promise<void> {
  const aws = createAwsClients({ ...config, maxAttempts: 1 })
  try {
    await Promise.all([
      aws.dynamodb.send(new DeleteTableCommand({ TableName: config.table })).catch(() => {}),
      ...[config.videoBucket, config.codeBucket].map(async (bucket) => { await emptyAndDelete(aws.s3, bucket).catch(() => {}) })
    ])
  } finally {
    aws.destroy()
  }
}

async function emptyAndDelete (s3: S3Client, bucket: string): Promise<void> {
  const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket })).catch(() => ({ Uploads: [] }))
  await Promise.all((uploads.Uploads ?? []).map(async (upload) => await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId })).catch(() => {})))
  for (let page = 0; page < 50; page++) {
    const listed = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, MaxKeys: 1000 }))
    const entries = [...(listed.Versions ?? []), ...(listed.DeleteMarkers ?? [])]
    if (entries.length === 0) break
    const removed = await Promise.all(entries.map(async ({ Key, VersionId }) => {
      const remove = async (): Promise<boolean> => await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key, VersionId, BypassGovernanceRetention: true })).then(() => true)
      return await remove().catch(async () => {
        await s3.send(new PutObjectLegalHoldCommand({ Bucket: bucket, Key, VersionId, LegalHold: { Status: 'OFF' } })).catch(() => {})
        return await remove().catch(() => false)
      })
    }))
    // COMPLIANCE-locked versions stay until their date: the bucket stays too, in RAM until stop.sh.
    if (!removed.some(Boolean)) return
  }
  await s3.send(new DeleteBucketCommand({ Bucket: bucket }))
}
