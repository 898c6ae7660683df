import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3'
import { UpdateCommand } from '@aws-sdk/lib-dynamodb'
import { createAwsClients } from '../../src/aws/clients.js'
import { directPartSize } from '../../src/uploads/direct.js'
import { uploadSortKey, videoKey } from '../../src/table/video-item.js'
import { listen, startTestAws } from '../helper.js'
import { DIRECT_TEST_CONFIG, MIB, fakeMp4, sessionApi, sha256 } from '../support/direct-session.js'

const testAws = await startTestAws(t)
const { overload } = DIRECT_TEST_CONFIG
const { app, baseUrl } = await listen(t, { aws: testAws, config: DIRECT_TEST_CONFIG })
const { api, uploads } = sessionApi(baseUrl)
const aws = createAwsClients(app.config)
t.teardown(() => aws.destroy())

/** Resolves once the wall clock is past `instant` (epoch ms): for instants S3 or the service checks against it. */
async function clockPassed (instant: number): Promise<void> {
  while (Date.now() <= instant) await new Promise((resolve) => setTimeout(resolve, Math.min(250, instant - Date.now() + 1)))
}

interface Plan { uploadId: string, method: string, url?: string, parts?: Array<{ partNumber: number, url: string, sizeBytes: number }>, partSize?: number, headers: Record<string, string>, expiresAt: string, completeBy: string }

async function open (videoId: string, request: Record<string, unknown>): Promise<Plan> {
  const created = await api('POST', uploads(videoId), request)
  if (created.status !== 201) throw new Error(`open answered ${created.status}: ${JSON.stringify(created.json)}`)
  const plan = created.json as Plan & { partCount?: number }
  if (plan.method !== 'MULTIPART') return plan
  // Part URLs are signed on demand, never at creation.
  if (plan.parts !== undefined) throw new Error('a multipart session came with part URLs')
  const numbers = Array.from({ length: plan.partCount as number }, (_, index) => index + 1)
  const signed = await api('POST', `${uploads(videoId)}/${plan.uploadId}/parts`, { partNumbers: numbers })
  if (signed.status !== 200) throw new Error(`parts answered ${signed.status}: ${JSON.stringify(signed.json)}`)
  return { ...plan, parts: signed.json.parts }
}

/** PUTs every part with plain fetch and returns what the client would report at complete. */
async function putParts (plan: Plan, bytes: Buffer): Promise<Array<{ partNumber: number, etag: string }>> {
  return await Promise.all((plan.parts ?? []).map(async (part) => {
    const start = (part.partNumber - 1) * (plan.partSize as number)
    const response = await fetch(part.url, { method: 'PUT', headers: plan.headers, body: bytes.subarray(start, start + part.sizeBytes) })
    if (response.status !== 200) throw new Error(`part ${part.partNumber} answered ${response.status}`)
    return { partNumber: part.partNumber, etag: response.headers.get('etag') as string }
  }))
}

async function keysUnder (prefix: string): Promise<string[]> {
  const { Contents = [] } = await aws.s3.send(new ListObjectsV2Command({ Bucket: app.config.videoBucket, Prefix: prefix }))
  return Contents.map((object) => object.Key as string)
}

async function nothingCommitted (t: Test, videoId: string): Promise<void> {
  t.same(await keysUnder(`videos/p1/${videoId}/`), [], 'no render object')
  t.same(await keysUnder(`staging/p1/${videoId}/`), [], 'no staged object')
  const video = await api('GET', `/v1/projects/p1/videos/${videoId}`)
  t.equal(video.json?.latestRenderVersion, null, 'no render version')
}

t.test('part size keeps every upload within 10,000 parts, in whole MiB', async (t) => {
  t.equal(directPartSize(10 * MIB, 8 * MIB), 8 * MIB)
  t.equal(directPartSize(5 * 1024 ** 4, 8 * MIB), 525 * MIB)
  t.ok(Math.ceil(5 * 1024 ** 4 / directPartSize(5 * 1024 ** 4, 8 * MIB)) <= 10_000)
  t.equal(directPartSize(100_000 * MIB + 1, 5 * MIB), 11 * MIB)
})

t.test('single PUT end to end with plain fetch: signed content type, verify, render version, idempotent complete', async (t) => {
  const bytes = fakeMp4(MIB + 17)
  const plan = await open('single', { sizeBytes: bytes.length, contentType: 'video/mp4', sha256: sha256(bytes) })
  t.equal(plan.method, 'PUT')
  t.equal(plan.parts, undefined)
  const signed = new URL(plan.url as string).searchParams.get('X-Amz-SignedHeaders')?.split(';') ?? []
  t.ok(signed.includes('content-type'), 'Content-Type is bound into the signature')
  t.ok(signed.includes('content-length'), 'Content-Length is bound into the signature')
  t.ok(signed.includes('x-amz-server-side-encryption'), 'the SSE header is signed')
  t.same(plan.headers, { 'Content-Type': 'video/mp4', 'x-amz-server-side-encryption': 'AES256' }, 'the client is told which headers to send')
  t.notOk(plan.url?.includes('x-amz-checksum'), 'no empty-body checksum in the URL')
  t.ok(Date.parse(plan.completeBy) > Date.parse(plan.expiresAt))

  const put = await fetch(plan.url as string, { method: 'PUT', headers: plan.headers, body: bytes })
  t.equal(put.status, 200)
  const pending = await api('GET', `${uploads('single')}/${plan.uploadId}`)
  t.match(pending.json, { uploadId: plan.uploadId, mode: 'direct', method: 'PUT', status: 'pending', totalBytes: bytes.length, bytesUploaded: 0 })
  t.notOk('key' in pending.json || 's3UploadId' in pending.json, 'S3 internals stay inside')

  // A bare POST without a body completes a single-PUT session.
  const completed = await fetch(`${baseUrl}${uploads('single')}/${plan.uploadId}/complete`, { method: 'POST' })
  t.equal(completed.status, 201)
  const render = await completed.json() as { version: number, sha256: string, sizeBytes: number, key: string, downloadUrl: string, status: string, uploadId: string }
  t.match(render, { version: 1, sha256: sha256(bytes), sizeBytes: bytes.length, key: `videos/p1/single/uploads/${plan.uploadId}/single.mp4`, status: 'uploaded', uploadId: plan.uploadId })
  const download = Buffer.from(await (await fetch(render.downloadUrl)).arrayBuffer())
  t.equal(sha256(download), sha256(bytes), 'the render is byte-identical')
  t.same(await keysUnder('staging/p1/single/'), [], 'the staged single PUT was copied to its upload key and is gone')
  t.same(await keysUnder('videos/p1/single/'), [render.key], 'one object: the render\'s')

  const again = await api('POST', `${uploads('single')}/${plan.uploadId}/complete`, {})
  t.equal(again.status, 200, 'completing twice answers the same render')
  t.equal(again.json.version, 1)
  const state = await api('GET', `${uploads('single')}/${plan.uploadId}`)
  t.match(state.json, { status: 'completed', renderVersion: 1, bytesUploaded: bytes.length })
  const video = await api('GET', '/v1/projects/p1/videos/single')
  t.match(video.json, { latestRenderVersion: 1, status: 'uploaded', sizeBytes: bytes.length })
  const progress = await api('GET', '/v1/projects/p1/videos/single/progress')
  t.match(progress.json, { uploadId: plan.uploadId, status: 'completed' }, 'the progress endpoint follows the direct upload')
})

t.test('multipart end to end with plain fetch: 5 MiB parts, reported in any order', async (t) => {
  const bytes = fakeMp4(11 * MIB + 123)
  const plan = await open('multi', { sizeBytes: bytes.length, contentType: 'video/mp4' })
  t.equal(plan.method, 'MULTIPART')
  t.equal(plan.partSize, 5 * MIB)
  t.same(plan.headers, {}, 'parts take no extra headers')
  t.same(plan.parts?.map((part) => [part.partNumber, part.sizeBytes]), [[1, 5 * MIB], [2, 5 * MIB], [3, MIB + 123]])
  t.ok(plan.parts?.every((part) => new URL(part.url).searchParams.get('X-Amz-SignedHeaders')?.includes('content-length')), 'each part length is signed')
  const parts = await putParts(plan, bytes)
  const completed = await api('POST', `${uploads('multi')}/${plan.uploadId}/complete`, { parts: [...parts].reverse() })
  t.equal(completed.status, 201)
  t.match(completed.json, { version: 1, sizeBytes: bytes.length, sha256: sha256(bytes) })
  t.equal(completed.json.key, `videos/p1/multi/uploads/${plan.uploadId}/multi.mp4`, 'assembled at its upload key')
  t.same(await keysUnder('videos/p1/multi/'), [completed.json.key], 'no copy: one object')
  t.same(await keysUnder('staging/p1/multi/'), [])
  const { Body } = await aws.s3.send(new GetObjectCommand({ Bucket: app.config.videoBucket, Key: completed.json.key }))
  t.equal(sha256(Buffer.from(await (Body as { transformToByteArray: () => Promise<Uint8Array> }).transformToByteArray())), sha256(bytes))
  t.match((await api('GET', `${uploads('multi')}/${plan.uploadId}`)).json, { status: 'completed', partCount: 3, partSize: 5 * MIB })
})

t.test('forged complete calls are 4xx and commit nothing', async (t) => {
  const bytes = fakeMp4(6 * MIB + 5)
  const plan = await open('forged', { sizeBytes: bytes.length, contentType: 'video/mp4' })
  const parts = await putParts(plan, bytes)
  const complete = async (body: unknown): Promise<number> => (await api('POST', `${uploads('forged')}/${plan.uploadId}/complete`, body)).status
  t.equal(await complete({}), 400, 'no parts')
  t.equal(await complete({ parts: [parts[0]] }), 400, 'a missing part')
  t.equal(await complete({ parts: [parts[0], parts[0], parts[1]] }), 400, 'a duplicated part')
  t.equal(await complete({ parts: [...parts, { partNumber: 3, etag: '"abc"' }] }), 400, 'a part that does not exist')
  t.equal(await complete({ parts: [{ partNumber: 1, etag: 'x' }, { partNumber: 'two', etag: 'y' }] }), 400, 'a malformed report')
  t.match((await api('GET', `${uploads('forged')}/${plan.uploadId}`)).json, { status: 'pending' }, 'a report refused before S3 keeps the session open')
  await nothingCommitted(t, 'forged')

  const forged = await api('POST', `${uploads('forged')}/${plan.uploadId}/complete`, { parts: [parts[0], { partNumber: 2, etag: `"${'0'.repeat(32)}"` }] })
  t.equal(forged.status, 400, 'a forged ETag')
  t.match(forged.json.detail, /part.* 2/)
  await nothingCommitted(t, 'forged')
  // The ETags S3 holds are checked before S3 assembles anything: a wrong report leaves the bytes and the session as they were.
  t.match((await api('GET', `${uploads('forged')}/${plan.uploadId}`)).json, { status: 'pending' }, 'a forged ETag is refused before S3 is asked')
  t.equal((await api('POST', `${uploads('forged')}/${plan.uploadId}/complete`, { parts })).status, 201, 'the true report then completes')
})

t.test('the parts of another upload do not complete this one', async (t) => {
  const first = fakeMp4(6 * MIB)
  const second = fakeMp4(6 * MIB)
  const planA = await open('mixed', { sizeBytes: first.length, contentType: 'video/mp4' })
  const planB = await open('mixed', { sizeBytes: second.length, contentType: 'video/mp4' })
  await putParts(planA, first)
  const partsB = await putParts(planB, second)
  const mixed = await api('POST', `${uploads('mixed')}/${planA.uploadId}/complete`, { parts: partsB })
  t.equal(mixed.status, 400)
  await nothingCommitted(t, 'mixed')
  const own = await api('POST', `${uploads('mixed')}/${planB.uploadId}/complete`, { parts: partsB })
  t.equal(own.status, 201, 'the other upload completes with its own parts')
  t.equal(own.json.sha256, sha256(second))
})

// An object that is not what was declared (size, content type, SHA-256, not a video): test/uploads/direct-verification.test.ts,
// which runs on both tiers and says which side refuses what (real S3 at the signature, s3rver never).

t.test('complete before anything was uploaded is 400 and the session stays open', async (t) => {
  const bytes = fakeMp4(2048)
  const plan = await open('early', { sizeBytes: bytes.length, contentType: 'video/webm; codecs=vp9' })
  t.equal(plan.headers['Content-Type'], 'video/webm')
  t.equal((await api('POST', `${uploads('early')}/${plan.uploadId}/complete`, {})).status, 400)
  t.equal((await api('POST', `${uploads('early')}/${plan.uploadId}/complete`, { parts: [{ partNumber: 1, etag: 'x' }] })).status, 400, 'parts on a single-PUT session')
  const webm = Buffer.concat([Buffer.from([0x1a, 0x45, 0xdf, 0xa3]), Buffer.from('....webm'), randomBytes(2036)])
  await fetch(plan.url as string, { method: 'PUT', headers: plan.headers, body: webm })
  const completed = await api('POST', `${uploads('early')}/${plan.uploadId}/complete`, {})
  t.equal(completed.status, 201)
  t.match(completed.json, { key: `videos/p1/early/uploads/${plan.uploadId}/early.webm`, contentType: 'video/webm' })
})

t.test('opening a session: 413 over the maximum, 415 for what is not a video, 400 for bad input, before any storage call', async (t) => {
  t.equal((await api('POST', uploads('bad'), { sizeBytes: 64 * MIB + 1, contentType: 'video/mp4' })).status, 413)
  t.equal((await api('POST', uploads('bad'), { sizeBytes: 10, contentType: 'text/plain' })).status, 415)
  t.equal((await api('POST', uploads('bad'), { sizeBytes: 10, contentType: 'video/ogg' })).status, 415)
  t.equal((await api('POST', uploads('bad'), { sizeBytes: 0, contentType: 'video/mp4' })).status, 400)
  t.equal((await api('POST', uploads('bad'), { contentType: 'video/mp4' })).status, 400)
  t.equal((await api('POST', uploads('bad'), { sizeBytes: 10, contentType: 'video/mp4', sha256: 'abc' })).status, 400)
  t.equal((await api('POST', uploads('bad'), { sizeBytes: 10, contentType: 'video/mp4', extra: 1 })).status, 400)
  t.equal((await api('POST', '/v1/projects/p1/videos/bad.id/uploads', { sizeBytes: 10, contentType: 'video/mp4' })).status, 400)
  t.equal((await api('GET', '/v1/projects/p1/videos/bad')).status, 404, 'no video record was made')
  t.equal((await api('GET', `${uploads('bad')}/not-a-uuid`)).status, 400)
  t.equal((await api('GET', `${uploads('bad')}/00000000-0000-4000-8000-000000000000`)).status, 404)
  t.equal((await api('POST', `${uploads('bad')}/00000000-0000-4000-8000-000000000000/complete`, {})).status, 404)
  t.equal((await api('DELETE', `${uploads('bad')}/00000000-0000-4000-8000-000000000000`)).status, 404)
})

t.test('abort leaves nothing visible, single PUT and multipart', async (t) => {
  const bytes = fakeMp4(6 * MIB)
  const multi = await open('abort', { sizeBytes: bytes.length, contentType: 'video/mp4' })
  await fetch(multi.parts?.[0].url as string, { method: 'PUT', body: bytes.subarray(0, 5 * MIB) })
  const single = await open('abort', { sizeBytes: 1024, contentType: 'video/mp4' })
  await fetch(single.url as string, { method: 'PUT', headers: single.headers, body: bytes.subarray(0, 1024) })
  t.equal((await keysUnder('staging/p1/abort/')).length, 1, 'the single PUT object is staged')
  for (const plan of [multi, single]) {
    t.equal((await api('DELETE', `${uploads('abort')}/${plan.uploadId}`)).status, 204)
    t.match((await api('GET', `${uploads('abort')}/${plan.uploadId}`)).json, { status: 'aborted' })
    t.equal((await api('DELETE', `${uploads('abort')}/${plan.uploadId}`)).status, 204, 'aborting again is fine')
    t.equal((await api('POST', `${uploads('abort')}/${plan.uploadId}/complete`, {})).status, 409, 'an aborted session cannot complete')
  }
  await nothingCommitted(t, 'abort')
  const done = await open('abort', { sizeBytes: 1024, contentType: 'video/mp4' })
  await fetch(done.url as string, { method: 'PUT', headers: done.headers, body: bytes.subarray(0, 1024) })
  t.equal((await api('POST', `${uploads('abort')}/${done.uploadId}/complete`, {})).status, 201)
  t.equal((await api('DELETE', `${uploads('abort')}/${done.uploadId}`)).status, 409, 'a completed upload cannot be aborted')
})

t.test('deleting the video removes its open direct uploads too', async (t) => {
  const plan = await open('gone', { sizeBytes: 1024, contentType: 'video/mp4' })
  await fetch(plan.url as string, { method: 'PUT', headers: plan.headers, body: fakeMp4(1024) })
  t.equal((await api('DELETE', '/v1/projects/p1/videos/gone')).status, 204)
  t.same(await keysUnder('staging/p1/gone/'), [])
  t.equal((await api('GET', `${uploads('gone')}/${plan.uploadId}`)).status, 404)
})

t.test('an expired URL is refused and an expired session answers 410 and reads expired', async (t) => {
  const short = await listen(t, { aws: testAws, config: { presignExpiresSeconds: 1, overload } })
  const bytes = fakeMp4(1024)
  const created = await fetch(`${short.baseUrl}${uploads('late')}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sizeBytes: bytes.length, contentType: 'video/mp4' }) })
  const plan = await created.json() as Plan
  // The events are instants the answer names: the URL's expiresAt (S3 signs whole seconds, hence the margin), then
  // the session's completeBy. Both clocks are real ones (S3's and the service's), so the test waits for them.
  await clockPassed(Date.parse(plan.expiresAt) + 1100)
  const put = await fetch(plan.url as string, { method: 'PUT', headers: plan.headers, body: bytes })
  t.equal(put.status, 403, 'S3 refuses the expired URL')
  await clockPassed(Date.parse(plan.completeBy) + 100)
  const completed = await fetch(`${short.baseUrl}${uploads('late')}/${plan.uploadId}/complete`, { method: 'POST' })
  t.equal(completed.status, 410)
  t.match(await completed.json(), { status: 410, title: 'Gone' })
  const state = await (await fetch(`${short.baseUrl}${uploads('late')}/${plan.uploadId}`)).json() as { status: string }
  t.equal(state.status, 'expired')
  await nothingCommitted(t, 'late')
})

t.test('two completes at once: one creates the render, the other answers the same render or 202 while it is being made', async (t) => {
  const bytes = fakeMp4(2048)
  const plan = await open('twice', { sizeBytes: bytes.length, contentType: 'video/mp4' })
  await fetch(plan.url as string, { method: 'PUT', headers: plan.headers, body: bytes })
  const session = `${uploads('twice')}/${plan.uploadId}`
  const results = await Promise.all([0, 1].map(async () => await api('POST', `${session}/complete`, {})))
  const statuses = results.map((result) => result.status).sort()
  t.ok(statuses[0] === 200 ? statuses[1] === 201 : statuses[0] === 201 && statuses[1] === 202, `statuses ${statuses.join(', ')}`)
  const created = results.find((result) => result.status === 201)
  t.equal(created?.json.version, 1)
  const other = results.find((result) => result.status !== 201)
  if (other?.status === 202) {
    t.equal(other.headers.get('location'), session, 'the 202 points at the session')
    t.match(other.json, { uploadId: plan.uploadId, status: 'uploading' })
  } else {
    t.equal(other?.json.version, 1, 'the same render')
  }
  t.match((await api('GET', session)).json, { status: 'completed', renderVersion: 1 })
  const again = await api('POST', `${session}/complete`, {})
  t.equal(again.status, 200)
  t.equal(again.json.version, 1)
  const video = await api('GET', '/v1/projects/p1/videos/twice')
  t.equal(video.json.latestRenderVersion, 1, 'exactly one render version')
  const renders = await api('GET', '/v1/projects/p1/videos/twice/renders')
  t.same(renders.json.items.map((item: { version: number }) => item.version), [1])
})

t.test('a complete that takes longer than COMPLETE_WAIT_MS answers 202 with the session as Location; it goes on, then complete answers 200 with the render', async (t) => {
  const quick = await listen(t, { aws: testAws, config: { completeWaitMs: 0, directMultipartThreshold: 6 * MIB, partSize: 5 * MIB, maxVideoBytes: 64 * MIB, overload } })
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number, json: any, headers: Headers }> => {
    const response = await fetch(`${quick.baseUrl}${path}`, { method, headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers }, body: body === undefined ? undefined : JSON.stringify(body) })
    const text = await response.text()
    return { status: response.status, json: text === '' ? undefined : JSON.parse(text), headers: response.headers }
  }
  const pollCompleted = async (session: string): Promise<any> => {
    for (const deadline = Date.now() + 60_000; ;) {
      const state = await call('GET', session)
      if (state.json.status !== 'uploading' || Date.now() > deadline) return state.json
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  const cases = [
    { name: 'single PUT', videoId: 'slow-single', bytes: fakeMp4(4096) },
    { name: 'multipart', videoId: 'slow-multi', bytes: fakeMp4(6 * MIB + 9) }
  ]
  for (const [index, { name, videoId, bytes }] of cases.entries()) {
    const plan = await open(videoId, { sizeBytes: bytes.length, contentType: 'video/mp4', sha256: sha256(bytes) })
    const parts = plan.method === 'MULTIPART' ? await putParts(plan, bytes) : undefined
    if (parts === undefined) await fetch(plan.url as string, { method: 'PUT', headers: plan.headers, body: bytes })
    const session = `${uploads(videoId)}/${plan.uploadId}`
    const body = parts === undefined ? {} : { parts }
    const key = `complete-slow-${index}`

    const accepted = await call('POST', `${session}/complete`, body, { 'idempotency-key': key })
    t.equal(accepted.status, 202, `${name}: 202 while it is still verifying`)
    t.equal(accepted.headers.get('location'), session, `${name}: Location is the session`)
    t.ok(Number(accepted.headers.get('retry-after')) > 0, `${name}: with Retry-After`)
    t.match(accepted.json, { uploadId: plan.uploadId, status: 'uploading', mode: 'direct' }, `${name}: the body is the upload state`)

    const done = await pollCompleted(session)
    t.match(done, { status: 'completed', renderVersion: 1, bytesUploaded: bytes.length, sha256: sha256(bytes) }, `${name}: the work went on and completed`)
    const render = await call('GET', `/v1/projects/p1/videos/${videoId}/renders/1`)
    t.match(render.json, { version: 1, uploadId: plan.uploadId, sha256: sha256(bytes), key: `videos/p1/${videoId}/uploads/${plan.uploadId}/${videoId}.mp4` })

    const again = await call('POST', `${session}/complete`, body)
    t.equal(again.status, 200, `${name}: complete again answers 200`)
    t.match(again.json, { version: 1, uploadId: plan.uploadId, key: render.json.key, sha256: sha256(bytes) }, `${name}: with the same render`)
    const repeated = await call('POST', `${session}/complete`, body, { 'idempotency-key': key })
    t.equal(repeated.status, 200, `${name}: the 202 was not recorded: a repeat with its key reports the render`)
    t.equal(repeated.json.version, 1)
    t.same((await call('GET', `/v1/projects/p1/videos/${videoId}/renders`)).json.items.map((item: { version: number }) => item.version), [1], `${name}: one render version`)
    t.same(await keysUnder(`videos/p1/${videoId}/`), [render.json.key], `${name}: one object`)
    t.same(await keysUnder(`staging/p1/${videoId}/`), [], `${name}: nothing staged`)
  }
})

t.test('a completion that committed but could not record it: past expiry complete answers its render and abort refuses; the object stays', async (t) => {
  const bytes = fakeMp4(6 * MIB + 3)
  const plan = await open('unrecorded', { sizeBytes: bytes.length, contentType: 'video/mp4' })
  const parts = await putParts(plan, bytes)
  const session = `${uploads('unrecorded')}/${plan.uploadId}`
  const completed = await api('POST', `${session}/complete`, { parts })
  t.equal(completed.status, 201)
  const key = completed.json.key as string
  // What a replica that died after the commit (or whose session update failed) leaves: the session still open.
  const reopen = async (expiresAtEpoch: number): Promise<void> => {
    await aws.ddb.send(new UpdateCommand({
      TableName: app.config.table,
      Key: { pk: videoKey('p1', 'unrecorded').pk, sk: uploadSortKey(plan.uploadId) },
      UpdateExpression: 'SET #status = :pending, expiresAtEpoch = :expires, leaseUntil = :lapsed REMOVE renderVersion',
      ExpressionAttributeNames: { '#status': 'status' },
      ExpressionAttributeValues: { ':pending': 'pending', ':expires': expiresAtEpoch, ':lapsed': 0 }
    }))
  }

  await reopen(Math.floor(Date.now() / 1000) + 600)
  const abort = await api('DELETE', session)
  t.equal(abort.status, 409, 'abort refuses: the upload is a render')
  t.same(await keysUnder('videos/p1/unrecorded/'), [key], 'the render\'s object is not discarded by abort')
  t.match((await api('GET', session)).json, { status: 'completed', renderVersion: 1 }, 'the session is brought up to date')

  await reopen(1)
  t.equal((await api('GET', session)).json.status, 'expired', 'the session reads expired')
  const late = await api('POST', `${session}/complete`, { parts })
  t.equal(late.status, 200, 'complete finds its own commit instead of answering 410')
  t.match(late.json, { version: 1, key, sha256: sha256(bytes) })
  t.same(await keysUnder('videos/p1/unrecorded/'), [key], 'the render\'s object is not discarded as an expired upload')
  t.match((await api('GET', session)).json, { status: 'completed', renderVersion: 1 })
  const { Body } = await aws.s3.send(new GetObjectCommand({ Bucket: app.config.videoBucket, Key: key }))
  t.equal(sha256(Buffer.from(await (Body as { transformToByteArray: () => Promise<Uint8Array> }).transformToByteArray())), sha256(bytes), 'the render still downloads')
})

// Last in the file: it stops and restarts the shared local S3.
t.test('S3 down during complete: 503 with Retry-After, nothing committed, and the session completes once S3 is back', async (t) => {
  const bytes = fakeMp4(2048)
  const plan = await open('fault', { sizeBytes: bytes.length, contentType: 'video/mp4' })
  await fetch(plan.url as string, { method: 'PUT', headers: plan.headers, body: bytes })
  await testAws.embedded.s3.stop()
  const failed = await fetch(`${baseUrl}${uploads('fault')}/${plan.uploadId}/complete`, { method: 'POST' })
  t.equal(failed.status, 503)
  t.ok(failed.headers.get('retry-after'))
  const state = await api('GET', `${uploads('fault')}/${plan.uploadId}`)
  t.match(state.json, { status: 'pending', retryCount: 1 }, 'the session stays open')
  t.equal((await api('GET', '/v1/projects/p1/videos/fault')).json.latestRenderVersion, null)
  await testAws.embedded.s3.restart()
  const completed = await api('POST', `${uploads('fault')}/${plan.uploadId}/complete`, {})
  t.equal(completed.status, 201)
  t.equal(completed.json.sha256, sha256(bytes))
})

t.test('multipart sessions: no URLs at creation, parts signed on demand (validated), stored parts listed, session lives until completeBy', async (t) => {
  const bytes = fakeMp4(11 * MIB + 7)
  const created = await api('POST', uploads('on-demand'), { sizeBytes: bytes.length, contentType: 'video/mp4' })
  t.equal(created.status, 201)
  t.equal(created.json.method, 'MULTIPART')
  t.equal(created.json.parts, undefined, 'no part URLs up front')
  t.equal(created.json.partCount, 3)
  const ttl = app.config.directSessionTtlSeconds
  t.ok(Math.abs(Date.parse(created.json.completeBy) - (Date.now() + ttl * 1000)) < 60_000, 'completeBy is DIRECT_SESSION_TTL_SECONDS away')
  t.ok(Date.parse(created.json.expiresAt) <= Date.parse(created.json.completeBy), 'a URL never outlives the session')
  const session = `${uploads('on-demand')}/${created.json.uploadId}`

  for (const [body, why] of [[{ partNumbers: [] }, 'none'], [{ partNumbers: Array.from({ length: 101 }, (_, i) => i + 1) }, '101'], [{ partNumbers: [1, 1] }, 'a duplicate'],
    [{ partNumbers: [4] }, 'past partCount'], [{ partNumbers: [0] }, 'zero'], [{ partNumbers: ['1'] }, 'a string'], [{}, 'no body field'], [{ partNumbers: [1], extra: true }, 'an extra field']] as const) {
    const answer = await api('POST', `${session}/parts`, body)
    t.equal(answer.status, 400, `partNumbers ${why}: 400`)
    t.match(answer.headers.get('content-type'), /application\/problem\+json/)
  }
  t.equal((await api('POST', `${uploads('on-demand')}/00000000-0000-4000-8000-000000000000/parts`, { partNumbers: [1] })).status, 404)
  const single = await open('on-demand', { sizeBytes: 1000, contentType: 'video/mp4' })
  t.equal((await api('POST', `${uploads('on-demand')}/${single.uploadId}/parts`, { partNumbers: [1] })).status, 409, 'a single-PUT session has no parts')

  const signed = await api('POST', `${session}/parts`, { partNumbers: [3, 1] })
  t.equal(signed.status, 200)
  t.same(signed.json.parts.map((part: { partNumber: number, sizeBytes: number }) => [part.partNumber, part.sizeBytes]), [[3, MIB + 7], [1, 5 * MIB]])
  for (const part of signed.json.parts) {
    t.same(part.headers, {})
    t.ok(Date.parse(part.expiresAt) <= Date.parse(created.json.completeBy))
    t.equal(new URL(part.url).searchParams.get('partNumber'), String(part.partNumber))
  }
  const before = await api('GET', session)
  t.same(before.json.parts, [], 'nothing stored yet')
  t.ok(['ListParts', 'embedded-store'].includes(before.json.partsSource), `listed by ${before.json.partsSource}`)

  const etags: Record<number, string> = {}
  for (const part of signed.json.parts) {
    const start = (part.partNumber - 1) * 5 * MIB
    const put = await fetch(part.url, { method: 'PUT', body: bytes.subarray(start, start + part.sizeBytes) })
    t.equal(put.status, 200, `part ${part.partNumber} stored through its on-demand URL`)
    etags[part.partNumber] = put.headers.get('etag') as string
  }
  const listed = await api('GET', session)
  t.same(listed.json.parts.map((part: { partNumber: number, size: number }) => [part.partNumber, part.size]), [[1, 5 * MIB], [3, MIB + 7]], 'parts 1 and 3 listed with their sizes')
  t.same(listed.json.parts.map((part: { etag: string }) => part.etag.replaceAll('"', '')), [etags[1], etags[3]].map((etag) => etag.replaceAll('"', '')), 'with the ETags S3 answered')

  // Complete naming a part never PUT: 409 naming it, the session stays pending, and the embedded S3 is not asked (it crashed on that).
  const pid = testAws.embedded.s3.pid
  const early = await api('POST', `${session}/complete`, { parts: [1, 2, 3].map((partNumber) => ({ partNumber, etag: etags[partNumber] ?? `"${'1'.repeat(32)}"` })) })
  t.equal(early.status, 409)
  t.match(early.headers.get('content-type'), /application\/problem\+json/)
  t.same(early.json.missingParts, [2])
  t.match(early.json.detail, /never uploaded.*\b2\b/)
  t.match((await api('GET', session)).json, { status: 'pending' })
  t.equal(testAws.embedded.s3.pid, pid, 'the embedded S3 did not crash')

  const two = await api('POST', `${session}/parts`, { partNumbers: [2] })
  const put = await fetch(two.json.parts[0].url, { method: 'PUT', body: bytes.subarray(5 * MIB, 10 * MIB) })
  etags[2] = put.headers.get('etag') as string
  const done = await api('POST', `${session}/complete`, { parts: [1, 2, 3].map((partNumber) => ({ partNumber, etag: etags[partNumber] })), sha256: sha256(bytes) })
  t.equal(done.status, 201)
  t.equal(done.json.sha256, sha256(bytes))
  t.equal((await api('POST', `${session}/parts`, { partNumbers: [1] })).status, 409, 'no part URLs for a completed session')
})

t.test('a SHA-256 given at complete is checked: a wrong one fails the object', async (t) => {
  const bytes = fakeMp4(6 * MIB)
  const plan = await open('sha-at-complete', { sizeBytes: bytes.length, contentType: 'video/mp4' })
  const parts = await putParts(plan, bytes)
  const wrong = await api('POST', `${uploads('sha-at-complete')}/${plan.uploadId}/complete`, { parts, sha256: 'b'.repeat(64) })
  t.equal(wrong.status, 400)
  await nothingCommitted(t, 'sha-at-complete')
  const mismatch = await open('sha-at-complete', { sizeBytes: 1000, contentType: 'video/mp4', sha256: 'c'.repeat(64) })
  t.equal((await api('POST', `${uploads('sha-at-complete')}/${mismatch.uploadId}/complete`, { sha256: 'd'.repeat(64) })).status, 400, 'differs from the one given at creation')
})

t.test('declared video/webm holding MP4 bytes: the sniffed container wins (stored as .mp4, video/mp4), single PUT and multipart', async (t) => {
  for (const size of [MIB, 6 * MIB + 3]) {
    const bytes = fakeMp4(size)
    const plan = await open('declared-webm', { sizeBytes: bytes.length, contentType: 'video/webm' })
    let body = {}
    if (plan.method === 'MULTIPART') body = { parts: await putParts(plan, bytes) }
    else await fetch(plan.url as string, { method: 'PUT', headers: plan.headers, body: bytes })
    const done = await api('POST', `${uploads('declared-webm')}/${plan.uploadId}/complete`, body)
    t.equal(done.status, 201, `${plan.method} completes`)
    t.equal(done.json.contentType, 'video/mp4', `${plan.method}: stored as video/mp4`)
    const record = await api('GET', `/v1/projects/p1/videos/declared-webm/renders/${done.json.version}`)
    t.match(record.json.s3Path ?? record.json.key, /\.mp4$/, `${plan.method}: the key ends in .mp4`)
    const keys = await keysUnder(`videos/p1/declared-webm/uploads/${plan.uploadId}/`)
    t.same(keys.map((key) => key.split('.').pop()), ['mp4'], `${plan.method}: no .webm object left`)
  }
})
