// Polls both strict backends with signed SDK calls until they answer, or fails after STRICT_READY_SECONDS.
import { S3Client, ListBucketsCommand } from '@aws-sdk/client-s3'
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb'

const env = process.env
const credentials = { accessKeyId: env.RENDER_STORE_STRICT_ACCESS_KEY, secretAccessKey: env.RENDER_STORE_STRICT_SECRET_KEY }
const s3 = new S3Client({ region: 'us-east-1', endpoint: env.RENDER_STORE_STRICT_S3_ENDPOINT, forcePathStyle: true, credentials, maxAttempts: 1 })
const ddb = new DynamoDBClient({ region: 'us-east-1', endpoint: env.RENDER_STORE_STRICT_DYNAMODB_ENDPOINT, credentials, maxAttempts: 1 })
const deadline = Date.now() + Number(env.STRICT_READY_SECONDS ?? 60) * 1000
let last
for (;;) {
  try {
    await s3.send(new ListBucketsCommand({}))
    await ddb.send(new ListTablesCommand({}))
    process.exit(0)
  } catch (error) {
    last = error
  }
  if (Date.now() > deadline) break
  await new Promise((resolve) => setTimeout(resolve, 500))
}
console.error(`strict backends not ready: ${last?.name ?? ''} ${last?.message ?? last}`)
process.exit(1)
