import t from 'tap'
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3'
import { GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb'
import { createAwsClients } from '../../src/aws/clients.js'
import { sceneSortKey, uploadSortKey, versionSortKey, videoKey } from '../../src/table/video-item.js'
import { buildServer } from '../../src/app.js'
import { build } from '../helper.js'
import { isVersionCommit, LossyDdb } from '../support/faults/lossy-ddb.js'

const base = '/v1/projects/p1/videos'
// One app and one pair of emulators for the file; each test uses its own video or project ids. Overload shedding
// is off: a busy shared test machine must not turn these requests into 503s.
const overload = { maxEventLoopDelayMs: 0, maxHeapBytes: 0 }
const shared = await build(t, { config: { overload } })

t.test('PUT creates (201) then updates (200) the given fields; GET answers the API shape with an ETag', async (t) => {
  const app = shared
  const base = '/v1/projects/q1/videos'
  const created = await app.inject({ method: 'PUT', url: `${base}/v1`, payload: { title: 'Intro', tags: ['a', 'b'], customMetadata: { scene: 'one' } } })
  t.equal(created.statusCode, 201)
  t.match(created.json(), { projectId: 'q1', videoId: 'v1', title: 'Intro', tags: ['a', 'b'], customMetadata: { scene: 'one' }, status: 'created', revision: 1 })
  t.equal(created.headers.etag, 'W/"r1"')
  const updated = await app.inject({ method: 'PUT', url: `${base}/v1`, payload: { description: 'the opening' } })
  t.equal(updated.statusCode, 200)
  t.match(updated.json(), { title: 'Intro', description: 'the opening', tags: ['a', 'b'], revision: 2 }, 'fields left out are kept')
  const read = await app.inject({ method: 'GET', url: `${base}/v1` })
  t.equal(read.statusCode, 200)
  t.equal(read.headers.etag, 'W/"r2"')
  const notModified = await app.inject({ method: 'GET', url: `${base}/v1`, headers: { 'if-none-match': 'W/"r2"' } })
  t.equal(notModified.statusCode, 304, 'If-None-Match with the current ETag')
  t.equal(notModified.body, '')
  t.equal((await app.inject({ method: 'GET', url: `${base}/v1`, headers: { 'if-none-match': 'W/"r1"' } })).statusCode, 200, 'a stale ETag gets the record')
  const body = read.json()
  t.equal(body.createdAt, created.json().createdAt, 'createdAt never changes')
  t.equal(body.s3Paths.prefix, `s3://${app.config.videoBucket}/videos/q1/v1/`)
  for (const hidden of ['pk', 'sk', 'gsi1pk', 'gsi1sk', 'renderClaim', 'codeClaim']) t.notOk(hidden in body, `${hidden} is not exposed`)
})

t.test('PUT never clobbers the versions, hints or status that writes of versions keep on the record', async (t) => {
  const app = shared
  const base = '/v1/projects/q2/videos'
  const aws = createAwsClients(app.config)
  t.teardown(() => aws.destroy())
  const renderKey = 'videos/q2/v2/uploads/u3/v2.mp4'
  const codeKey = 'code/q2/v2/idem-0123/v2.py'
  await aws.ddb.send(new PutCommand({
    TableName: app.config.table,
    Item: { ...videoKey('q2', 'v2'), projectId: 'q2', videoId: 'v2', status: 'rendering', latestRenderVersion: 3, latestCodeVersion: 7, latestRenderKey: renderKey, latestRenderSha256: 'abc', latestCodeKey: codeKey, latestCodeSha256: 'def', revision: 9, createdAt: '2026-01-01T00:00:00.000Z', gsi1pk: 'PROJECT#q2', gsi1sk: '2026-01-01T00:00:00.000Z#v2' }
  }))
  const response = await app.inject({ method: 'PUT', url: `${base}/v2`, payload: { title: 'kept' } })
  t.equal(response.statusCode, 200)
  t.match(response.json(), { status: 'rendering', latestRenderVersion: 3, latestCodeVersion: 7, revision: 10, createdAt: '2026-01-01T00:00:00.000Z', s3Paths: { video: `s3://${app.config.videoBucket}/${renderKey}`, code: `s3://${app.config.codeBucket}/${codeKey}` } })
  const { Item } = await aws.ddb.send(new GetCommand({ TableName: app.config.table, Key: videoKey('q2', 'v2') }))
  t.match(Item, { latestRenderSha256: 'abc', latestCodeSha256: 'def', latestRenderKey: renderKey, latestCodeKey: codeKey })
  t.equal(Item?.gsi1sk, '2026-01-01T00:00:00.000Z#v2')
})

t.test('field limits, unknown fields and bad ids are 400 problems', async (t) => {
  const app = shared
  const base = '/v1/projects/q3/videos'
  const cases = [
    { url: `${base}/v1`, payload: { title: 'x'.repeat(201) } },
    { url: `${base}/v1`, payload: { description: 'x'.repeat(5001) } },
    { url: `${base}/v1`, payload: { tags: Array.from({ length: 51 }, (_, index) => `t${index}`) } },
    { url: `${base}/v1`, payload: { tags: ['x'.repeat(65)] } },
    { url: `${base}/v1`, payload: { customMetadata: { a: { nested: 'x' } } } },
    { url: `${base}/v1`, payload: { customMetadata: Object.fromEntries(Array.from({ length: 51 }, (_, index) => [`k${index}`, 'v'])) } },
    { url: `${base}/v1`, payload: { status: 'uploaded' } },
    { url: `${base}/bad.id`, payload: {} },
    { url: '/v1/projects/-p/videos/v1', payload: {} }
  ]
  for (const { url, payload } of cases) {
    const response = await app.inject({ method: 'PUT', url, payload })
    t.equal(response.statusCode, 400, `${url} ${JSON.stringify(payload).slice(0, 60)}`)
    t.match(response.headers['content-type'], /application\/problem\+json/)
  }
  const list = await app.inject({ method: 'GET', url: `${base}` })
  t.same(list.json().items, [], 'nothing was stored')
  t.equal((await app.inject({ method: 'GET', url: '/v1/projects/q3/videos/a%2Fb' })).statusCode, 400)
  t.equal((await app.inject({ method: 'DELETE', url: '/v1/projects/q3/videos/_x' })).statusCode, 400)
})

t.test('bad ids are refused before any storage call (the storage is not even running)', async (t) => {
  const app = await build(t, { config: { overload } })
  await app.testAws.embedded.dynamodb.stop()
  await app.testAws.embedded.s3.stop()
  const response = await app.inject({ method: 'GET', url: '/v1/projects/p%20q/videos/v1' })
  t.equal(response.statusCode, 400)
  const stored = await app.inject({ method: 'GET', url: `${base}/v1` })
  t.equal(stored.statusCode, 503, 'a good id does reach storage, which is down')
})

t.test('unknown videos are 404 problems for GET, PATCH and DELETE', async (t) => {
  const app = shared
  const base = '/v1/projects/q5/videos'
  for (const method of ['GET', 'DELETE'] as const) {
    const response = await app.inject({ method, url: `${base}/nope` })
    t.equal(response.statusCode, 404, method)
    t.match(response.json(), { status: 404, title: 'Not Found' })
  }
  const patch = await app.inject({ method: 'PATCH', url: `${base}/nope`, headers: { 'if-match': 'W/"r1"' }, payload: { title: 'x' } })
  t.equal(patch.statusCode, 404)
})

t.test('PATCH needs If-Match (428), answers 412 when stale, and moves the ETag on', async (t) => {
  const app = shared
  const base = '/v1/projects/q6/videos'
  const created = await app.inject({ method: 'PUT', url: `${base}/v1`, payload: { title: 'one' } })
  const etag = created.headers.etag as string
  const missing = await app.inject({ method: 'PATCH', url: `${base}/v1`, payload: { title: 'two' } })
  t.equal(missing.statusCode, 428)
  const patched = await app.inject({ method: 'PATCH', url: `${base}/v1`, headers: { 'if-match': etag }, payload: { title: 'two', durationSeconds: 12.5, resolution: '1920x1080', sceneCount: 3 } })
  t.equal(patched.statusCode, 200)
  t.match(patched.json(), { title: 'two', durationSeconds: 12.5, resolution: '1920x1080', sceneCount: 3, revision: 2 })
  t.equal(patched.headers.etag, 'W/"r2"')
  const stale = await app.inject({ method: 'PATCH', url: `${base}/v1`, headers: { 'if-match': etag }, payload: { title: 'three' } })
  t.equal(stale.statusCode, 412)
  t.match(stale.headers['content-type'], /problem\+json/)
  const garbage = await app.inject({ method: 'PATCH', url: `${base}/v1`, headers: { 'if-match': '"abc"' }, payload: { title: 'three' } })
  t.equal(garbage.statusCode, 412, 'a tag that is not ours matches nothing')
  const strong = await app.inject({ method: 'PATCH', url: `${base}/v1`, headers: { 'if-match': '"r2"' }, payload: { tags: ['x'] } })
  t.equal(strong.statusCode, 200, 'the strong form of the tag compares alike')
  const any = await app.inject({ method: 'PATCH', url: `${base}/v1`, headers: { 'if-match': '*' }, payload: { title: 'any' } })
  t.equal(any.statusCode, 200)
  const empty = await app.inject({ method: 'PATCH', url: `${base}/v1`, headers: { 'if-match': '*' }, payload: {} })
  t.equal(empty.statusCode, 400, 'an empty patch is refused')
  const final = (await app.inject({ method: 'GET', url: `${base}/v1` })).json()
  t.match(final, { title: 'any', tags: ['x'], revision: 4 }, 'the refused patches changed nothing')
})

t.test('two PATCHes with the same ETag: exactly one wins, the other is 412', async (t) => {
  const app = shared
  const base = '/v1/projects/q7/videos'
  await app.inject({ method: 'PUT', url: `${base}/v1`, payload: {} })
  const results = await Promise.all(['a', 'b', 'c'].map(async (title) => await app.inject({ method: 'PATCH', url: `${base}/v1`, headers: { 'if-match': 'W/"r1"' }, payload: { title } })))
  t.same(results.map((response) => response.statusCode).sort(), [200, 412, 412])
})

t.test('status follows its lifecycle; an invalid transition is 409', async (t) => {
  const app = shared
  const base = '/v1/projects/q8/videos'
  await app.inject({ method: 'PUT', url: `${base}/v1`, payload: {} })
  const patch = async (status: string) => await app.inject({ method: 'PATCH', url: `${base}/v1`, headers: { 'if-match': '*' }, payload: { status } })
  t.equal((await patch('uploaded')).statusCode, 409, 'created cannot jump to uploaded')
  for (const status of ['code_ready', 'rendering', 'rendering', 'uploaded', 'code_ready', 'failed', 'rendering']) {
    t.equal((await patch(status)).statusCode, 200, `to ${status}`)
  }
  const invalid = await patch('created')
  t.equal(invalid.statusCode, 409)
  t.match(invalid.json().detail, /from rendering it may become uploaded or failed/)
  t.equal((await app.inject({ method: 'GET', url: `${base}/v1` })).json().status, 'rendering')
})

t.test('the list is newest first and pages with an opaque cursor', async (t) => {
  const app = shared
  const base = '/v1/projects/q9/videos'
  for (const id of ['a1', 'a2', 'a3', 'a4', 'a5']) {
    // created in the same millisecond or not, a5 comes first: the index sorts createdAt#videoId, newest first
    await app.inject({ method: 'PUT', url: `${base}/${id}`, payload: { title: id } })
  }
  await app.inject({ method: 'PUT', url: '/v1/projects/q9other/videos/o1', payload: {} })
  const seen: string[] = []
  let cursor: string | null = null
  let pages = 0
  do {
    const query: string = cursor === null ? '?limit=2' : `?limit=2&cursor=${cursor}`
    const page = await app.inject({ method: 'GET', url: `${base}${query}` })
    t.equal(page.statusCode, 200)
    const body = page.json() as { items: Array<{ videoId: string }>, nextCursor: string | null }
    t.ok(body.items.length <= 2)
    seen.push(...body.items.map((video) => video.videoId))
    cursor = body.nextCursor
    pages++
  } while (cursor !== null && pages < 10)
  t.same(seen, ['a5', 'a4', 'a3', 'a2', 'a1'])
  t.equal(pages, 3, 'no empty page at the end')
  const exact = (await app.inject({ method: 'GET', url: `${base}?limit=5` })).json()
  t.equal(exact.items.length, 5)
  t.equal(exact.nextCursor, null, 'an exactly full last page has no cursor')
  const first = (await app.inject({ method: 'GET', url: `${base}?limit=2` })).json().nextCursor as string
  const foreign = await app.inject({ method: 'GET', url: `/v1/projects/q9other/videos?cursor=${first}` })
  t.equal(foreign.statusCode, 400, "another project's cursor is refused")
  t.equal((await app.inject({ method: 'GET', url: `${base}?cursor=not-a-cursor` })).statusCode, 400)
  t.equal((await app.inject({ method: 'GET', url: `${base}?limit=0` })).statusCode, 400)
  t.equal((await app.inject({ method: 'GET', url: `${base}?limit=101` })).statusCode, 400)
})

t.test('DELETE removes objects in both buckets and every item of the video, and nothing of other videos', async (t) => {
  const app = shared
  const base = '/v1/projects/q10/videos'
  const aws = createAwsClients(app.config)
  t.teardown(() => aws.destroy())
  const { videoBucket, codeBucket, table } = app.config
  await app.inject({ method: 'PUT', url: `${base}/v1`, payload: { title: 'doomed' } })
  await app.inject({ method: 'PUT', url: `${base}/v10`, payload: { title: 'neighbour' } })
  const put = async (bucket: string, key: string) => await aws.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'x' }))
  // Objects where writes put them: under the upload or commit token that wrote them, never under a version number.
  await put(videoBucket, 'videos/q10/v1/uploads/u1/v1.mp4')
  await put(videoBucket, 'videos/q10/v1/scenes/v1/1/u2.mp4')
  await put(videoBucket, 'staging/q10/v1/u1/v1.mp4')
  await put(codeBucket, 'code/q10/v1/idem-0123/v1.py')
  await put(codeBucket, 'code/q10/v1/0d9e-leftover/v1.py')
  await put(videoBucket, 'videos/q10/v10/uploads/u9/v10.mp4')
  const pk = videoKey('q10', 'v1').pk
  for (const sk of [versionSortKey('RENDER', 1), versionSortKey('CODE', 1), sceneSortKey(1, 1), uploadSortKey('u1')]) {
    await aws.ddb.send(new PutCommand({ TableName: table, Item: { pk, sk } }))
  }
  const deleted = await app.inject({ method: 'DELETE', url: `${base}/v1` })
  t.equal(deleted.statusCode, 204)
  for (const [bucket, prefix] of [[videoBucket, 'videos/q10/v1/'], [videoBucket, 'staging/q10/v1/'], [codeBucket, 'code/q10/v1/']]) {
    const { KeyCount } = await aws.s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }))
    t.equal(KeyCount, 0, `${bucket}/${prefix} is empty`)
  }
  const neighbour = await aws.s3.send(new GetObjectCommand({ Bucket: videoBucket, Key: 'videos/q10/v10/uploads/u9/v10.mp4' }))
  t.equal(await neighbour.Body?.transformToString(), 'x', 'v10 shares the v1 prefix text but keeps its object')
  const { Items } = await aws.ddb.send(new QueryCommand({ TableName: table, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': pk } }))
  t.same(Items, [], 'no item of the video is left')
  t.equal((await app.inject({ method: 'GET', url: `${base}/v1` })).statusCode, 404)
  t.equal((await app.inject({ method: 'GET', url: `${base}/v10` })).statusCode, 200)
  t.same((await app.inject({ method: 'GET', url: base })).json().items.map((video: { videoId: string }) => video.videoId), ['v10'])
})

t.test('DELETE while a code version is being committed: the write is withdrawn (409) and the video goes whole; a write after the DELETE makes it anew', async (t) => {
  const testAws = shared.testAws
  const clients = createAwsClients(testAws.config)
  const lossy = new LossyDdb(clients.ddb)
  const app = await buildServer({ config: { ...testAws.config, overload }, aws: clients })
  t.teardown(async () => { await app.close() })
  await app.ready()
  const base = '/v1/projects/q11/videos'
  await app.inject({ method: 'PUT', url: `${base}/v1`, payload: {} })
  // The commit's PutItem is held until the DELETE has run: its object is written, its item not yet.
  const held = lossy.hold(isVersionCommit('CODE', videoKey('q11', 'v1').pk))
  const writing = app.inject({ method: 'POST', url: `${base}/v1/code`, payload: { content: 'print(1)\n' } })
  await held.reached
  t.equal((await app.inject({ method: 'DELETE', url: `${base}/v1` })).statusCode, 204)
  held.release()
  const written = await writing
  t.equal(written.statusCode, 409, `the write hears that its video was deleted under it: ${written.body.slice(0, 200)}`)
  t.match(written.headers['content-type'], /^application\/problem\+json/)
  const { Items } = await clients.ddb.send(new QueryCommand({ TableName: app.config.table, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': videoKey('q11', 'v1').pk }, ConsistentRead: true }))
  t.same(Items, [], 'no item of the deleted video is left (no version without a video)')
  const { KeyCount } = await clients.s3.send(new ListObjectsV2Command({ Bucket: app.config.codeBucket, Prefix: 'code/q11/v1/' }))
  t.equal(KeyCount, 0, 'and no object')
  t.equal((await app.inject({ method: 'GET', url: `${base}/v1/code` })).statusCode, 404)
  const again = await app.inject({ method: 'POST', url: `${base}/v1/code`, payload: { content: 'print(2)\n' } })
  t.equal(again.statusCode, 201, 'a write after the delete makes the video anew')
  t.equal(again.json().version, 1)
})
