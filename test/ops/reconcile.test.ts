import t from 'tap'
import { spawnSync } from 'node:child_process'
import { CreateMultipartUploadCommand, DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { DeleteCommand, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb'
import { createAwsClients } from '../../src/aws/clients.js'
import type { Config } from '../../src/config.js'
import { isClean, reconcile } from '../../src/ops/reconcile.js'
import { versionSortKey, videoKey } from '../../src/table/video-item.js'
import { build, startTestAws } from '../helper.js'
import { objectKeys, sha256 } from '../support/render-fixtures.js'

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
  const a2 = (await aws.ddb.send(new GetCommand({ TableName: config.table, Key: { pk: videoKey('p1', 'a').pk, sk: versionSortKey('CODE', 2) } }))).Item
  await aws.ddb.send(new DeleteCommand({ TableName: config.table, Key: { pk: videoKey('p1', 'a').pk, sk: versionSortKey('CODE', 2) } }))

  const found = await check()
  t.same(found.brokenRecords.map((record) => [record.key, record.problem]).sort(), [[a1?.key, 'size'], [b1?.key, 'missing-object']].sort())
  t.same(found.missingRecords, [{ pk: videoKey('p1', 'a').pk, sk: versionSortKey('CODE', 2) }])
  t.same(found.orphans.map((orphan) => orphan.key).sort(), [String(a2?.key), 'code/p1/a/v9/a.py'].sort(), "the lost item's object is an orphan")

  const fixed = await check({ fix: true })
  t.match(fixed.fixed, { deletedObjects: 2, markedBroken: 2, advancedLatest: 0, markedAbandoned: 0 })
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
  const run = (...args: string[]) => spawnSync(process.execPath, [...process.execArgv, new URL('../../src/ops/reconcile.ts', import.meta.url).pathname, ...args], { env, encoding: 'utf8', timeout: 60000 })
  const first = run()
  t.equal(first.status, 0, first.stderr)
  t.ok(isClean(JSON.parse(first.stdout)))
  await aws.s3.send(new PutObjectCommand({ Bucket: testAws.config.videoBucket, Key: 'videos/p1/x/uploads/u-stray/x.mp4', Body: 'stray' }))
  await aws.s3.send(new PutObjectCommand({ Bucket: testAws.config.videoBucket, Key: 'staging/p1/x/u-staged/x.mp4', Body: 'staged' }))
  t.equal(run().status, 0, 'a fresh object is inside the default grace period (a write may be in flight)')
  const found = run('--fix', '--grace-minutes=0')
  t.equal(found.status, 1)
  t.match(JSON.parse(found.stdout).fixed, { deletedObjects: 1, markedBroken: 0 }, 'staging/ keeps its own (longer) grace period')
  t.equal(run('--grace-minutes=0').status, 0, 'clean after the fix')
  const staged = run('--fix', '--grace-minutes=0', '--staging-grace-minutes=0')
  t.match(JSON.parse(staged.stdout), { orphans: [{ key: 'staging/p1/x/u-staged/x.mp4' }], fixed: { deletedObjects: 1 } }, '--staging-grace-minutes sets it')
  t.equal(run('--grace-minutes=60', '--staging-grace-minutes=x').status, 78, 'a bad value is a configuration error')
})

t.test('issue-10 layout: reconcile fixes an abandoned session, an orphan under uploads/, lagging pointers and stale idempotency records, and leaves referenced objects alone', async (t) => {
  const testAws = await startTestAws(t)
  const leaseMs = 1000
  const app = await build(t, { aws: testAws, config: { uploadLeaseMs: leaseMs } as unknown as Partial<Config> })
  const aws = createAwsClients(testAws.config)
  t.teardown(() => { aws.destroy() })
  const { config } = testAws
  const pk = videoKey('p1', 'v').pk
  const put = async (bucket: string, key: string, body: string) => await aws.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }))
  const putItem = async (item: Record<string, unknown>) => await aws.ddb.send(new PutCommand({ TableName: config.table, Item: item }))
  const getItem = async (sk: string, itemPk = pk) => (await aws.ddb.send(new GetCommand({ TableName: config.table, Key: { pk: itemPk, sk } }))).Item
  const now = new Date().toISOString()
  const version = (sk: string, bucket: string, key: string, body: string, extra: Record<string, unknown> = {}) =>
    ({ pk, sk, bucket, key, sizeBytes: Buffer.byteLength(body), sha256: sha256(Buffer.from(body)), createdAt: now, ...extra })

  // The records: render 1 and 2 (with a scene of 2), code 1; the video record still says render 1 and no code.
  await putItem({ pk, sk: 'VIDEO', projectId: 'p1', videoId: 'v', status: 'uploaded', latestRenderVersion: 1, revision: 3, createdAt: now, updatedAt: now })
  const objects: Array<[string, string, string, Record<string, unknown>]> = [
    [versionSortKey('RENDER', 1), config.videoBucket, 'videos/p1/v/uploads/u1/v.mp4', { commitToken: 'upload-u1', version: 1 }],
    [versionSortKey('RENDER', 2), config.videoBucket, 'videos/p1/v/uploads/u2/v.mp4', { commitToken: 'upload-u2', version: 2 }],
    ['SCENE#000000002#00001', config.videoBucket, 'videos/p1/v/scenes/v2/1/u2.mp4', { version: 2, sceneNumber: 1 }],
    [versionSortKey('CODE', 1), config.codeBucket, 'code/p1/v/idem-0123/main.py', { commitToken: 'idem-0123', version: 1 }]
  ]
  for (const [sk, bucket, key, extra] of objects) {
    const body = `bytes of ${key}`
    await put(bucket, key, body)
    await putItem(version(sk, bucket, key, body, extra))
  }
  // Another video with a gap: code 1 and 3, no 2.
  const gapPk = videoKey('p1', 'gap').pk
  await putItem({ pk: gapPk, sk: 'VIDEO', projectId: 'p1', videoId: 'gap', latestCodeVersion: 3, revision: 1 })
  for (const n of [1, 3]) {
    const key = `code/p1/gap/t${n}/main.py`
    await put(config.codeBucket, key, 'x')
    await putItem({ ...version(versionSortKey('CODE', n), config.codeBucket, key, 'x'), pk: gapPk })
  }

  // A proxied upload whose replica died (nothing renews its lease), with bytes under its prefix and an open multipart upload.
  const dead = await app.uploadSessions.create({ projectId: 'p1', videoId: 'v', mode: 'proxied', status: 'uploading', contentType: 'video/mp4' })
  await put(config.videoBucket, `videos/p1/v/uploads/${dead.uploadId}/v.mp4`, 'partial')
  await aws.s3.send(new CreateMultipartUploadCommand({ Bucket: config.videoBucket, Key: `videos/p1/v/uploads/${dead.uploadId}/v.mp4` }))
  // A live upload (its replica renews) and a pending direct upload: their objects are in flight, whatever their age.
  const live = await app.uploadSessions.create({ projectId: 'p1', videoId: 'live', mode: 'proxied', status: 'uploading', contentType: 'video/mp4' })
  const stopLive = app.uploadSessions.keepAlive(live)
  t.teardown(stopLive)
  await put(config.videoBucket, `videos/p1/live/uploads/${live.uploadId}/live.mp4`, 'receiving')
  const direct = await app.uploadSessions.create({ projectId: 'p1', videoId: 'direct', mode: 'direct', contentType: 'video/mp4', attributes: { key: 'staging/p1/direct/d1/direct.mp4' } })
  await put(config.videoBucket, String(direct.key), 'put by the client')
  // Leftovers: an upload nobody recorded, and a code object of a write that never committed.
  await put(config.videoBucket, 'videos/p1/v/uploads/u-orphan/v.mp4', 'never committed')
  await put(config.codeBucket, 'code/p1/v/4b1d/main.py', 'never committed')
  // Idempotency records: one past its 24 h, one not (dynalite has no TTL, so reconcile removes the old one).
  const nowSeconds = Math.floor(Date.now() / 1000)
  await putItem({ pk: 'IDEMP#old', sk: 'IDEMP', state: 'done', expiresAtEpoch: nowSeconds - 60 })
  await putItem({ pk: 'IDEMP#new', sk: 'IDEMP', state: 'done', expiresAtEpoch: nowSeconds + 3600 })
  await new Promise((resolve) => setTimeout(resolve, leaseMs + 200))

  const report = await reconcile({ aws, config }, { graceMs: 0 })
  t.notOk(isClean(report))
  t.equal(report.records, 6, 'every version and scene item is checked against its object (4 of v, 2 of gap)')
  t.same(report.brokenRecords, [])
  t.same(report.orphans.map((orphan) => orphan.key).sort(), ['code/p1/v/4b1d/main.py', `videos/p1/v/uploads/${dead.uploadId}/v.mp4`, 'videos/p1/v/uploads/u-orphan/v.mp4'].sort(),
    'orphans: objects nothing names, including the dead upload; not the live, the direct, the version or the scene objects')
  t.same(report.laggingLatest.map((lag) => [lag.videoId, lag.kind, lag.recorded, lag.highest]).sort(), [['v', 'CODE', null, 1], ['v', 'RENDER', 1, 2]])
  t.same(report.missingRecords, [{ pk: gapPk, sk: versionSortKey('CODE', 2) }], 'the gap is reported')
  t.match(report.abandonedSessions, [{ uploadId: dead.uploadId, mode: 'proxied', projectId: 'p1', videoId: 'v' }])
  t.equal(report.abandonedSessions.length, 1, 'the live session is not abandoned')
  t.same(report.interruptedCompletions, [])
  t.match(report.multipartUploads, { supported: false, reason: /ListMultipartUploads answered NotImplemented \(501\)/ }, 'local S3 cannot list multipart uploads: the report says so')
  t.match(report.idempotency, { records: 2, ttl: 'DISABLED', expired: 1 })

  const fixed = await reconcile({ aws, config }, { graceMs: 0, fix: true })
  t.match(fixed.fixed, { deletedObjects: 3, markedBroken: 0, advancedLatest: 2, markedAbandoned: 1, abortedMultipartUploads: 0, deletedIdempotencyRecords: 1 })
  t.match(fixed.fixed?.skipped, [/not aborted: this S3 does not list multipart uploads.*lifecycle rule/])

  const video = await getItem('VIDEO')
  t.match(video, { latestRenderVersion: 2, latestCodeVersion: 1, latestRenderKey: 'videos/p1/v/uploads/u2/v.mp4', latestCodeKey: 'code/p1/v/idem-0123/main.py', revision: 5 }, 'the pointers moved to the highest items (each advance a change of the record)')
  t.match(await getItem(`UPLOAD#${dead.uploadId}`), { status: 'failed', failureReason: 'abandoned' }, 'the abandoned session is marked')
  t.match(await app.uploadSessions.get('p1', 'live', live.uploadId), { status: 'uploading' }, 'the live one is untouched')
  t.equal(await getItem('IDEMP', 'IDEMP#old'), undefined)
  t.ok(await getItem('IDEMP', 'IDEMP#new'), 'an unexpired idempotency record stays')
  const left = [...await objectKeys(aws, config.videoBucket), ...await objectKeys(aws, config.codeBucket)].sort()
  t.same(left, [
    'code/p1/gap/t1/main.py', 'code/p1/gap/t3/main.py', 'code/p1/v/idem-0123/main.py', String(direct.key),
    `videos/p1/live/uploads/${live.uploadId}/live.mp4`, 'videos/p1/v/scenes/v2/1/u2.mp4', 'videos/p1/v/uploads/u1/v.mp4', 'videos/p1/v/uploads/u2/v.mp4'
  ].sort(), 'every referenced object is still there')

  const after = await reconcile({ aws, config }, { graceMs: 0 })
  t.same([after.orphans, after.laggingLatest, after.abandonedSessions, after.idempotency.expired], [[], [], [], 0], 'nothing left but the gap')
  t.equal(after.missingRecords.length, 1)

  // Once the live upload's replica stops too, its object becomes a leftover like any other.
  stopLive()
  await new Promise((resolve) => setTimeout(resolve, leaseMs + 200))
  const later = await reconcile({ aws, config }, { graceMs: 0 })
  t.match(later.abandonedSessions, [{ uploadId: live.uploadId }])
  t.same(later.orphans.map((orphan) => orphan.key), [`videos/p1/live/uploads/${live.uploadId}/live.mp4`])
})

t.test('listing pages by the last key seen: every object is seen across pages (the embedded S3 needs no --openssl-legacy-provider)', async (t) => {
  const testAws = await startTestAws(t)
  const aws = createAwsClients(testAws.config)
  t.teardown(() => { aws.destroy() })
  const keys = ['a', 'b', 'c', 'd', 'e'].map((name) => `videos/p1/paged/uploads/u-${name}/x.mp4`)
  for (const key of keys) await aws.s3.send(new PutObjectCommand({ Bucket: testAws.config.videoBucket, Key: key, Body: key }))
  // Pages of two keys: three truncated pages, each continued from its last key (ListObjectsV2 answered 500 here).
  const report = await reconcile({ aws, config: testAws.config }, { graceMs: 0, pageSize: 2 })
  t.same(report.orphans.map((orphan) => orphan.key).sort(), keys, 'all five found across three pages')
})

t.test('the CLI run while the embedded service runs on the same DATA_DIR uses its emulators (no "Database is closed")', async (t) => {
  const testAws = await startTestAws(t)
  const aws = createAwsClients(testAws.config)
  t.teardown(() => { aws.destroy() })
  await aws.s3.send(new PutObjectCommand({ Bucket: testAws.config.videoBucket, Key: 'videos/p1/live/uploads/u-stray/x.mp4', Body: 'stray' }))
  // What `npm run reconcile` sees on the machine of a running `npm start`: DATA_DIR only, no endpoints.
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', DATA_DIR: testAws.dataDir }
  const run = spawnSync(process.execPath, [...process.execArgv, new URL('../../src/ops/reconcile.ts', import.meta.url).pathname, '--grace-minutes=0'], { env, encoding: 'utf8', timeout: 120000 })
  t.equal(run.status, 1, `found the orphan, did not crash: ${run.stderr}`)
  t.match(JSON.parse(run.stdout), { orphans: [{ key: 'videos/p1/live/uploads/u-stray/x.mp4' }] })
  const head = await fetch(`${testAws.config.s3Endpoint}/`)
  t.equal(head.status, 200, "and the service's emulators still run")
})
