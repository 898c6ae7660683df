// Readiness that sees whether the service can write: a canary object per bucket and a canary item, written and
// deleted at most every HEALTH_WRITE_CHECK_MS; and readiness details (names, reasons) only for callers with a key.
// Both tiers run this file; the real refusal (a bucket policy denying s3:PutObject) needs the strict tier.
import t from 'tap'
import { DeleteBucketPolicyCommand, ListObjectsV2Command, ListObjectVersionsCommand, PutBucketPolicyCommand, S3ServiceException } from '@aws-sdk/client-s3'
import { GetCommand } from '@aws-sdk/lib-dynamodb'
import type { FastifyInstance } from 'fastify'
import { CANARY_PREFIX } from '../../src/health/checks.js'
import { build, onStrictBackend, startTestAws } from '../helper.js'
import { bearer, KEYS, writeKeysFile } from '../support/auth.js'

const steady = { overload: { maxEventLoopDelayMs: 0, maxHeapBytes: 0 }, rateLimit: { max: 0, windowMs: 60_000 } }

/** Every object (every version, where the backend keeps versions) left under the canary prefix. */
async function canaryLeftovers (app: FastifyInstance, bucket: string): Promise<number> {
  if (onStrictBackend()) {
    const listed = await app.aws.s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: CANARY_PREFIX }))
    return (listed.Versions?.length ?? 0) + (listed.DeleteMarkers?.length ?? 0)
  }
  return (await app.aws.s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: CANARY_PREFIX }))).KeyCount ?? 0
}

/** Counts the canary PutObject calls the app's S3 client sends. */
function countCanaryWrites (app: FastifyInstance): { count: number } {
  const counter = { count: 0 }
  app.aws.s3.middlewareStack.add((next, context) => async (args) => {
    const input = args.input as { Key?: string }
    if (context.commandName === 'PutObjectCommand' && input.Key?.startsWith(CANARY_PREFIX) === true) counter.count++
    return await next(args)
  }, { step: 'initialize', name: 'countCanaryWrites' })
  return counter
}

const ready = async (app: FastifyInstance, headers: Record<string, string> = {}) => await app.inject({ method: 'GET', url: '/health/ready', headers })

t.test('the canary writes and deletes an object per bucket and an item, leaves nothing, and is reused for HEALTH_WRITE_CHECK_MS', async (t) => {
  const testAws = await startTestAws(t)
  // A versioned code bucket on the strict tier: the canary's delete must take its version too.
  const app = await build(t, { aws: onStrictBackend() ? await startTestAws(t, {}, { codeObjectLock: true }) : testAws, config: { ...steady, healthWriteCheckMs: 60_000 } })
  const writes = countCanaryWrites(app)
  const first = await ready(app)
  t.equal(first.statusCode, 200, first.body)
  const body = first.json()
  for (const name of ['s3Video', 's3Code', 'dynamodb'] as const) {
    t.equal(body.services[name].writable, true, `${name}: the canary write worked`)
    t.ok(Date.parse(body.services[name].writeCheckedAt) > 0, `${name}: and says when`)
  }
  t.equal(writes.count, 2, 'one canary object per bucket')
  t.equal(await canaryLeftovers(app, app.config.videoBucket), 0, 'nothing left in the video bucket')
  t.equal(await canaryLeftovers(app, app.config.codeBucket), 0, 'nothing left in the code bucket, not even a version or delete marker')
  const { Item } = await app.aws.ddb.send(new GetCommand({ TableName: app.config.table, Key: { pk: 'HEALTH#canary', sk: 'x' }, ConsistentRead: true }))
  t.equal(Item, undefined)

  for (let probe = 0; probe < 5; probe++) t.equal((await ready(app)).statusCode, 200)
  t.equal(writes.count, 2, 'later probes within HEALTH_WRITE_CHECK_MS reuse the result: no more writes')

  const off = await build(t, { aws: testAws, config: { ...steady, healthWriteCheckMs: 0 } })
  const none = countCanaryWrites(off)
  const answer = (await ready(off)).json()
  t.equal(none.count, 0, 'HEALTH_WRITE_CHECK_MS=0: no canary')
  t.equal(answer.services.s3Code.writable, undefined)
})

t.test('fake S3 refusal (named SDK fault, both tiers): a canary write answered AccessDenied makes readiness 503 with the reason, and it recovers', async (t) => {
  const app = await build(t, { config: steady })
  let deny = true
  app.aws.s3.middlewareStack.add((next, context) => async (args) => {
    const input = args.input as { Bucket?: string, Key?: string }
    if (deny && context.commandName === 'PutObjectCommand' && input.Key?.startsWith(CANARY_PREFIX) === true && input.Bucket === app.config.codeBucket) {
      throw new S3ServiceException({ name: 'AccessDenied', $fault: 'client', $metadata: { httpStatusCode: 403 }, message: 'fake AccessDenied' })
    }
    return await next(args)
  }, { step: 'initialize', name: 'fakeDeniedCanary' })
  const denied = await ready(app)
  t.equal(denied.statusCode, 503)
  t.equal(denied.headers['retry-after'], '5')
  t.match(denied.json(), { overallStatus: 'unhealthy', services: { s3Code: { status: 'unhealthy', writable: false, error: 'writes are refused: PutObject answered AccessDenied (HTTP 403)' }, s3Video: { writable: true } } })
  deny = false
  const recovered = await ready(app)
  t.equal(recovered.statusCode, 200, 'a refusal is not cached: the next check sees the fix')
})

t.test('with API keys, /health/ready names buckets, table and reasons only to callers with a valid key', async (t) => {
  const keysFile = writeKeysFile(t)
  const testAws = await startTestAws(t)
  const app = await build(t, { aws: testAws, config: { ...steady, apiKeysFile: keysFile } })
  const names = [app.config.videoBucket, app.config.codeBucket, app.config.table]
  for (const [who, headers] of [['no key', {}], ['a wrong key', bearer('rs_not_a_key')]] as const) {
    const anonymous = await ready(app, headers)
    t.equal(anonymous.statusCode, 200, `${who}: still answered (probes carry no key)`)
    t.match(anonymous.json(), { overallStatus: 'healthy', services: { s3Video: { status: 'healthy' }, s3Code: { status: 'healthy' }, dynamodb: { status: 'healthy' } }, detail: /valid API key/ })
    for (const name of names) t.notOk(anonymous.body.includes(name), `${who}: ${name} is not named`)
  }
  const reader = await ready(app, bearer(KEYS.reader))
  t.match(reader.json(), { services: { s3Video: { bucket: app.config.videoBucket }, s3Code: { bucket: app.config.codeBucket }, dynamodb: { table: app.config.table, tableStatus: 'ACTIVE' } } }, 'any valid key sees the details')
  t.notOk('detail' in reader.json())

  const open = await build(t, { aws: testAws, config: { ...steady, apiKeysFile: keysFile, healthDetails: 'public' } })
  t.match((await ready(open)).json(), { services: { s3Code: { bucket: app.config.codeBucket } } }, 'HEALTH_DETAILS=public shows them to all')
  const embeddedDefault = await build(t, { aws: testAws, config: steady })
  t.match((await ready(embeddedDefault)).json(), { services: { s3Code: { bucket: app.config.codeBucket } } }, 'without keys (the embedded default) everything is open, details too')
})

t.test('a bucket policy denying s3:PutObject (Ceph RGW): readiness is 503 and says writes are refused', { skip: onStrictBackend() ? false : 'needs a backend that enforces bucket policies: runs on the strict tier (npm run test:strict)' }, async (t) => {
  const keysFile = writeKeysFile(t)
  const app = await build(t, { aws: await startTestAws(t), config: { ...steady, apiKeysFile: keysFile } })
  const bucket = app.config.videoBucket
  t.equal((await ready(app)).statusCode, 200, 'healthy before')
  await app.aws.s3.send(new PutBucketPolicyCommand({
    Bucket: bucket,
    Policy: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Deny', Principal: '*', Action: ['s3:PutObject'], Resource: [`arn:aws:s3:::${bucket}/*`] }] })
  }))
  t.teardown(async () => { await app.aws.s3.send(new DeleteBucketPolicyCommand({ Bucket: bucket })).catch(() => {}) })
  // The first check's success is reused for HEALTH_WRITE_CHECK_MS: a replica that starts with the policy in place
  // (as a misconfigured deploy does) sees it at once.
  const fresh = await build(t, { aws: app.testAws, config: { ...steady, apiKeysFile: keysFile } })
  const denied = await ready(fresh, bearer(KEYS.reader))
  t.equal(denied.statusCode, 503, denied.body)
  t.match(denied.json(), { overallStatus: 'unhealthy', services: { s3Video: { status: 'unhealthy', bucket, writable: false, error: 'writes are refused: PutObject answered AccessDenied (HTTP 403)' }, s3Code: { writable: true } } })
  const anonymous = await ready(fresh)
  t.equal(anonymous.statusCode, 503, 'an anonymous probe sees the 503 too')
  t.notOk(anonymous.body.includes(bucket), 'but not the bucket name')
  await app.aws.s3.send(new DeleteBucketPolicyCommand({ Bucket: bucket }))
  t.equal((await ready(fresh)).statusCode, 200, 'healthy again once writes are allowed')
})
