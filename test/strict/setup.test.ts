// Strict tier only (npm run test:strict): `npm run setup` (src/ops/setup.ts, run as its own process) against the Ceph
// RADOS Gateway and DynamoDB Local: the code bucket with S3 Object Lock when CODE_OBJECT_LOCK=true, the lifecycle
// rules (noncurrent versions expire after NONCURRENT_VERSION_EXPIRY_DAYS), and a report of what it did. s3rver has
// neither Object Lock nor lifecycle, so the embedded tier can only see setup refuse CODE_OBJECT_LOCK (provision.test.ts).
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { CreateBucketCommand, GetBucketLifecycleConfigurationCommand, GetBucketVersioningCommand, GetObjectLockConfigurationCommand } from '@aws-sdk/client-s3'
import { createAwsClients } from '../../src/aws/clients.js'
import { loadConfig } from '../../src/config.js'
import { onStrictBackend } from '../helper.js'
import { removeStorage, strictBackend } from '../support/strict-backend.js'

const skip = onStrictBackend() ? false : 'needs S3 Object Lock and lifecycle rules: runs on the strict tier (npm run test:strict)'
const setupEntry = new URL('../../src/ops/setup.ts', import.meta.url).pathname

t.test('npm run setup on real S3 semantics', { skip }, async (t) => {
  const strict = strictBackend() as NonNullable<ReturnType<typeof strictBackend>>
  const id = `rs${Date.now().toString(36)}${randomBytes(3).toString('hex')}`
  const environment = {
    AWS_S3_VIDEO_BUCKET: `${id}-videos`,
    AWS_S3_CODE_BUCKET: `${id}-code`,
    AWS_DYNAMODB_TABLE: id,
    AWS_ENDPOINT_URL_S3: strict.s3Endpoint,
    AWS_ENDPOINT_URL_DYNAMODB: strict.dynamodbEndpoint,
    AWS_ACCESS_KEY_ID: strict.accessKeyId,
    AWS_SECRET_ACCESS_KEY: strict.secretAccessKey,
    AWS_REGION: 'us-east-1',
    S3_SSE: 'none'
  }
  // The SDK clients of this process take credentials from the environment, as the service's do.
  process.env.AWS_ACCESS_KEY_ID = strict.accessKeyId
  process.env.AWS_SECRET_ACCESS_KEY = strict.secretAccessKey
  const config = loadConfig({ ...environment, LOG_LEVEL: 'silent' })
  const aws = createAwsClients(config)
  t.teardown(async () => {
    aws.destroy()
    await removeStorage(config)
    await removeStorage({ ...config, codeBucket: `${id}-plain` })
  })
  const setup = (extra: Record<string, string>): { status: number | null, lines: string[] } => {
    const { PATH, HOME, NODE_OPTIONS } = process.env
    const result = spawnSync(process.execPath, [...process.execArgv, setupEntry], {
      env: { PATH, HOME, NODE_OPTIONS, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', LOG_FORMAT: 'json', ...environment, ...extra },
      encoding: 'utf8',
      timeout: 180_000
    })
    const lines = `${result.stdout}${result.stderr}`.split('\n').flatMap((line) => {
      try { return [(JSON.parse(line) as { msg: string }).msg] } catch { return [] }
    })
    return { status: result.status, lines }
  }

  const first = setup({ CODE_OBJECT_LOCK: 'true', NONCURRENT_VERSION_EXPIRY_DAYS: '9' })
  t.equal(first.status, 0, first.lines.join('\n'))
  t.ok(first.lines.some((line) => line === `bucket ${id}-code: created; created with S3 Object Lock (and versioning); lifecycle: incomplete multipart uploads aborted after 1 day, staging/ expired after 2 days, noncurrent versions removed after 9 days`),
    `it says what it did to the code bucket:\n${first.lines.join('\n')}`)
  t.ok(first.lines.some((line) => line.startsWith(`bucket ${id}-videos: created; no Object Lock; lifecycle:`)), 'and to the video bucket')
  t.ok(first.lines.some((line) => /code versions can be locked/.test(line)), 'and what that allows')

  const lock = await aws.s3.send(new GetObjectLockConfigurationCommand({ Bucket: `${id}-code` }))
  t.equal(lock.ObjectLockConfiguration?.ObjectLockEnabled, 'Enabled', 'S3 says the code bucket has Object Lock')
  t.equal((await aws.s3.send(new GetBucketVersioningCommand({ Bucket: `${id}-code` }))).Status, 'Enabled', 'and versioning')
  t.equal((await aws.s3.send(new GetBucketVersioningCommand({ Bucket: `${id}-videos` }))).Status, undefined, 'the video bucket is left unversioned')
  for (const bucket of [`${id}-code`, `${id}-videos`]) {
    const { Rules = [] } = await aws.s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket }))
    t.match(Rules.find((rule) => rule.ID === 'expire-noncurrent-versions'), { Status: 'Enabled', NoncurrentVersionExpiration: { NoncurrentDays: 9 }, Expiration: { ExpiredObjectDeleteMarker: true } }, `${bucket}: noncurrent versions expire after 9 days`)
    t.match(Rules.find((rule) => rule.ID === 'abort-incomplete-multipart'), { AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } }, `${bucket}: incomplete uploads are still aborted`)
  }

  const again = setup({ CODE_OBJECT_LOCK: 'true' })
  t.equal(again.status, 0, again.lines.join('\n'))
  t.ok(again.lines.some((line) => line.startsWith(`bucket ${id}-code: exists; has S3 Object Lock;`)), `a second run finds it:\n${again.lines.join('\n')}`)

  // An existing bucket without Object Lock: AWS can turn it on (versioning first); Ceph Pacific refuses (409).
  await aws.s3.send(new CreateBucketCommand({ Bucket: `${id}-plain` }))
  const refused = setup({ CODE_OBJECT_LOCK: 'true', AWS_S3_CODE_BUCKET: `${id}-plain` })
  t.equal(refused.status, 1, 'setup fails')
  t.ok(refused.lines.some((line) => line.startsWith(`CODE_OBJECT_LOCK=true, but the code bucket ${id}-plain exists without S3 Object Lock and the backend refused to turn it on (InvalidBucketState 409)`)),
    `in one line that says what to do:\n${refused.lines.join('\n')}`)
})
