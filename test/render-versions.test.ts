import t from 'tap'
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb'
import { build, startTestAws } from './helper.js'
import { clients, mp4Bytes, objectKeys, sha256 } from './render-fixtures.js'
import { createRenderVersions, stagingKey } from '../src/render-versions.js'
import { createUploadSessions } from '../src/upload-sessions.js'
import { createVersionClaims, uploadSortKey, videoKey } from '../src/video-records.js'
import { sniffVideoContainer } from '../src/video-container.js'

t.test('commitFromStaging: next version, copied with its type, staging removed; a failure keeps nothing and frees the number', async (t) => {
  const testAws = await startTestAws(t)
  const aws = clients(t, testAws)
  const { config } = testAws
  const claims = createVersionClaims({ ddb: aws.ddb, table: config.table })
  const renders = createRenderVersions({ aws, config, claims })
  const bytes = mp4Bytes(200 * 1024)
  const staged = stagingKey('p1', 'v1', 'u1', 'mp4')
  await aws.s3.send(new PutObjectCommand({ Bucket: config.videoBucket, Key: staged, Body: bytes, ContentType: 'video/mp4' }))
  const render = await renders.commitFromStaging({ projectId: 'p1', videoId: 'v1', stagingKey: staged, ext: 'mp4', sizeBytes: bytes.length, sha256: sha256(bytes), contentType: 'video/mp4', details: { uploadId: 'u1' } })
  t.match(render, { version: 1, key: 'videos/p1/v1/v1/v1.mp4', sizeBytes: bytes.length, uploadId: 'u1', sceneCount: 0 })
  t.same(await objectKeys(aws, config.videoBucket), ['videos/p1/v1/v1/v1.mp4'], 'staging object deleted')
  const head = await aws.s3.send(new HeadObjectCommand({ Bucket: config.videoBucket, Key: render.key }))
  t.equal(head.ContentType, 'video/mp4')
  t.equal(head.ContentLength, bytes.length)
  t.match(await renders.get('p1', 'v1', 'latest'), { version: 1, sha256: sha256(bytes) })

  await t.rejects(renders.commitFromStaging({ projectId: 'p1', videoId: 'v1', stagingKey: stagingKey('p1', 'v1', 'missing', 'mp4'), ext: 'mp4', sizeBytes: 1, sha256: sha256(bytes), contentType: 'video/mp4' }))
  t.same(await objectKeys(aws, config.videoBucket), ['videos/p1/v1/v1/v1.mp4'], 'nothing new visible')
  const { Item } = await aws.ddb.send(new GetCommand({ TableName: config.table, Key: videoKey('p1', 'v1') }))
  t.equal(Item?.latestRenderVersion, 1)
  t.equal(Item?.renderClaim, undefined, 'claim released')
  t.equal(await renders.get('p1', 'v1', 2), undefined)
  const { downloadUrl, expiresAt } = await renders.downloadUrl(render)
  t.match(downloadUrl, /X-Amz-Expires=900/)
  t.ok(Date.parse(expiresAt) > Date.now() + 800_000)
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

  sessions.progress(first, 10)
  sessions.progress(first, 20)
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal((await sessions.get('p1', 'v1', first.uploadId))?.bytesUploaded, 10, 'the second write within a second was skipped')
  t.equal((await sessions.get('p1', 'v1', first.uploadId))?.status, 'uploading')

  const done = await sessions.finish(first, { status: 'completed', bytesUploaded: 100, renderVersion: 1, expectStatus: ['pending', 'uploading'] })
  t.match(done, { status: 'completed', bytesUploaded: 100, renderVersion: 1 })
  await t.rejects(sessions.finish(first, { status: 'aborted', expectStatus: ['pending', 'uploading'] }), { statusCode: 409 })

  await aws.ddb.send(new UpdateCommand({ TableName: config.table, Key: { pk: videoKey('p1', 'v1').pk, sk: uploadSortKey(second.uploadId) }, UpdateExpression: 'SET expiresAtEpoch = :past', ExpressionAttributeValues: { ':past': 1 } }))
  t.equal((await sessions.get('p1', 'v1', second.uploadId))?.status, 'expired', 'an open session past its expiry reads as expired')

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
