// Strict tier only (npm run test:strict): S3 Object Lock on a lock-enabled code bucket of the Ceph RADOS Gateway.
// s3rver has no Object Lock at all, so the embedded tier can only show the 409 of a bucket without it.
import t from 'tap'
import { DeleteObjectCommand, GetObjectLegalHoldCommand, GetObjectRetentionCommand, HeadObjectCommand } from '@aws-sdk/client-s3'
import { retentionRuleBroken } from '../../src/code/object-lock.js'
import { build, onStrictBackend, startTestAws } from '../helper.js'

const skip = onStrictBackend() ? false : 'needs real S3 Object Lock: runs on the strict tier (npm run test:strict)'
const steady = { overload: { maxEventLoopDelayMs: 0, maxHeapBytes: 0 }, rateLimit: { max: 0, windowMs: 60_000 } }
const codeUrl = (videoId: string, suffix = ''): string => `/v1/projects/p1/videos/${videoId}/code${suffix}`
const inMinutes = (minutes: number): string => new Date(Date.now() + minutes * 60_000).toISOString()

t.test('Object Lock on a lock-enabled code bucket', { skip }, async (t) => {
  const app = await build(t, { aws: await startTestAws(t, {}, { codeObjectLock: true }), config: steady })
  const s3 = app.aws.s3
  const bucket = app.config.codeBucket
  const create = async (videoId: string, body: Record<string, unknown> = {}): Promise<{ key: string, versionId: string }> => {
    const response = await app.inject({ method: 'POST', url: codeUrl(videoId), payload: { content: `print("${videoId}")\n`, ...body } })
    if (response.statusCode !== 201) throw new Error(`create answered ${response.statusCode}: ${response.body}`)
    const key = response.json().key as string
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))
    return { key, versionId: head.VersionId as string }
  }
  const lock = async (videoId: string, body: Record<string, unknown>) => await app.inject({ method: 'PUT', url: codeUrl(videoId, '/versions/1/lock'), payload: body })
  const deleteVersion = async (key: string, versionId: string): Promise<string> =>
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId })).then(() => 'deleted', (error: { name: string }) => error.name)

  t.test('legal hold on and off', async (t) => {
    const { key, versionId } = await create('hold')
    const on = await lock('hold', { legalHold: true })
    t.equal(on.statusCode, 200, on.body)
    t.match(on.json(), { locked: true, lock: { legalHold: true } })
    t.equal((await s3.send(new GetObjectLegalHoldCommand({ Bucket: bucket, Key: key }))).LegalHold?.Status, 'ON', 'S3 holds it')
    t.equal(await deleteVersion(key, versionId), 'AccessDenied', 'a version under legal hold cannot be deleted')
    const off = await lock('hold', { legalHold: false })
    t.equal(off.statusCode, 200, off.body)
    t.match(off.json(), { locked: false, lock: { legalHold: false } })
    t.equal((await s3.send(new GetObjectLegalHoldCommand({ Bucket: bucket, Key: key }))).LegalHold?.Status, 'OFF', 'S3 released it')
  })

  t.test('a legal hold given at creation is applied as the object is written', async (t) => {
    const { key, versionId } = await create('held-at-birth', { lock: { legalHold: true } })
    t.equal((await s3.send(new GetObjectLegalHoldCommand({ Bucket: bucket, Key: key }))).LegalHold?.Status, 'ON')
    t.equal(await deleteVersion(key, versionId), 'AccessDenied')
    t.equal((await lock('held-at-birth', { legalHold: false })).statusCode, 200)
  })

  t.test('GOVERNANCE retention: applied, extended; a locked version cannot be deleted; shortening or weakening is a clear 4xx', async (t) => {
    const { key, versionId } = await create('retained')
    const until = inMinutes(60)
    const retained = await lock('retained', { mode: 'GOVERNANCE', retainUntil: until })
    t.equal(retained.statusCode, 200, retained.body)
    t.match(retained.json(), { locked: true, lock: { mode: 'GOVERNANCE' } })
    const retention = (await s3.send(new GetObjectRetentionCommand({ Bucket: bucket, Key: key }))).Retention
    t.equal(retention?.Mode, 'GOVERNANCE')
    t.equal(retention?.RetainUntilDate?.getTime(), Date.parse(until), 'S3 keeps the date asked for')
    t.equal(await deleteVersion(key, versionId), 'AccessDenied', 'a retained version cannot be deleted without bypass')

    for (const [what, body] of [['shortening it', { mode: 'GOVERNANCE', retainUntil: inMinutes(30) }], ['switching it to COMPLIANCE', { mode: 'COMPLIANCE', retainUntil: until }]] as const) {
      const refused = await lock('retained', body)
      t.ok(refused.statusCode === 409 || refused.statusCode === 403, `${what}: 409 or 403 (got ${refused.statusCode})`)
      t.match(refused.headers['content-type'], /^application\/problem\+json/)
      t.match(refused.json(), { rule: 'object-lock-retention-only-extends', currentLock: { mode: 'GOVERNANCE', retainUntil: until } }, `${what}: the rule and the lock in place`)
      t.match(refused.json().detail, /retention/i, `${what}: the answer names the rule: ${refused.json().detail as string}`)
    }
    const kept = (await s3.send(new GetObjectRetentionCommand({ Bucket: bucket, Key: key }))).Retention
    t.equal(kept?.RetainUntilDate?.getTime(), Date.parse(until), 'the refused requests changed nothing in S3')
    const record = await app.inject({ method: 'GET', url: codeUrl('retained', '/versions/1') })
    t.match(record.json(), { lock: { mode: 'GOVERNANCE', retainUntil: until } }, 'nor in the version record')

    const later = inMinutes(120)
    const extended = await lock('retained', { mode: 'GOVERNANCE', retainUntil: later })
    t.equal(extended.statusCode, 200, `extending is allowed: ${extended.body}`)
    t.equal((await s3.send(new GetObjectRetentionCommand({ Bucket: bucket, Key: key }))).Retention?.RetainUntilDate?.getTime(), Date.parse(later))
  })
})

t.test('a code bucket without Object Lock answers 409 and changes nothing', { skip }, async (t) => {
  const app = await build(t, { aws: await startTestAws(t), config: steady })
  t.equal((await app.inject({ method: 'POST', url: codeUrl('plain'), payload: { content: 'x = 1\n' } })).statusCode, 201)
  const refused = await app.inject({ method: 'PUT', url: codeUrl('plain', '/versions/1/lock'), payload: { legalHold: true } })
  t.equal(refused.statusCode, 409)
  t.match(refused.json().detail, /does not have S3 Object Lock enabled/)
})

t.test('the retention rule the 409 names (both tiers: no S3 involved)', async (t) => {
  const current = { mode: 'GOVERNANCE', retainUntil: inMinutes(60) }
  t.equal(retentionRuleBroken(current, { mode: 'GOVERNANCE', retainUntil: inMinutes(90) }), undefined, 'extending keeps it')
  t.equal(retentionRuleBroken(current, { mode: 'GOVERNANCE', retainUntil: current.retainUntil }), undefined, 'the same date keeps it')
  t.match(retentionRuleBroken(current, { mode: 'GOVERNANCE', retainUntil: inMinutes(30) }), /cannot move earlier/)
  t.match(retentionRuleBroken(current, { mode: 'COMPLIANCE', retainUntil: inMinutes(90) }), /cannot change from GOVERNANCE to COMPLIANCE/)
  t.equal(retentionRuleBroken({ mode: 'COMPLIANCE', retainUntil: inMinutes(-1) }, { mode: 'GOVERNANCE', retainUntil: inMinutes(5) }), undefined, 'a lapsed retention binds nothing')
  t.equal(retentionRuleBroken({}, { mode: 'GOVERNANCE', retainUntil: inMinutes(5) }), undefined, 'nor does none')
})
