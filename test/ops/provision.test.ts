import t from 'tap'
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb'
import { HeadBucketCommand } from '@aws-sdk/client-s3'
import { createAwsClients } from '../../src/aws/clients.js'
import { provisionStorage } from '../../src/ops/provision.js'
import { startEmulator } from '../../src/local/embedded.js'
import { loadConfig } from '../../src/config.js'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

// As in helper.ts: the SDK's notice about its own future Node support is noise in test output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'

t.test('provisioning creates both buckets and the table, is idempotent, and names what the backend lacks', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'render-store-provision-'))
  const s3 = await startEmulator('s3', { directory: join(dataDir, 's3') })
  const dynamodb = await startEmulator('dynamodb', { directory: join(dataDir, 'dynamodb') })
  t.teardown(async () => { await s3.stop(); await dynamodb.stop(); rmSync(dataDir, { recursive: true, force: true }) })
  const config = { ...loadConfig({ AWS_S3_VIDEO_BUCKET: 'prov-videos', AWS_S3_CODE_BUCKET: 'prov-code', AWS_DYNAMODB_TABLE: 'ProvTable' }), s3Endpoint: s3.endpoint, dynamodbEndpoint: dynamodb.endpoint, mode: 'embedded' as const }
  const aws = createAwsClients(config)
  t.teardown(() => aws.destroy())
  const warnings: string[] = []
  const log = { info: () => {}, warn: (_fields: unknown, message: string) => { warnings.push(message) } }

  await provisionStorage(aws, config, log as never)
  await provisionStorage(aws, config, log as never)

  for (const bucket of ['prov-videos', 'prov-code']) {
    const head = await aws.s3.send(new HeadBucketCommand({ Bucket: bucket }))
    t.equal(head.$metadata.httpStatusCode, 200, `${bucket} exists`)
  }
  const { Table } = await aws.dynamodb.send(new DescribeTableCommand({ TableName: 'ProvTable' }))
  t.equal(Table?.TableStatus, 'ACTIVE')
  t.same(Table?.KeySchema?.map((key) => key.AttributeName), ['pk', 'sk'])
  t.equal(Table?.GlobalSecondaryIndexes?.[0]?.IndexName, 'gsi1')
  t.equal(Table?.BillingModeSummary?.BillingMode ?? 'PAY_PER_REQUEST', 'PAY_PER_REQUEST')
  t.ok(warnings.some((message) => /^prov-videos: not supported by this backend, going on without: .*lifecycle rules \(aborting incomplete multipart uploads, expiring noncurrent versions\) \(NotImplemented 501\)/.test(message)), 'says which feature local S3 lacks, and its answer')
  t.equal(warnings.filter((message) => message.startsWith('prov-videos')).length, 2, 'one line per bucket per run, not one per feature')
})

t.test('where the backend takes lifecycle rules, both buckets abort incomplete multipart uploads after one day', async (t) => {
  const config = loadConfig({ AWS_S3_VIDEO_BUCKET: 'life-videos', AWS_S3_CODE_BUCKET: 'life-code', AWS_DYNAMODB_TABLE: 'LifeTable' })
  const sent: Array<{ name: string, input: Record<string, any> }> = []
  // A fake S3 that accepts everything and a table that exists: only what provisioning asks for matters here.
  const s3 = { send: async (command: { constructor: { name: string }, input: Record<string, any> }) => { sent.push({ name: command.constructor.name, input: command.input }); return {} } }
  const dynamodb = { send: async () => ({ Table: { TableStatus: 'ACTIVE' } }) }
  const warnings: string[] = []
  await provisionStorage({ s3, dynamodb } as never, config, { info: () => {}, warn: (_fields: unknown, message: string) => { warnings.push(message) } } as never)
  t.same(warnings, [], 'nothing refused')
  for (const bucket of ['life-videos', 'life-code']) {
    const lifecycle = sent.find((command) => command.name === 'PutBucketLifecycleConfigurationCommand' && command.input.Bucket === bucket)
    t.match(lifecycle?.input.LifecycleConfiguration.Rules, [{ ID: 'abort-incomplete-multipart', Status: 'Enabled', Filter: { Prefix: '' }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } }], `${bucket}: abort after 1 day`)
    const noncurrent = lifecycle?.input.LifecycleConfiguration.Rules.find((rule: { ID: string }) => rule.ID === 'expire-noncurrent-versions')
    t.match(noncurrent, { Status: 'Enabled', Filter: { Prefix: '' }, NoncurrentVersionExpiration: { NoncurrentDays: 30 }, Expiration: { ExpiredObjectDeleteMarker: true } }, `${bucket}: noncurrent versions expire after 30 days, then their delete markers`)
  }
  const sentAgain: typeof sent = []
  const counting = { send: async (command: { constructor: { name: string }, input: Record<string, any> }) => { sentAgain.push({ name: command.constructor.name, input: command.input }); return {} } }
  await provisionStorage({ s3: counting, dynamodb } as never, loadConfig({ AWS_S3_VIDEO_BUCKET: 'life-videos', AWS_S3_CODE_BUCKET: 'life-code', NONCURRENT_VERSION_EXPIRY_DAYS: '7' }), { info: () => {}, warn: () => {} } as never)
  const rules = sentAgain.find((command) => command.name === 'PutBucketLifecycleConfigurationCommand')?.input.LifecycleConfiguration.Rules
  t.equal(rules.find((rule: { ID: string }) => rule.ID === 'expire-noncurrent-versions').NoncurrentVersionExpiration.NoncurrentDays, 7, 'NONCURRENT_VERSION_EXPIRY_DAYS sets the days')
})

t.test('CODE_OBJECT_LOCK=true on a backend without Object Lock (local S3) stops setup with one line saying so', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'render-store-provision-'))
  const s3 = await startEmulator('s3', { directory: join(dataDir, 's3') })
  const dynamodb = await startEmulator('dynamodb', { directory: join(dataDir, 'dynamodb') })
  t.teardown(async () => { await s3.stop(); await dynamodb.stop(); rmSync(dataDir, { recursive: true, force: true }) })
  const config = { ...loadConfig({ AWS_S3_VIDEO_BUCKET: 'lock-videos', AWS_S3_CODE_BUCKET: 'lock-code', AWS_DYNAMODB_TABLE: 'LockTable', CODE_OBJECT_LOCK: 'true' }), s3Endpoint: s3.endpoint, dynamodbEndpoint: dynamodb.endpoint, mode: 'embedded' as const }
  const aws = createAwsClients(config)
  t.teardown(() => aws.destroy())
  await t.rejects(provisionStorage(aws, config, { info: () => {}, warn: () => {} } as never), { name: 'ProvisionError', message: /CODE_OBJECT_LOCK=true, but the backend created the code bucket lock-code without S3 Object Lock/ })
})
