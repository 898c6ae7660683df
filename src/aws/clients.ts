import { S3Client } from '@aws-sdk/client-s3'
import { DynamoDBClient } from '@aws-sdk/client-dynamodb'
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import type { Config } from '../config.js'
import fp from 'fastify-plugin'

/** Credentials the embedded emulators accept; real AWS uses the SDK's default chain. */
export const EMBEDDED_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }

export interface AwsClients {
  s3: S3Client
  /**
   * S3 for CompleteMultipartUpload only: assembling a large upload may keep the socket silent for long (AWS sends
   * whitespace meanwhile, a local S3 sends nothing), so its idle limit is 120 s. With the general 10 s, a 1 GiB
   * assembly on a loaded machine timed out, the SDK retried it while the first was still running, and the local S3
   * failed the repeat (InternalError: 503 to the client).
   */
  s3Assemble: S3Client
  /** the plain client, for table-level calls (DescribeTable, CreateTable) */
  dynamodb: DynamoDBClient
  /** the document client the stores use for items */
  ddb: DynamoDBDocumentClient
  destroy: () => void
}

export function createAwsClients (config: Config): AwsClients {
  const credentials = config.mode === 'embedded' ? EMBEDDED_CREDENTIALS : undefined
  // A dead or hung endpoint must fail within a bound (connect timeout; S3: a socket idle that long; DynamoDB: a whole
  // request) so callers answer 503 instead of hanging. S3 gets no whole-request limit: parts and reads are large.
  const requestHandler = new NodeHttpHandler({ connectionTimeout: 3000, socketTimeout: 10_000 })
  const s3Options = {
    region: config.region,
    endpoint: config.s3Endpoint,
    forcePathStyle: config.s3Endpoint !== undefined,
    credentials,
    // aws-chunked trailing checksums corrupt or break uploads on local S3 (shared/notes/local-aws.md).
    requestChecksumCalculation: 'WHEN_REQUIRED' as const,
    responseChecksumValidation: 'WHEN_REQUIRED' as const,
    retryMode: 'adaptive',
    maxAttempts: config.maxAttempts
  }
  const s3 = new S3Client({ ...s3Options, requestHandler })
  const s3Assemble = new S3Client({ ...s3Options, requestHandler: new NodeHttpHandler({ connectionTimeout: 3000, socketTimeout: 120_000 }) })
  const dynamodb = new DynamoDBClient({
    region: config.region,
    endpoint: config.dynamodbEndpoint,
    credentials,
    retryMode: 'adaptive',
    maxAttempts: config.maxAttempts,
    requestHandler: new NodeHttpHandler({ connectionTimeout: 3000, requestTimeout: 5000, throwOnRequestTimeout: true, socketTimeout: 5000 })
  })
  const ddb = DynamoDBDocumentClient.from(dynamodb, { marshallOptions: { removeUndefinedValues: true } })
  return {
    s3,
    s3Assemble,
    dynamodb,
    ddb,
    destroy () {
      s3.destroy()
      s3Assemble.destroy()
      ddb.destroy()
      dynamodb.destroy()
    }
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
    aws: AwsClients
  }
}

/** The SDK clients, built once from the configuration and closed with the app. */
export default fp<{ config: Config, aws?: AwsClients }>(async function awsPlugin (app, options) {
  const aws = options.aws ?? createAwsClients(options.config)
  app.decorate('config', options.config)
  app.decorate('aws', aws)
  app.addHook('onClose', async () => { aws.destroy() })
}, { name: 'aws' })
