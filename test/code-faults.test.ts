import t from 'tap'
import { UpdateCommand } from '@aws-sdk/lib-dynamodb'
import { createAwsClients } from '../src/aws/clients.js'
import { buildServer } from '../src/app.js'
import { build, startTestAws } from './helper.js'
import { codeUrl, postCode, steady, storedFor } from './code-helper.js'

t.test('S3 down during a POST: 503 with Retry-After, no version left behind, the next POST is version 1', async (t) => {
  const aws = await startTestAws(t)
  const app = await build(t, { aws, config: steady })
  await aws.embedded.s3.stop()
  const failed = await postCode(app, 'fault', { content: 'never stored\n' })
  t.equal(failed.statusCode, 503)
  t.ok(Number(failed.headers['retry-after']) > 0, 'Retry-After')
  t.match(failed.headers['content-type'], /^application\/problem\+json/)
  await aws.embedded.s3.restart()
  const stored = await storedFor(app, 'fault')
  t.same(stored.keys, [], 'no object')
  t.notOk(stored.items.some((item) => String(item.sk).startsWith('CODE#')), 'no version item')
  t.notOk(stored.items.find((item) => item.sk === 'VIDEO')?.codeClaim, 'the claim was released')
  t.equal((await app.inject({ method: 'GET', url: codeUrl('fault') })).statusCode, 404, 'no latest version is visible')
  const next = await postCode(app, 'fault', { content: 'stored\n' })
  t.equal(next.statusCode, 201)
  t.equal(next.json().version, 1, 'no gap')
})

t.test('fake DynamoDB fault: a commit that fails is rolled back, leaving nothing visible and no gap', async (t) => {
  const testAws = await startTestAws(t)
  const clients = createAwsClients(testAws.config)
  // The local DynamoDB cannot fail one chosen request, so the commit is made to throw as a dropped connection would.
  const send = clients.ddb.send.bind(clients.ddb) as (command: unknown) => Promise<unknown>
  let failCommits = 1
  clients.ddb.send = (async (command: unknown) => {
    if (command instanceof UpdateCommand && String(command.input.UpdateExpression).includes('REMOVE #claim ADD revision') && failCommits-- > 0) {
      throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })
    }
    return await send(command)
  }) as typeof clients.ddb.send
  const faulty = await buildServer({ config: { ...testAws.config, ...steady }, aws: clients })
  t.teardown(async () => { await faulty.close() })
  await faulty.ready()
  const failed = await postCode(faulty, 'commit', { content: 'lost\n' })
  t.equal(failed.statusCode, 503)
  const stored = await storedFor(faulty, 'commit')
  t.same(stored.keys, [], 'the object was removed')
  t.notOk(stored.items.some((item) => String(item.sk).startsWith('CODE#')), 'the item was removed')
  const next = await postCode(faulty, 'commit', { content: 'kept\n' })
  t.equal(next.json().version, 1)
  t.equal((await faulty.inject({ method: 'GET', url: codeUrl('commit'), headers: { accept: 'text/plain' } })).body, 'kept\n')
})

t.test('the latest cache never hides this replica\'s writes; with it off another replica\'s write shows at once', async (t) => {
  const testAws = await startTestAws(t)
  const cached = await build(t, { aws: testAws, config: { ...steady, codeCacheTtlMs: 60_000 } })
  const uncached = await build(t, { aws: testAws, config: { ...steady, codeCacheTtlMs: 0 } })
  await postCode(cached, 'cache', { content: 'one\n' })
  t.equal((await cached.inject({ method: 'GET', url: codeUrl('cache') })).json().content, 'one\n')
  await postCode(cached, 'cache', { content: 'two\n' })
  t.equal((await cached.inject({ method: 'GET', url: codeUrl('cache') })).json().content, 'two\n', 'own write replaces the cached latest')
  await postCode(uncached, 'cache', { content: 'three\n' })
  t.equal((await uncached.inject({ method: 'GET', url: codeUrl('cache') })).json().version, 3)
  const edit = await postCode(cached, 'cache', { content: 'four\n', baseVersion: 2 })
  t.equal(edit.statusCode, 409, 'writes never trust the cache')
  t.equal(edit.json().latestVersion, 3)
})

/** Clients whose S3 claims Object Lock is enabled (no local S3 has it) and accepts lock calls; all else is real. */
function objectLockS3 (config: Parameters<typeof createAwsClients>[0]): { clients: ReturnType<typeof createAwsClients>, calls: string[] } {
  const clients = createAwsClients(config)
  const calls: string[] = []
  const send = clients.s3.send.bind(clients.s3) as (command: unknown) => Promise<unknown>
  clients.s3.send = (async (command: { constructor: { name: string }, input: Record<string, unknown> }) => {
    const name = command.constructor.name
    if (name === 'GetObjectLockConfigurationCommand') return { ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled' } }
    if (name === 'PutObjectRetentionCommand' || name === 'PutObjectLegalHoldCommand') { calls.push(name); return {} }
    if (name === 'PutObjectCommand' && command.input.ObjectLockLegalHoldStatus !== undefined) calls.push(`PutObject legal hold ${String(command.input.ObjectLockLegalHoldStatus)}`)
    return await send(command)
  }) as unknown as typeof clients.s3.send
  return { clients, calls }
}

t.test('fake S3 with Object Lock enabled: retention and legal hold are applied and recorded, on create too', async (t) => {
  const testAws = await startTestAws(t)
  const { clients, calls } = objectLockS3(testAws.config)
  const app = await buildServer({ config: { ...testAws.config, ...steady }, aws: clients })
  t.teardown(async () => { await app.close() })
  const created = await postCode(app, 'lockable', { content: 'keep\n', lock: { legalHold: true } })
  t.equal(created.statusCode, 201)
  t.match(created.json(), { version: 1, locked: true, lock: { legalHold: true } })
  const retainUntil = new Date(Date.now() + 86_400_000).toISOString()
  const retained = await app.inject({ method: 'PUT', url: codeUrl('lockable', '/versions/1/lock'), payload: { mode: 'COMPLIANCE', retainUntil } })
  t.equal(retained.statusCode, 200)
  t.match(retained.json(), { locked: true, lock: { legalHold: true, mode: 'COMPLIANCE', retainUntil } })
  const released = await app.inject({ method: 'PUT', url: codeUrl('lockable', '/versions/latest/lock'), payload: { legalHold: false } })
  t.match(released.json(), { locked: true, lock: { legalHold: false, mode: 'COMPLIANCE' } }, 'retention still holds it')
  t.same(calls, ['PutObject legal hold ON', 'PutObjectRetentionCommand', 'PutObjectLegalHoldCommand'])
  const listed = await app.inject({ method: 'GET', url: codeUrl('lockable', '/versions') })
  t.match(listed.json().items[0], { version: 1, locked: true })
})

t.test('fake DynamoDB fault: a commit that lands but whose answer is lost still counts as created', async (t) => {
  const testAws = await startTestAws(t)
  const clients = createAwsClients(testAws.config)
  const send = clients.ddb.send.bind(clients.ddb) as (command: unknown) => Promise<unknown>
  clients.ddb.send = (async (command: unknown) => {
    const result = await send(command)
    if (command instanceof UpdateCommand && String(command.input.UpdateExpression).includes('REMOVE #claim ADD revision')) {
      throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })
    }
    return result
  }) as typeof clients.ddb.send
  const app = await buildServer({ config: { ...testAws.config, ...steady }, aws: clients })
  t.teardown(async () => { await app.close() })
  const created = await postCode(app, 'landed', { content: 'landed\n' })
  t.equal(created.statusCode, 201)
  t.equal(created.json().version, 1)
  t.equal((await app.inject({ method: 'GET', url: codeUrl('landed'), headers: { accept: 'text/plain' } })).body, 'landed\n', 'the version is whole and readable')
  t.equal((await storedFor(app, 'landed')).keys.length, 1)
})
