// Faults at the moment a render version is committed: the one conditional PutItem of its `RENDER#` item. The local
// DynamoDB cannot fail or delay one chosen request, so these tests wrap the document client's send: fakes, named
// as such.
import t from 'tap'
import { PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb'
import { ListObjectsV2Command } from '@aws-sdk/client-s3'
import { createAwsClients, type AwsClients } from '../../src/aws/clients.js'
import { buildServer } from '../../src/app.js'
import type { Config } from '../../src/config.js'
import { startTestAws, type TestAws } from '../helper.js'
import { mp4Bytes, tableItems } from '../support/render-fixtures.js'

const base = '/v1/projects/p1/videos/v1/renders'
/** The commit itself: the conditional PutItem of a render version's item. */
const isRenderCommit = (command: unknown): boolean =>
  command instanceof PutCommand && String(command.input.Item?.sk).startsWith('RENDER#') &&
  String(command.input.ConditionExpression).includes('attribute_not_exists(sk)')
const networkError = (): Error => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })

async function faultyApp (t: Parameters<typeof startTestAws>[0], wrap: (send: (command: unknown) => Promise<unknown>) => (command: unknown) => Promise<unknown>, config: Partial<Config> = {}): Promise<{ app: Awaited<ReturnType<typeof buildServer>>, clients: AwsClients, testAws: TestAws }> {
  const testAws = await startTestAws(t)
  const clients = createAwsClients(testAws.config)
  const send = clients.ddb.send.bind(clients.ddb) as (command: unknown) => Promise<unknown>
  clients.ddb.send = wrap(send) as typeof clients.ddb.send
  const app = await buildServer({ config: { ...testAws.config, ...config }, aws: clients })
  t.teardown(async () => { await app.close() })
  return { app, clients, testAws }
}

async function videoObjects (clients: AwsClients, testAws: TestAws): Promise<string[]> {
  const objects = await clients.s3.send(new ListObjectsV2Command({ Bucket: testAws.config.videoBucket }))
  return (objects.Contents ?? []).map((object) => object.Key as string)
}

async function renderItems (clients: AwsClients, testAws: TestAws): Promise<Array<Record<string, unknown>>> {
  return (await tableItems(clients, testAws.config.table)).filter((item) => String(item.sk).startsWith('RENDER#'))
}

t.test('fake DynamoDB fault: a render commit that lands but whose answer is lost is recognised by its token, not written twice', async (t) => {
  let lost = 0
  const { app, clients, testAws } = await faultyApp(t, (send) => async (command) => {
    const result = await send(command)
    if (isRenderCommit(command) && lost++ === 0) throw networkError()
    return result
  })
  const video = mp4Bytes(64 * 1024)
  const uploaded = await app.inject({ method: 'POST', url: base, headers: { 'content-type': 'video/mp4' }, payload: video })
  t.equal(uploaded.statusCode, 201, 'the client is told what happened: the version exists')
  t.equal(uploaded.json().version, 1)
  t.equal(lost, 1, 'the commit was not written a second time')
  const render = await app.inject({ method: 'GET', url: `${base}/1` })
  t.equal(render.statusCode, 200, 'the version is readable')
  t.equal(render.json().sizeBytes, video.length)
  const items = await renderItems(clients, testAws)
  t.same(items.map((item) => item.sk), ['RENDER#000000001'], 'one version item, no version 2')
  t.same(await videoObjects(clients, testAws), [uploaded.json().key], 'its object is there, and only it')
  t.match(uploaded.json().key, /^videos\/p1\/v1\/uploads\/[0-9a-f-]{36}\/v1\.mp4$/, 'stored under a key unique to the upload')
})

t.test('fake DynamoDB fault: a render commit that fails definitely leaves no item, deletes its object and takes no number', async (t) => {
  let refuse = true
  const { app, clients, testAws } = await faultyApp(t, (send) => async (command) => {
    if (isRenderCommit(command) && refuse) {
      throw Object.assign(new Error('User is not authorized to perform: dynamodb:PutItem'), { name: 'AccessDeniedException', $fault: 'client', $metadata: { httpStatusCode: 400 } })
    }
    return await send(command)
  })
  const failed = await app.inject({ method: 'POST', url: base, headers: { 'content-type': 'video/mp4', 'idempotency-key': 'definite-1' }, payload: mp4Bytes(64 * 1024) })
  t.equal(failed.statusCode, 500, 'a refusal retrying cannot cure is not a 503')
  t.equal(failed.headers['retry-after'], undefined)
  t.same(await renderItems(clients, testAws), [], 'no version item')
  t.same(await videoObjects(clients, testAws), [], 'the upload\'s object is deleted')
  t.equal((await app.inject({ method: 'GET', url: `${base}/1` })).statusCode, 404)
  const progress = await app.inject({ method: 'GET', url: '/v1/projects/p1/videos/v1/progress' })
  t.match(progress.json(), { status: 'failed' }, 'the session says it failed')

  refuse = false
  const next = await app.inject({ method: 'POST', url: base, headers: { 'content-type': 'video/mp4' }, payload: mp4Bytes(32 * 1024) })
  t.equal(next.statusCode, 201)
  t.equal(next.json().version, 1, 'the number was never taken')
  t.same(await videoObjects(clients, testAws), [next.json().key])
})

t.test('fake DynamoDB fault: an unknown commit outcome keeps the object, and a repeat with the same Idempotency-Key gets the version', async (t) => {
  let blackout = false
  let commits = 0
  const { app, clients, testAws } = await faultyApp(t, (send) => async (command) => {
    // Every read that could tell the writer whether its commit landed fails while the blackout lasts.
    if (blackout && command instanceof QueryCommand) throw networkError()
    if (isRenderCommit(command)) {
      commits++
      await send(command)
      // It landed, but the answer is lost and DynamoDB stays unreachable past the commit deadline.
      blackout = true
      throw networkError()
    }
    return await send(command)
  }, { commitDeadlineMs: 300 })
  const video = mp4Bytes(64 * 1024)
  const headers = { 'content-type': 'video/mp4', 'idempotency-key': 'unknown-1' }
  const first = await app.inject({ method: 'POST', url: base, headers, payload: video })
  t.equal(first.statusCode, 503, 'the outcome is unknown: 503')
  t.ok(Number(first.headers['retry-after']) > 0, 'with Retry-After')
  t.match(first.json().detail, /Idempotency-Key/, 'the answer says how to learn the outcome')
  blackout = false

  const items = await renderItems(clients, testAws)
  t.equal(items.length, 1, 'the commit did land')
  const kept = await videoObjects(clients, testAws)
  t.same(kept, [items[0].key], 'the object its item names is kept')

  const repeat = await app.inject({ method: 'POST', url: base, headers, payload: video })
  t.equal(repeat.statusCode, 201, 'the repeat learns the outcome')
  t.match(repeat.json(), { version: 1, key: items[0].key, sizeBytes: video.length })
  t.equal(repeat.headers['idempotent-replayed'], undefined, 'it ran again (the 503 was not recorded) and found its own commit')
  t.equal(commits, 1, 'the repeat did not commit again')
  t.same(await videoObjects(clients, testAws), kept, 'nor store the bytes again')
  t.equal((await renderItems(clients, testAws)).length, 1, 'one version')

  const replay = await app.inject({ method: 'POST', url: base, headers, payload: video })
  t.equal(replay.statusCode, 201)
  t.equal(replay.headers['idempotent-replayed'], 'true', 'a further repeat is a replay of the recorded answer')
  t.equal(replay.json().version, 1)
})

t.test('fake DynamoDB delay: a render version is not readable before its commit', async (t) => {
  let releaseCommit: () => void = () => {}
  let commitReached: () => void = () => {}
  const reached = new Promise<void>((resolve) => { commitReached = resolve })
  const { app } = await faultyApp(t, (send) => async (command) => {
    if (isRenderCommit(command)) {
      commitReached()
      await new Promise<void>((resolve) => { releaseCommit = resolve })
    }
    return await send(command)
  })
  const upload = app.inject({ method: 'POST', url: base, headers: { 'content-type': 'video/mp4' }, payload: mp4Bytes(64 * 1024) })
  await reached
  t.equal((await app.inject({ method: 'GET', url: `${base}/1` })).statusCode, 404, 'nothing is visible before the commit')
  t.equal((await app.inject({ method: 'GET', url: `${base}/latest` })).statusCode, 404, 'no latest either')
  t.same((await app.inject({ method: 'GET', url: base })).json().items, [], 'nor listed')
  releaseCommit()
  t.equal((await upload).statusCode, 201)
  t.equal((await app.inject({ method: 'GET', url: `${base}/1` })).statusCode, 200, 'visible once committed')
})
