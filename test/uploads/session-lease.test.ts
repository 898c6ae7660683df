// Upload session leases (issue 10): a session whose replica stops renewing reads failed/abandoned everywhere;
// create() survives an SDK retry of its own landed conditional write; begin() takes over a lapsed direct session.
import t from 'tap'
import { GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb'
import type { AwsClients } from '../../src/aws/clients.js'
import type { Config } from '../../src/config.js'
import { HttpProblem } from '../../src/errors.js'
import { SessionBusy, createUploadSessions, toSession, type UploadSession } from '../../src/uploads/sessions.js'
import { uploadSortKey, videoKey } from '../../src/table/video-item.js'
import { build, listen, startTestAws } from '../helper.js'
import { clients, mp4Bytes } from '../support/render-fixtures.js'
import { readProgressEvents } from '../support/sse.js'

const LEASE_MS = 1500
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
const leaseConfig = (leaseMs = LEASE_MS): Partial<Config> => ({ uploadLeaseMs: leaseMs } as unknown as Partial<Config>)

interface Progress { uploadId: string, status: string, failureReason?: string, lastError?: string }

/** Reads an SSE stream until it ends: the progress events, and when the stream ended. */
async function watch (url: string): Promise<{ events: Progress[], endedAt: number }> {
  const response = await fetch(url, { headers: { accept: 'text/event-stream' } })
  const events: Progress[] = []
  await readProgressEvents<Progress>(response, (event) => { events.push(event) })
  return { events, endedAt: Date.now() }
}

t.test('a proxied session whose replica stops renewing reads failed/abandoned in GET session, /progress, /status and SSE', async (t) => {
  const testAws = await startTestAws(t)
  const { app, baseUrl } = await listen(t, { aws: testAws, config: leaseConfig() })
  const sessions = app.uploadSessions
  const path = '/v1/projects/p1/videos/lease'
  const session = await sessions.create({ projectId: 'p1', videoId: 'lease', mode: 'proxied', status: 'uploading', contentType: 'video/mp4', totalBytes: 1000 })
  t.type(session.leaseUntil, 'number', 'an uploading session is created with a lease')
  t.ok((session.leaseUntil as number) - Date.now() <= LEASE_MS && (session.leaseUntil as number) > Date.now(), 'of UPLOAD_LEASE_MS from now')

  const watching = watch(`${baseUrl}${path}/progress`)
  // While the replica renews (keepAlive), the session stays uploading well past one lease.
  const stop = sessions.keepAlive(session)
  await sleep(LEASE_MS * 2)
  const alive = await (await fetch(`${baseUrl}${path}/progress`)).json() as Progress
  t.equal(alive.status, 'uploading', 'renewed: still uploading after two lease lengths')
  t.equal(alive.failureReason, undefined)

  // The replica "dies": nothing renews any more.
  stop()
  const stoppedAt = Date.now()
  const { events, endedAt } = await watching
  t.match(events.at(-1), { uploadId: session.uploadId, status: 'failed', failureReason: 'abandoned', lastError: /replica .* stopped/ }, 'the terminal SSE event says abandoned')
  t.ok(events.some((event) => event.status === 'uploading'), 'the stream had shown it uploading before')
  t.ok(endedAt - stoppedAt <= LEASE_MS + 1500, `the stream ended within about one lease of the last renewal (${endedAt - stoppedAt} ms)`)

  t.match(await (await fetch(`${baseUrl}${path}/progress`)).json(), { status: 'failed', failureReason: 'abandoned' }, '/progress JSON')
  const status = await (await fetch(`${baseUrl}${path}/status`)).json() as { video: { upload: Record<string, unknown> } }
  t.match(status.video.upload, { uploadId: session.uploadId, status: 'failed', failureReason: 'abandoned', lastError: /replica .* stopped/ }, '/status')
  const state = await (await fetch(`${baseUrl}/v1/projects/p1/videos/lease/uploads/${session.uploadId}`)).json() as Record<string, unknown>
  t.match(state, { uploadId: session.uploadId, mode: 'proxied', status: 'failed', lastError: /replica .* stopped/ }, 'GET session')

  // What is stored is untouched (reading derives the state); reconcile marks it. The replica coming back and
  // renewing would take it up again: the lease is the truth.
  const aws = clients(t, testAws)
  const { Item } = await aws.ddb.send(new GetCommand({ TableName: testAws.config.table, Key: { pk: videoKey('p1', 'lease').pk, sk: uploadSortKey(session.uploadId) } }))
  t.equal(Item?.status, 'uploading', 'stored status unchanged')
})

t.test('progress writes renew the lease; renewals by an old holder are refused once another took it', async (t) => {
  const testAws = await startTestAws(t)
  const app = await build(t, { aws: testAws, config: leaseConfig() })
  const sessions = app.uploadSessions
  const session = await sessions.create({ projectId: 'p1', videoId: 'renew', mode: 'proxied', status: 'uploading', contentType: 'video/mp4' })
  const before = session.leaseUntil as number
  await sleep(50)
  sessions.progress(session, 4096)
  const stored = async (): Promise<UploadSession | undefined> => await sessions.get('p1', 'renew', session.uploadId)
  let now: UploadSession | undefined
  for (let i = 0; i < 40; i++) { now = await stored(); if (now?.bytesUploaded === 4096) break; await sleep(25) }
  t.equal(now?.bytesUploaded, 4096)
  t.ok((now?.leaseUntil as number) > before, 'the progress write moved leaseUntil on')

  t.equal(await sessions.renew(session), true, 'the holder renews')
  const other = { ...session, leaseOwner: 'someone-else' }
  t.equal(await sessions.renew(other), false, 'a renewal by another owner is refused')
  let lost = false
  const stop = sessions.keepAlive(other, { onLost: () => { lost = true } })
  await sleep(LEASE_MS)
  stop()
  t.equal(lost, true, 'keepAlive of a lease that is not ours stops and says so')

  await sessions.finish(session, { status: 'completed', bytesUploaded: 4096 })
  t.equal(await sessions.renew(session), false, 'a finished session is not renewed')
})

t.test('direct sessions: a lapsed completion reads pending and begin() takes it over; a live one is busy with Retry-After', async (t) => {
  const testAws = await startTestAws(t)
  const app = await build(t, { aws: testAws, config: leaseConfig() })
  const sessions = app.uploadSessions
  const session = await sessions.create({ projectId: 'p1', videoId: 'direct', mode: 'direct', contentType: 'video/mp4', totalBytes: 10, attributes: { method: 'PUT', key: 'staging/x' } })
  t.equal(session.status, 'pending')
  t.equal(session.leaseUntil, undefined, 'pending sessions have no lease')

  const first = await sessions.begin(session)
  t.equal(first.takenOver, false)
  t.equal(first.session.status, 'uploading')
  t.type(first.session.leaseUntil, 'number')
  t.equal(first.session.key, 'staging/x', 'the rest of the session comes back')

  const busy = await sessions.begin(session).then(() => undefined, (error: unknown) => error)
  t.ok(busy instanceof SessionBusy, 'a second begin while the lease is live is refused')
  t.equal((busy as SessionBusy).statusCode, 409)
  t.equal((busy as SessionBusy).leaseUntil, first.session.leaseUntil, 'carrying the lease end')
  t.ok(Number((busy as SessionBusy).headers['retry-after']) >= 1, 'and a Retry-After')

  await sleep(LEASE_MS + 100)
  const lapsed = await sessions.get('p1', 'direct', session.uploadId)
  t.match(lapsed, { status: 'pending', lastError: /complete again/ }, 'a lapsed completion reads pending: complete may be called again')
  t.equal(lapsed?.failureReason, undefined)

  const second = await sessions.begin(lapsed as UploadSession)
  t.equal(second.takenOver, true, 'begin takes over a lapsed lease')
  t.not(second.session.leaseOwner, first.session.leaseOwner, 'under a new owner')
  t.equal(await sessions.renew(first.session), false, 'the old holder can no longer renew')

  await sessions.finish(second.session, { status: 'completed', renderVersion: 1 })
  const done = await sessions.begin(second.session).then(() => undefined, (error: unknown) => error)
  t.ok(done instanceof HttpProblem && !(done instanceof SessionBusy), 'a completed session cannot begin again')
  t.match((done as HttpProblem).extensions, { status: 'completed' }, 'and the conflict names its state')

  // A proxied session is never taken over: its bytes went with the replica.
  const proxied = await sessions.create({ projectId: 'p1', videoId: 'direct', mode: 'proxied', status: 'uploading', contentType: 'video/mp4' })
  await sleep(LEASE_MS + 100)
  const refused = await sessions.begin(proxied).then(() => undefined, (error: unknown) => error)
  t.match((refused as HttpProblem).extensions, { status: 'failed' })
})

t.test('toSession derives states only from what is stored', async (t) => {
  const base = { uploadId: 'u', projectId: 'p', videoId: 'v', bytesUploaded: 0, contentType: 'video/mp4', createdAt: '', updatedAt: '', retryCount: 0, expiresAtEpoch: 2_000_000_000 }
  const now = 1_000_000
  t.equal(toSession({ ...base, mode: 'proxied', status: 'uploading', leaseUntil: now + 1 }, now).status, 'uploading')
  t.match(toSession({ ...base, mode: 'proxied', status: 'uploading', leaseUntil: now - 1 }, now), { status: 'failed', failureReason: 'abandoned' })
  t.equal(toSession({ ...base, mode: 'direct', status: 'uploading', leaseUntil: now - 1 }, now).status, 'pending')
  t.equal(toSession({ ...base, mode: 'proxied', status: 'uploading' }, now).status, 'uploading', 'sessions from before leases keep their status')
  t.equal(toSession({ ...base, mode: 'proxied', status: 'completed', leaseUntil: now - 1 }, now).status, 'completed', 'a lease means nothing once terminal')
  t.equal(toSession({ ...base, mode: 'proxied', status: 'uploading', leaseUntil: now - 1, expiresAtEpoch: 1 }, now).status, 'expired', 'TTL expiry stays lazy and comes first')
})

/**
 * A fake document client over the real one: the first PutItem of an upload session lands, and then the call
 * throws what the SDK's retry of that landed conditional write gets back (ConditionalCheckFailedException), as
 * when the first answer was lost to a timeout. `item: true` adds the old item in DynamoDB's wire form, as real
 * DynamoDB returns it for ReturnValuesOnConditionCheckFailure (dynalite returns none: the code reads it back).
 */
function retriedPutDdb (real: AwsClients['ddb'], options: { item?: boolean } = {}): { ddb: AwsClients['ddb'], retried: () => number } {
  let retried = 0
  const send = real.send.bind(real) as (command: unknown) => Promise<unknown>
  const fake = {
    send: async (command: unknown) => {
      const input = (command as { input?: { Item?: Record<string, unknown> } }).input
      if (command instanceof PutCommand && String(input?.Item?.sk).startsWith('UPLOAD#') && retried === 0) {
        retried++
        await send(command)
        try {
          return await send(command)
        } catch (error) {
          if (options.item === true) {
            const wire = Object.fromEntries(Object.entries(input?.Item ?? {}).filter(([, value]) => typeof value === 'string').map(([name, value]) => [name, { S: value }]))
            throw Object.assign(error as Error, { Item: wire })
          }
          throw error
        }
      }
      return await send(command)
    }
  }
  return { ddb: fake as unknown as AwsClients['ddb'], retried: () => retried }
}

t.test('create() survives an SDK retry of its landed conditional PutItem (fake ddb), and leaves a session after an unknown outcome', async (t) => {
  const testAws = await startTestAws(t)
  const aws = clients(t, testAws)
  const config = testAws.config
  for (const item of [false, true]) {
    const fake = retriedPutDdb(aws.ddb, { item })
    const sessions = createUploadSessions({ aws: { ...aws, ddb: fake.ddb }, config })
    const session = await sessions.create({ projectId: 'p1', videoId: `retry-${String(item)}`, mode: 'proxied', status: 'uploading', contentType: 'video/mp4' })
    t.equal(fake.retried(), 1, `the retried write happened (old item ${item ? 'returned' : 'read back'})`)
    t.match(await sessions.latest('p1', `retry-${String(item)}`), { uploadId: session.uploadId, status: 'uploading' }, 'the session is ours and the video points at it')
  }

  // Somebody else's session at the same id is not ours: a conflict, not a silent success.
  const sessions = createUploadSessions({ aws, config })
  const taken = await sessions.create({ projectId: 'p1', videoId: 'dup', mode: 'direct', contentType: 'video/mp4' })
  const duplicate = await sessions.create({ projectId: 'p1', videoId: 'dup', mode: 'direct', contentType: 'video/mp4', uploadId: taken.uploadId }).then(() => undefined, (error: unknown) => error)
  t.equal((duplicate as HttpProblem).statusCode, 409)

  // The video-record update after the PutItem: an unknown outcome leaves the session; a refused one removes it.
  const failing = (error: Error) => ({
    send: async (command: unknown) => {
      if (command instanceof UpdateCommand && (command.input.Key as { sk?: string }).sk === 'VIDEO') {
        await aws.ddb.send(command)
        throw error
      }
      return await aws.ddb.send(command as never)
    }
  }) as unknown as AwsClients['ddb']
  const timeout = Object.assign(new Error('socket hang up'), { name: 'TimeoutError', $metadata: {} })
  const lost = await createUploadSessions({ aws: { ...aws, ddb: failing(timeout) }, config })
    .create({ projectId: 'p1', videoId: 'unknown', mode: 'proxied', status: 'uploading', contentType: 'video/mp4', uploadId: 'after-timeout' }).then(() => undefined, (error: unknown) => error)
  t.equal((lost as Error).name, 'TimeoutError', 'the error still reaches the caller')
  t.ok(await sessions.get('p1', 'unknown', 'after-timeout'), 'but the session is not deleted: the pointer may have landed')
  t.match(await sessions.latest('p1', 'unknown'), { uploadId: 'after-timeout' }, 'and here it did')

  const refusedError = Object.assign(new Error('bad'), { name: 'ValidationException', $fault: 'client', $metadata: { httpStatusCode: 400 } })
  await createUploadSessions({ aws: { ...aws, ddb: failing(refusedError) }, config })
    .create({ projectId: 'p1', videoId: 'refused', mode: 'proxied', status: 'uploading', contentType: 'video/mp4', uploadId: 'after-refusal' }).catch(() => {})
  t.equal(await sessions.get('p1', 'refused', 'after-refusal'), undefined, 'a definite failure removes the session')
})

t.test('a proxied upload whose session PutItem is retried by the SDK after it landed answers 201, not 500', async (t) => {
  const testAws = await startTestAws(t)
  const app = await build(t, { aws: testAws })
  const real = app.aws.ddb
  const fake = retriedPutDdb(real)
  const originalSend = real.send
  // The app's stores hold this very client: swap its send for the fake's.
  real.send = fake.ddb.send as typeof real.send
  t.teardown(() => { real.send = originalSend })
  const response = await app.inject({ method: 'POST', url: '/v1/projects/p1/videos/sdkretry/renders', headers: { 'content-type': 'video/mp4' }, payload: mp4Bytes(64 * 1024) })
  t.equal(response.statusCode, 201, response.body)
  t.equal(fake.retried(), 1, 'the session write was retried')
  const progress = await app.inject({ method: 'GET', url: '/v1/projects/p1/videos/sdkretry/progress' })
  t.match(progress.json(), { status: 'completed' })
})
