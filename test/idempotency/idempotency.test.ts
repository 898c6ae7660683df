// Idempotency-Key records against the real emulators: the paths a repeat takes after the first attempt failed,
// died or expired (replays, 409/422/400 and the proxy cases are in exactly-once-proxy-writes.test.ts).
import t from 'tap'
import { GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb'
import { createAwsClients } from '../../src/aws/clients.js'
import { buildServer } from '../../src/app.js'
import { scopeOf } from '../../src/idempotency/store.js'
import { build, startTestAws } from '../helper.js'
import { codeUrl, steady, storedFor } from '../support/code.js'
import { mp4Bytes } from '../support/render-fixtures.js'

const versionItems = (items: Array<Record<string, unknown>>, kind: 'CODE' | 'RENDER'): Array<Record<string, unknown>> =>
  items.filter((item) => String(item.sk).startsWith(`${kind}#`))

t.test('fake DynamoDB fault (no local server can make one): a version PutItem that lands but whose answer is lost, with reads failing past the deadline, gives 503; the repeat with the key gets that version, stored once', async (t) => {
  const testAws = await startTestAws(t)
  const clients = createAwsClients(testAws.config)
  const send = clients.ddb.send.bind(clients.ddb) as (command: unknown) => Promise<unknown>
  let landedButLost = 0
  const cut = (): Error => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })
  // The version PutItem reaches DynamoDB and its answer is lost; from then on every read fails, as a partition would.
  clients.ddb.send = (async (command: unknown) => {
    if (landedButLost > 0 && (command instanceof QueryCommand || command instanceof GetCommand)) throw cut()
    const result = await send(command)
    if (command instanceof PutCommand && String(command.input.Item?.sk).startsWith('CODE#')) {
      landedButLost++
      throw cut()
    }
    return result
  }) as typeof clients.ddb.send
  const faulty = await buildServer({ config: { ...testAws.config, ...steady, commitDeadlineMs: 300 }, aws: clients })
  t.teardown(async () => { await faulty.close() })
  await faulty.ready()
  const healthy = await build(t, { aws: testAws, config: steady })

  const request = { method: 'POST' as const, url: codeUrl('lost'), headers: { 'idempotency-key': 'edit-1' }, payload: { content: 'print(1)\n' } }
  const first = await faulty.inject(request)
  t.equal(first.statusCode, 503, 'the outcome could not be confirmed')
  t.match(first.json().detail, /Idempotency-Key/, 'the answer says how to learn the outcome')
  t.equal(landedButLost, 1, 'one PutItem: after the doubt it only looked for its commit')
  const stored = await storedFor(healthy, 'lost')
  t.equal(versionItems(stored.items, 'CODE').length, 1, 'the write landed once, although every answer was lost')
  t.equal(stored.keys.length, 1, 'its object was kept (never deleted on an unknown outcome)')

  const repeat = await healthy.inject(request)
  t.equal(repeat.statusCode, 201, 'the repeat answers the version the first attempt stored')
  t.equal(repeat.json().version, 1)
  t.notOk(repeat.headers['idempotent-replayed'], 'a 5xx is not replayed: the repeat ran and found its commit')
  const after = await storedFor(healthy, 'lost')
  t.equal(versionItems(after.items, 'CODE').length, 1, 'still one version')
  const replay = await healthy.inject(request)
  t.equal(replay.headers['idempotent-replayed'], 'true', 'from now on the 201 is replayed')
  t.equal(replay.body, repeat.body, 'byte for byte')
})

t.test('a keyed request whose replica died (lease lapsed) is taken over by the repeat, which finds its commit instead of storing again', async (t) => {
  const app = await build(t, { config: steady })
  const request = { method: 'POST' as const, url: codeUrl('died'), headers: { 'idempotency-key': 'k-died' }, payload: { content: 'a = 1\n' } }
  const first = await app.inject(request)
  t.equal(first.statusCode, 201)
  // Turn its record back into "running" with a lapsed lease, as a replica killed after its commit leaves it.
  const scope = scopeOf('anonymous', `POST ${'/v1/projects/:projectId/videos/:videoId/code'}`, 'k-died')
  await app.aws.ddb.send(new UpdateCommand({
    TableName: app.config.table,
    Key: { pk: `IDEMP#${scope}`, sk: 'IDEMP' },
    UpdateExpression: 'SET #state = :running, leaseUntil = :past REMOVE #response',
    ExpressionAttributeNames: { '#state': 'state', '#response': 'response' },
    ExpressionAttributeValues: { ':running': 'running', ':past': Date.now() - 1 }
  }))
  const repeat = await app.inject(request)
  t.equal(repeat.statusCode, 201)
  t.equal(repeat.json().version, 1, 'the version the dead request committed')
  t.equal(versionItems((await storedFor(app, 'died')).items, 'CODE').length, 1, 'stored once')
})

t.test('a running key with a live lease is 409 + Retry-After; an expired record is a new write with a new commit token', async (t) => {
  const app = await build(t, { config: steady })
  const scope = scopeOf('anonymous', `POST ${'/v1/projects/:projectId/videos/:videoId/code'}`, 'k-live')
  const request = { method: 'POST' as const, url: codeUrl('live'), headers: { 'idempotency-key': 'k-live' }, payload: { content: 'b = 1\n' } }
  const first = await app.inject(request)
  t.equal(first.statusCode, 201)
  await app.aws.ddb.send(new UpdateCommand({
    TableName: app.config.table,
    Key: { pk: `IDEMP#${scope}`, sk: 'IDEMP' },
    UpdateExpression: 'SET #state = :running, leaseUntil = :later',
    ExpressionAttributeNames: { '#state': 'state' },
    ExpressionAttributeValues: { ':running': 'running', ':later': Date.now() + 20_000 }
  }))
  const busy = await app.inject(request)
  t.equal(busy.statusCode, 409)
  t.ok(Number(busy.headers['retry-after']) >= 1, 'Retry-After')
  t.match(busy.headers['content-type'], /problem\+json/)

  // Expired (the table has no TTL here, or TTL has not run yet): the same key is a new request.
  await app.aws.ddb.send(new UpdateCommand({
    TableName: app.config.table,
    Key: { pk: `IDEMP#${scope}`, sk: 'IDEMP' },
    UpdateExpression: 'SET expiresAtEpoch = :past',
    ExpressionAttributeValues: { ':past': Math.floor(Date.now() / 1000) - 1 }
  }))
  const again = await app.inject({ ...request, payload: { content: 'b = 2\n' } })
  t.equal(again.statusCode, 201)
  t.equal(again.json().version, 2)
  const items = versionItems((await storedFor(app, 'live')).items, 'CODE')
  t.equal(new Set(items.map((item) => item.commitToken)).size, 2, 'two versions, two tokens')
})

t.test('an upload repeated with its key is answered from the record and its body is not stored again', async (t) => {
  const app = await build(t, { config: steady })
  const video = mp4Bytes(64 * 1024)
  const upload = { method: 'POST' as const, url: '/v1/projects/p1/videos/replay/renders', headers: { 'content-type': 'video/mp4', 'idempotency-key': 'render-1' }, payload: video }
  const first = await app.inject(upload)
  t.equal(first.statusCode, 201)
  const second = await app.inject(upload)
  t.equal(second.statusCode, 201)
  t.equal(second.headers['idempotent-replayed'], 'true')
  t.equal(second.body, first.body, 'the recorded answer, byte for byte')
  const listing = await app.inject({ method: 'GET', url: '/v1/projects/p1/videos/replay/renders' })
  t.equal(listing.json().items.length, 1, 'one render version')
  const { Contents = [] } = await app.aws.s3.send(new (await import('@aws-sdk/client-s3')).ListObjectsV2Command({ Bucket: app.config.videoBucket, Prefix: 'videos/p1/replay/' }))
  t.equal(Contents.length, 1, 'one object: the repeat stored no bytes')
})

t.test('PutItem of the key itself retried by the SDK after it landed (fake: lands, then throws) runs the request once, not 409', async (t) => {
  const testAws = await startTestAws(t)
  const clients = createAwsClients(testAws.config)
  const send = clients.ddb.send.bind(clients.ddb) as (command: unknown) => Promise<unknown>
  let firstKeyPut = true
  clients.ddb.send = (async (command: unknown) => {
    if (command instanceof PutCommand && String(command.input.Item?.pk).startsWith('IDEMP#') && firstKeyPut) {
      firstKeyPut = false
      await send(command)
      // What the SDK does after a timeout: the same request again, which now fails its own condition.
      return await send(command)
    }
    return await send(command)
  }) as typeof clients.ddb.send
  const app = await buildServer({ config: { ...testAws.config, ...steady }, aws: clients })
  t.teardown(async () => { await app.close() })
  await app.ready()
  const answer = await app.inject({ method: 'POST', url: codeUrl('sdk-retry'), headers: { 'idempotency-key': 'k-sdk' }, payload: { content: 'c = 1\n' } })
  t.equal(answer.statusCode, 201, 'recognised as its own record')
  t.equal(answer.json().version, 1)
})
