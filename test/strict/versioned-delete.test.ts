// Strict tier only (npm run test:strict): deleting a video in versioned buckets (a code bucket with S3 Object Lock, a
// video bucket with versioning) on the Ceph RADOS Gateway. A plain delete there only hides each object under a delete
// marker; the service must delete every version and delete marker it owns, and say which versions a lock keeps.
// s3rver keeps no versions (ListObjectVersions is 405), so the embedded tier only sees the unversioned path.
import t from 'tap'
import { ListObjectVersionsCommand, PutBucketVersioningCommand, PutObjectCommand, PutObjectLegalHoldCommand, type S3Client } from '@aws-sdk/client-s3'
import { build, onStrictBackend, startTestAws } from '../helper.js'
import { mp4Bytes } from '../support/render-fixtures.js'

const skip = onStrictBackend() ? false : 'needs a versioned bucket with S3 Object Lock: runs on the strict tier (npm run test:strict)'
const steady = { overload: { maxEventLoopDelayMs: 0, maxHeapBytes: 0 }, rateLimit: { max: 0, windowMs: 60_000 } }
const videoUrl = (videoId: string, suffix = ''): string => `/v1/projects/p1/videos/${videoId}${suffix}`
const inMinutes = (minutes: number): string => new Date(Date.now() + minutes * 60_000).toISOString()

/** Every version and delete marker left under a prefix: "key versionId" (markers end in " marker"). */
async function leftovers (s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const listed = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: prefix }))
  return [
    ...(listed.Versions ?? []).map((version) => `${version.Key ?? ''} ${version.VersionId ?? ''}`),
    ...(listed.DeleteMarkers ?? []).map((marker) => `${marker.Key ?? ''} ${marker.VersionId ?? ''} marker`)
  ].sort()
}

t.test('deleting a video in versioned buckets', { skip }, async (t) => {
  const app = await build(t, { aws: await startTestAws(t, {}, { codeObjectLock: true }), config: steady })
  const s3 = app.aws.s3
  const { codeBucket, videoBucket } = app.config
  await s3.send(new PutBucketVersioningCommand({ Bucket: videoBucket, VersioningConfiguration: { Status: 'Enabled' } }))
  const writeCode = async (videoId: string, content: string, body: Record<string, unknown> = {}): Promise<void> => {
    const response = await app.inject({ method: 'POST', url: videoUrl(videoId, '/code'), payload: { content, ...body } })
    if (response.statusCode !== 201) throw new Error(`code answered ${response.statusCode}: ${response.body}`)
  }
  const uploadRender = async (videoId: string): Promise<void> => {
    const response = await app.inject({ method: 'POST', url: videoUrl(videoId, '/renders'), headers: { 'content-type': 'video/mp4' }, payload: mp4Bytes(64 * 1024) })
    if (response.statusCode !== 201) throw new Error(`render answered ${response.statusCode}: ${response.body}`)
  }

  t.test('without locks: 204 and not one version or delete marker is left in either bucket', async (t) => {
    await writeCode('plain', 'a = 1\n')
    await writeCode('plain', 'a = 2\n')
    await uploadRender('plain')
    // An object overwritten and one deleted the plain way: versions and a delete marker a key-only delete would leave.
    const stray = 'code/p1/plain/stray/notes.txt'
    await s3.send(new PutObjectCommand({ Bucket: codeBucket, Key: stray, Body: 'one' }))
    await s3.send(new PutObjectCommand({ Bucket: codeBucket, Key: stray, Body: 'two' }))
    t.ok((await leftovers(s3, codeBucket, 'code/p1/plain/')).length >= 4, 'the code bucket holds several versions before the delete')
    t.ok((await leftovers(s3, videoBucket, 'videos/p1/plain/')).length >= 1, 'the video bucket holds the render')

    const deleted = await app.inject({ method: 'DELETE', url: videoUrl('plain') })
    t.equal(deleted.statusCode, 204, deleted.body)
    t.same(await leftovers(s3, codeBucket, 'code/p1/plain/'), [], 'no version and no delete marker left in the code bucket')
    t.same(await leftovers(s3, videoBucket, 'videos/p1/plain/'), [], 'nor in the versioned video bucket')
    t.equal((await app.inject({ method: 'GET', url: videoUrl('plain') })).statusCode, 404)
  })

  t.test('locked versions stay and the answer names each, with its lock and until when; everything else goes', async (t) => {
    await writeCode('locked', 'v = 1\n', { lock: { legalHold: true } })
    await writeCode('locked', 'v = 2\n')
    const until = inMinutes(60)
    const retain = await app.inject({ method: 'PUT', url: videoUrl('locked', '/code/versions/2/lock'), payload: { mode: 'GOVERNANCE', retainUntil: until } })
    t.equal(retain.statusCode, 200, retain.body)
    await writeCode('locked', 'v = 3\n')
    await uploadRender('locked')
    const versions = (await app.inject({ method: 'GET', url: videoUrl('locked', '/code/versions') })).json().items as Array<{ version: number, key: string }>
    const keyOf = (version: number): string => versions.find((item) => item.version === version)?.key as string

    const deleted = await app.inject({ method: 'DELETE', url: videoUrl('locked') })
    t.equal(deleted.statusCode, 200, deleted.body)
    const body = deleted.json()
    t.equal(body.deleted, true)
    t.equal(body.retained.length, 2, 'two versions are kept')
    const byKey = Object.fromEntries((body.retained as Array<{ key: string }>).map((version) => [version.key, version]))
    t.match(byKey[keyOf(1)], { bucket: codeBucket, legalHold: true, versionId: /./ }, 'version 1: legal hold')
    t.notOk('retainUntil' in byKey[keyOf(1)])
    t.match(byKey[keyOf(2)], { bucket: codeBucket, legalHold: false, mode: 'GOVERNANCE', retainUntil: until }, 'version 2: retained until the date set')
    t.match(body.detail, /legal hold/)
    t.match(body.detail, new RegExp(until.replace(/[.]/g, '\\.')))

    const left = await leftovers(s3, codeBucket, 'code/p1/locked/')
    t.same(left.filter((entry) => !entry.endsWith(' marker')).map((entry) => entry.split(' ')[0]).sort(), [keyOf(1), keyOf(2)].sort(), 'only the two locked versions remain')
    t.equal(left.filter((entry) => entry.endsWith(' marker')).length, 2, 'each under a delete marker, so nothing reads as current')
    t.notOk(left.some((entry) => entry.startsWith(keyOf(3))), 'the unlocked version 3 is gone with its versions')
    t.same(await leftovers(s3, videoBucket, 'videos/p1/locked/'), [], 'the render is gone')
    t.equal((await app.inject({ method: 'GET', url: videoUrl('locked') })).statusCode, 404, 'the video is deleted')

    // Released: a repeated delete of what is left (as an operator would after a hold ends) leaves only the retained one.
    await s3.send(new PutObjectLegalHoldCommand({ Bucket: codeBucket, Key: keyOf(1), VersionId: byKey[keyOf(1)].versionId, LegalHold: { Status: 'OFF' } }))
    await app.inject({ method: 'PUT', url: videoUrl('locked'), payload: {} })
    const again = await app.inject({ method: 'DELETE', url: videoUrl('locked') })
    t.equal(again.statusCode, 200, again.body)
    t.same(again.json().retained.map((version: { key: string }) => version.key), [keyOf(2)], 'the released version went; the retained one stays')
  })
})
