import t from 'tap'
import { spawnSync } from 'node:child_process'
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { DeleteCommand, GetCommand } from '@aws-sdk/lib-dynamodb'
import { createAwsClients } from '../src/aws/clients.js'
import { isClean, reconcile } from '../src/reconcile.js'
import { versionSortKey, videoKey } from '../src/video-records.js'
import { build, startTestAws } from './helper.js'

const DAY = 24 * 3_600_000

t.test('reconcile finds orphans, broken and missing records, and --fix removes and marks them', async (t) => {
  const testAws = await startTestAws(t)
  const app = await build(t, { aws: testAws })
  const aws = createAwsClients(testAws.config)
  t.teardown(() => { aws.destroy() })
  const { config } = testAws
  const check = async (options = {}) => await reconcile({ aws, config }, { graceMs: 0, ...options })

  for (const [videoId, content] of [['a', 'print(1)\n'], ['a', 'print(2)\n'], ['b', 'print(3)\n']]) {
    const response = await app.inject({ method: 'POST', url: `/v1/projects/p1/videos/${videoId}/code`, payload: { content } })
    t.equal(response.statusCode, 201)
  }
  const clean = await check({ deep: true })
  t.ok(isClean(clean), 'a healthy store is clean')
  t.equal(clean.records, 3)
  t.equal(clean.unverifiedHashes, 0)

  // An object nobody recorded, a young staging object (a pending direct upload) and an old one.
  const put = async (bucket: string, key: string, body: string) => await aws.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }))
  await put(config.codeBucket, 'code/p1/a/v9/a.py', 'stray')
  await put(config.videoBucket, 'staging/p1/a/u1/a.mp4', 'pending')
  const young = await check()
  t.same(young.orphans.map((orphan) => orphan.key), ['code/p1/a/v9/a.py'], 'young staging objects are left alone')
  const later = await check({ now: Date.now() + 2 * DAY })
  t.same(later.orphans.map((orphan) => orphan.key).sort(), ['code/p1/a/v9/a.py', 'staging/p1/a/u1/a.mp4'])
  t.equal((await reconcile({ aws, config })).orphans.length, 0, 'by default objects younger than the grace period are in-flight writes')

  // Version 1 of a: its object replaced by other bytes; b's object removed; a's version 2 item lost.
  const a1 = (await aws.ddb.send(new GetCommand({ TableName: config.table, Key: { pk: videoKey('p1', 'a').pk, sk: versionSortKey('CODE', 1) } }))).Item
  await put(config.codeBucket, String(a1?.key), 'print("tampered")\n')
  const b1 = (await aws.ddb.send(new GetCommand({ TableName: config.table, Key: { pk: videoKey('p1', 'b').pk, sk: versionSortKey('CODE', 1) } }))).Item
  await aws.s3.send(new DeleteObjectCommand({ Bucket: config.codeBucket, Key: String(b1?.key) }))
  await aws.ddb.send(new DeleteCommand({ TableName: config.table, Key: { pk: videoKey('p1', 'a').pk, sk: versionSortKey('CODE', 2) } }))

  const found = await check()
  t.same(found.brokenRecords.map((record) => [record.key, record.problem]).sort(), [[a1?.key, 'size'], [b1?.key, 'missing-object']].sort())
  t.same(found.missingRecords, [{ pk: videoKey('p1', 'a').pk, sk: versionSortKey('CODE', 2) }])
  t.same(found.orphans.map((orphan) => orphan.key).sort(), ['code/p1/a/v2/a.py', 'code/p1/a/v9/a.py'], "the lost item's object is an orphan")

  const fixed = await check({ fix: true })
  t.same(fixed.fixed, { deletedObjects: 2, markedBroken: 2 })
  const marked = (await aws.ddb.send(new GetCommand({ TableName: config.table, Key: { pk: videoKey('p1', 'b').pk, sk: versionSortKey('CODE', 1) } }))).Item
  t.equal(marked?.status, 'broken')
  t.equal(marked?.brokenReason, 'missing-object')
  const after = await check()
  t.same(after.orphans, [])
  t.same(after.brokenRecords, [], 'records marked broken are not reported again')
  t.equal(after.missingRecords.length, 1, 'a missing record cannot be invented; it stays reported')
})

t.test('the CLI prints the JSON report and exits 1 when it finds something', async (t) => {
  const testAws = await startTestAws(t)
  const aws = createAwsClients(testAws.config)
  t.teardown(() => { aws.destroy() })
  const env = {
    ...process.env,
    DATA_DIR: testAws.dataDir,
    AWS_ENDPOINT_URL_S3: testAws.config.s3Endpoint,
    AWS_ENDPOINT_URL_DYNAMODB: testAws.config.dynamodbEndpoint,
    AWS_S3_VIDEO_BUCKET: testAws.config.videoBucket,
    AWS_S3_CODE_BUCKET: testAws.config.codeBucket,
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER'
  }
  const run = (...args: string[]) => spawnSync(process.execPath, [...process.execArgv, new URL('../src/reconcile.ts', import.meta.url).pathname, ...args], { env, encoding: 'utf8', timeout: 60000 })
  const first = run()
  t.equal(first.status, 0, first.stderr)
  t.ok(isClean(JSON.parse(first.stdout)))
  await aws.s3.send(new PutObjectCommand({ Bucket: testAws.config.videoBucket, Key: 'videos/p1/x/v1/x.mp4', Body: 'stray' }))
  t.equal(run().status, 0, 'a fresh object is inside the default grace period (a write may be in flight)')
  const found = run('--fix', '--grace-minutes=0')
  t.equal(found.status, 1)
  t.same(JSON.parse(found.stdout).fixed, { deletedObjects: 1, markedBroken: 0 })
  t.equal(run('--grace-minutes=0').status, 0, 'clean after the fix')
})
