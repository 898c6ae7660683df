import t from 'tap'
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { DeleteCommand, GetCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb'
import { build, startTestAws } from '../helper.js'
import { clients, mp4Bytes, objectKeys, sha256 } from '../support/render-fixtures.js'
import { createRenderVersions, uploadObjectKey } from '../../src/renders/store.js'
import { createUploadSessions } from '../../src/uploads/sessions.js'
import { uploadSortKey, versionSortKey, videoKey } from '../../src/table/video-item.js'
import { newIdentity } from '../../src/versions/store.js'
import { sniffVideoContainer } from '../../src/renders/container.js'

t.test('commit: the next version is one conditional item carrying its token; the object stays where it was stored', async (t) => {
  const testAws = await startTestAws(t)
  const aws = clients(t, testAws)
  const { config } = testAws
  const renders = createRenderVersions({ aws, config })
  const stored = async (uploadId: string, size: number): Promise<{ key: string, ext: string, sizeBytes: number, sha256: string, contentType: string, bytes: Buffer }> => {
    const bytes = mp4Bytes(size)
    const key = uploadObjectKey('p1', 'v1', uploadId, 'mp4')
    await aws.s3.send(new PutObjectCommand({ Bucket: config.videoBucket, Key: key, Body: bytes, ContentType: 'video/mp4' }))
    return { key, ext: 'mp4', sizeBytes: bytes.length, sha256: sha256(bytes), contentType: 'video/mp4', bytes }
  }
  const renderItem = async (version: number): Promise<Record<string, unknown> | undefined> =>
    (await aws.ddb.send(new GetCommand({ TableName: config.table, Key: { pk: videoKey('p1', 'v1').pk, sk: versionSortKey('RENDER', version) }, ConsistentRead: true }))).Item
  const videoRecord = async (): Promise<Record<string, unknown> | undefined> =>
    (await aws.ddb.send(new GetCommand({ TableName: config.table, Key: videoKey('p1', 'v1'), ConsistentRead: true }))).Item

  const one = await stored('u1', 200 * 1024)
  const first = await renders.commit(newIdentity('token-1'), { projectId: 'p1', videoId: 'v1', stored: one, details: { uploadId: 'u1' } })
  t.equal(first.recovered, false)
  t.match(first.render, { version: 1, key: 'videos/p1/v1/uploads/u1/v1.mp4', sizeBytes: one.sizeBytes, uploadId: 'u1', sceneCount: 0, status: 'uploaded' })
  t.equal((first.render as unknown as Record<string, unknown>).commitToken, undefined, 'the token stays inside')
  t.match(await renderItem(1), { sk: 'RENDER#000000001', commitToken: 'token-1', version: 1 }, 'the item carries the commit token')
  t.same(await objectKeys(aws, config.videoBucket), [one.key], 'nothing copied: the object stays at its upload key')
  const head = await aws.s3.send(new HeadObjectCommand({ Bucket: config.videoBucket, Key: first.render.key }))
  t.equal(head.ContentType, 'video/mp4')
  t.equal(head.ContentLength, one.sizeBytes)
  t.match(await renders.get('p1', 'v1', 'latest'), { version: 1, sha256: one.sha256 })
  t.match(await videoRecord(), { latestRenderVersion: 1, latestRenderKey: one.key, currentVersionId: 'v1' })

  // The same identity again (a repeat after a lost answer): the version it made, not a second one.
  const two = await stored('u2', 100 * 1024)
  const repeat = await renders.commit({ token: 'token-1', mayExist: true }, { projectId: 'p1', videoId: 'v1', stored: two, details: { uploadId: 'u2' } })
  t.equal(repeat.recovered, true)
  t.match(repeat.render, { version: 1, key: one.key, uploadId: 'u1' })
  t.equal(await renderItem(2), undefined, 'no version 2')
  t.match(await renders.committedBy('p1', 'v1', { token: 'token-1', mayExist: true }), { version: 1 })
  t.equal(await renders.committedBy('p1', 'v1', { token: 'token-1', mayExist: false }), undefined, 'a first attempt does not look')
  t.equal(await renders.committedBy('p1', 'v1', { token: 'nobody', mayExist: true }), undefined)

  const second = await renders.commit(newIdentity('token-2'), { projectId: 'p1', videoId: 'v1', stored: two, details: { uploadId: 'u2' } })
  t.match(second.render, { version: 2, key: two.key })
  t.match(await videoRecord(), { latestRenderVersion: 2, latestRenderKey: two.key })

  // The record's latest is a hint: numbers come from the items, and the hint only moves forward.
  await aws.ddb.send(new UpdateCommand({ TableName: config.table, Key: videoKey('p1', 'v1'), UpdateExpression: 'SET latestRenderVersion = :lagging', ExpressionAttributeValues: { ':lagging': 1 } }))
  const three = await stored('u3', 1024)
  t.match((await renders.commit(newIdentity('token-3'), { projectId: 'p1', videoId: 'v1', stored: three })).render, { version: 3 }, 'a lagging hint does not reuse a number')
  t.match(await videoRecord(), { latestRenderVersion: 3 }, 'and it catches up')

  // A commit DynamoDB refuses outright (an item over 400 KB) writes nothing and takes no number.
  const four = await stored('u4', 1024)
  await t.rejects(renders.commit(newIdentity('token-big'), { projectId: 'p1', videoId: 'v1', stored: four, details: { metadata: { blob: 'x'.repeat(410 * 1024) } } }))
  t.equal(await renderItem(4), undefined, 'nothing written')
  t.match((await renders.commit(newIdentity('token-4'), { projectId: 'p1', videoId: 'v1', stored: four })).render, { version: 4 }, 'the next commit takes the next number: no gap')
  t.same((await renders.list('p1', 'v1', { limit: 10 })).items.map((item) => item.version), [4, 3, 2, 1])

  const { downloadUrl, expiresAt } = await renders.downloadUrl(first.render)
  t.match(downloadUrl, /X-Amz-Expires=900/)
  t.ok(Date.parse(expiresAt) > Date.now() + 800_000)
})

t.test('concurrent commits to one video take consecutive numbers, none waits for a claim, none is lost', async (t) => {
  const testAws = await startTestAws(t)
  const aws = clients(t, testAws)
  const { config } = testAws
  const renders = createRenderVersions({ aws, config })
  const stored = { ext: 'mp4', sizeBytes: 10, sha256: sha256(Buffer.from('x')), contentType: 'video/mp4' }
  const results = await Promise.all(Array.from({ length: 6 }, async (_, index) =>
    await renders.commit(newIdentity(`token-${index}`), { projectId: 'p1', videoId: 'race', stored: { ...stored, key: uploadObjectKey('p1', 'race', `u${index}`, 'mp4') } })))
  t.same(results.map((result) => result.render.version).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6])
  t.same(new Set(results.map((result) => result.render.key)).size, 6, 'each version names its own object')
  const { Item } = await aws.ddb.send(new GetCommand({ TableName: config.table, Key: videoKey('p1', 'race'), ConsistentRead: true }))
  t.equal(Item?.latestRenderVersion, 6, 'the hint ends at the highest')
  t.equal(Item?.renderClaim, undefined, 'no claim attribute')
})

t.test('saveScene on a render version deleted meanwhile: 404, and no stub version item or scene item is left to break later commits', async (t) => {
  const testAws = await startTestAws(t)
  const aws = clients(t, testAws)
  const { config } = testAws
  const renders = createRenderVersions({ aws, config })
  const stored = { ext: 'mp4', sizeBytes: 10, sha256: sha256(Buffer.from('x')), contentType: 'video/mp4' }
  const { render } = await renders.commit(newIdentity('token-1'), { projectId: 'p1', videoId: 'gone', stored: { ...stored, key: uploadObjectKey('p1', 'gone', 'u1', 'mp4') } })
  const scene = await renders.saveScene(render, 1, { ...stored, key: 'videos/p1/gone/scenes/v1/1/a.mp4' })
  t.match(scene, { version: 1, sceneNumber: 1 })
  t.match(await renders.get('p1', 'gone', 1), { sceneCount: 1 })

  // What a DELETE of the video does to the items while a scene upload is still streaming.
  const pk = videoKey('p1', 'gone').pk
  for (const sk of [versionSortKey('RENDER', 1), 'SCENE#000000001#00001']) await aws.ddb.send(new DeleteCommand({ TableName: config.table, Key: { pk, sk } }))
  await t.rejects(renders.saveScene(render, 2, { ...stored, key: 'videos/p1/gone/scenes/v1/2/b.mp4' }), { statusCode: 404 })
  const left = (await aws.ddb.send(new QueryCommand({ TableName: config.table, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': pk }, ConsistentRead: true }))).Items ?? []
  t.same(left.map((item) => item.sk).filter((sk) => sk !== 'VIDEO'), [], 'no RENDER# stub and no SCENE# item')
  t.match((await renders.commit(newIdentity('token-2'), { projectId: 'p1', videoId: 'gone', stored: { ...stored, key: uploadObjectKey('p1', 'gone', 'u2', 'mp4') } })).render, { version: 1 }, 'the next render commits normally')
})

t.test('upload sessions: latest follows the newest, progress is throttled, finish guards status, expiry and discard', async (t) => {
  const testAws = await startTestAws(t)
  const aws = clients(t, testAws)
  const { config } = testAws
  const sessions = createUploadSessions({ aws, config })
  const first = await sessions.create({ projectId: 'p1', videoId: 'v1', mode: 'direct', contentType: 'video/mp4', totalBytes: 100, attributes: { parts: [] } })
  t.match(first, { status: 'pending', bytesUploaded: 0, retryCount: 0, mode: 'direct', parts: [] })
  const second = await sessions.create({ projectId: 'p1', videoId: 'v1', mode: 'proxied', contentType: 'video/mp4', status: 'uploading' })
  t.equal((await sessions.latest('p1', 'v1'))?.uploadId, second.uploadId)
  t.equal(await sessions.latest('p1', 'nothing'), undefined)

  await Promise.all([sessions.progress(first, 10), sessions.progress(first, 20)])
  t.equal((await sessions.get('p1', 'v1', first.uploadId))?.bytesUploaded, 10, 'the second write within a second was skipped')
  t.equal((await sessions.get('p1', 'v1', first.uploadId))?.status, 'uploading')

  const done = await sessions.finish(first, { status: 'completed', bytesUploaded: 100, renderVersion: 1, expectStatus: ['pending', 'uploading'] })
  t.match(done, { status: 'completed', bytesUploaded: 100, renderVersion: 1 })
  await t.rejects(sessions.finish(first, { status: 'aborted', expectStatus: ['pending', 'uploading'] }), { statusCode: 409 })

  await aws.ddb.send(new UpdateCommand({ TableName: config.table, Key: { pk: videoKey('p1', 'v1').pk, sk: uploadSortKey(second.uploadId) }, UpdateExpression: 'SET expiresAtEpoch = :past', ExpressionAttributeValues: { ':past': 1 } }))
  t.equal((await sessions.get('p1', 'v1', second.uploadId))?.status, 'uploading', 'past its expiry, a session whose lease is live is still being worked on')
  await aws.ddb.send(new UpdateCommand({ TableName: config.table, Key: { pk: videoKey('p1', 'v1').pk, sk: uploadSortKey(second.uploadId) }, UpdateExpression: 'SET leaseUntil = :past', ExpressionAttributeValues: { ':past': 1 } }))
  t.equal((await sessions.get('p1', 'v1', second.uploadId))?.status, 'expired', 'an open session past its expiry, with no live lease, reads as expired')

  const third = await sessions.create({ projectId: 'p1', videoId: 'v1', mode: 'proxied', contentType: 'video/mp4' })
  await sessions.discard(third)
  t.equal(await sessions.get('p1', 'v1', third.uploadId), undefined)
  t.equal((await sessions.latest('p1', 'v1'))?.uploadId, second.uploadId, 'latestUploadId points back at the previous upload')

  const lone = await sessions.create({ projectId: 'p1', videoId: 'fresh', mode: 'proxied', contentType: 'video/mp4' })
  await sessions.discard(lone)
  const { Item } = await aws.ddb.send(new GetCommand({ TableName: config.table, Key: videoKey('p1', 'fresh') }))
  t.equal(Item, undefined, 'a video record made only for the discarded upload is gone')
})

t.test('container sniffing', async (t) => {
  t.match(sniffVideoContainer(mp4Bytes(64)), { container: 'mp4', contentType: 'video/mp4' })
  const mov = Buffer.concat([Buffer.from([0, 0, 0, 0x14]), Buffer.from('ftypqt  '), Buffer.alloc(52)])
  t.match(sniffVideoContainer(mov), { container: 'mov', ext: 'mov' })
  t.match(sniffVideoContainer(Buffer.concat([Buffer.from([0, 0, 0, 0x20]), Buffer.from('moov'), Buffer.alloc(56)])), { container: 'mov' })
  t.match(sniffVideoContainer(Buffer.from([0x1a, 0x45, 0xdf, 0xa3, 0x42, 0x82, 0x88, ...Buffer.from('matroska')])), { container: 'mkv', contentType: 'video/x-matroska' })
  t.match(sniffVideoContainer(Buffer.concat([Buffer.from('RIFF'), Buffer.alloc(4), Buffer.from('AVI LIST')])), { container: 'avi' })
  t.equal(sniffVideoContainer(Buffer.from('GIF89a........')), undefined)
  t.equal(sniffVideoContainer(Buffer.alloc(0)), undefined)
  t.equal(sniffVideoContainer(Buffer.from([0x1a, 0x45])), undefined)
})

t.test('listing the renders of an unknown video is a 404, like its code versions', async (t) => {
  const app = await build(t)
  const response = await app.inject({ method: 'GET', url: '/v1/projects/p1/videos/never-made/renders' })
  t.equal(response.statusCode, 404)
  t.match(response.headers['content-type'], /^application\/problem\+json/)
})
