import t from 'tap'
import { createAwsClients } from '../../src/aws/clients.js'
import { buildServer } from '../../src/app.js'
import type { Config } from '../../src/config.js'
import { videoKey } from '../../src/table/video-item.js'
import { build, startTestAws, type TestAws } from '../helper.js'
import { codeUrl, postCode, steady, storedFor } from '../support/code.js'
import { isVersionCommit, LossyDdb, onPartition } from '../support/faults/lossy-ddb.js'

/** The app on real emulators whose DynamoDB client goes through a LossyDdb (faults on cue); closed at teardown. */
async function withLossyDdb (t: { teardown: (fn: () => unknown) => void }, testAws: TestAws, config: Partial<Config> = {}): Promise<{ app: Awaited<ReturnType<typeof buildServer>>, lossy: LossyDdb }> {
  const clients = createAwsClients(testAws.config)
  const lossy = new LossyDdb(clients.ddb)
  const app = await buildServer({ config: { ...testAws.config, ...steady, ...config }, aws: clients })
  t.teardown(async () => { await app.close() })
  await app.ready()
  return { app, lossy }
}

const versionItemsOf = (stored: { items: Array<Record<string, unknown>> }): Array<Record<string, unknown>> => stored.items.filter((item) => String(item.sk).startsWith('CODE#'))

t.test('S3 down during a POST: 503 with Retry-After, no object and no item, the next POST is version 1', async (t) => {
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
  t.same(versionItemsOf(stored), [], 'no version item: the bytes go first, so nothing was committed')
  t.equal((await app.inject({ method: 'GET', url: codeUrl('fault') })).statusCode, 404, 'no latest version is visible')
  const next = await postCode(app, 'fault', { content: 'stored\n' })
  t.equal(next.statusCode, 201)
  t.equal(next.json().version, 1, 'no gap')
  t.equal(versionItemsOf(await storedFor(app, 'fault')).length, 1)
})

t.test('fake DynamoDB fault: a commit that fails definitely (the PutItem is refused) leaves no item, deletes its object, and leaves no gap', async (t) => {
  const testAws = await startTestAws(t)
  const { app, lossy } = await withLossyDdb(t, testAws)
  // A refusal that no retry cures: the PutItem never ran, so it can never land and its object can go.
  const denied = (): Error => Object.assign(new Error('User is not authorized to perform: dynamodb:PutItem'), { name: 'AccessDeniedException', $fault: 'client', $metadata: { httpStatusCode: 400 } })
  lossy.refuse(isVersionCommit('CODE'), 1, denied)
  const failed = await postCode(app, 'commit', { content: 'lost\n' })
  t.equal(failed.statusCode, 500, 'a failure retrying cannot cure is not a 503')
  t.match(failed.headers['content-type'], /^application\/problem\+json/)
  t.equal(lossy.refused.length, 1)
  const stored = await storedFor(app, 'commit')
  t.same(stored.keys, [], 'the object was removed')
  t.same(versionItemsOf(stored), [], 'no version item')
  t.equal(stored.items.find((item) => item.sk === 'VIDEO')?.latestCodeVersion, undefined, 'the record names no version')
  const next = await postCode(app, 'commit', { content: 'kept\n' })
  t.equal(next.statusCode, 201)
  t.equal(next.json().version, 1)
  t.equal((await app.inject({ method: 'GET', url: codeUrl('commit'), headers: { accept: 'text/plain' } })).body, 'kept\n')
  t.equal((await storedFor(app, 'commit')).keys.length, 1)
})

t.test('fake DynamoDB fault: a commit whose outcome is unknown answers 503, leaves its object for reconcile, and a repeat with the same Idempotency-Key gets the version', async (t) => {
  const testAws = await startTestAws(t)
  const { app, lossy } = await withLossyDdb(t, testAws, { commitDeadlineMs: 500 })
  const pk = videoKey('p1', 'unknown').pk
  // The PutItem lands but its answer is lost; then the video's partition stops answering past the commit deadline.
  // (The idempotency record lives elsewhere, so the replica can still release the key for a repeat.)
  lossy.loseAnswer(isVersionCommit('CODE', pk))
  lossy.afterLostAnswer = () => { lossy.refuse(onPartition(pk)) }
  const send = async () => await app.inject({ method: 'POST', url: codeUrl('unknown'), headers: { 'idempotency-key': 'push-unknown-1' }, payload: { content: 'maybe\n' } })
  const failed = await send()
  t.equal(failed.statusCode, 503)
  t.ok(Number(failed.headers['retry-after']) > 0, 'Retry-After')
  t.match(failed.json().detail, /Idempotency-Key/, 'says how to learn the outcome')
  t.ok(lossy.refused.length > 0, 'the commit kept asking until its deadline')
  lossy.heal()
  const stored = await storedFor(app, 'unknown')
  t.equal(stored.keys.length, 1, 'the object was not deleted: its item may exist (here it does)')
  t.equal(versionItemsOf(stored).length, 1)
  const repeat = await send()
  t.equal(repeat.statusCode, 201, repeat.body)
  t.equal(repeat.json().version, 1, 'the repeat learns the version the first attempt committed')
  t.equal(repeat.json().key, stored.keys[0])
  const after = await storedFor(app, 'unknown')
  t.equal(versionItemsOf(after).length, 1, 'no second item')
  t.same(after.keys, stored.keys, 'no second object')
  const replay = await send()
  t.equal(replay.headers['idempotent-replayed'], 'true', 'the answer is recorded now')
  t.equal(replay.json().version, 1)
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

/**
 * Clients whose S3 claims Object Lock is enabled (no local S3 has it) and accepts lock calls; all else is real. A fake for
 * the embedded tier only: real Object Lock (legal hold, retention, refusals, deletes) is test/strict/object-lock.test.ts
 * and test/strict/versioned-delete.test.ts on the strict tier.
 */
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

t.test('fake S3 with Object Lock enabled (embedded tier; the strict tier has the real one): retention and legal hold are applied and recorded, on create too', async (t) => {
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

t.test('fake DynamoDB fault: a commit that lands but whose answer is lost still counts as created, once', async (t) => {
  const testAws = await startTestAws(t)
  const { app, lossy } = await withLossyDdb(t, testAws)
  lossy.loseAnswer(isVersionCommit('CODE'))
  const created = await postCode(app, 'landed', { content: 'landed\n' })
  t.equal(created.statusCode, 201)
  t.equal(created.json().version, 1)
  t.equal(lossy.sent.filter(isVersionCommit('CODE')).length, 1, 'the writer found its own commit instead of writing again')
  t.equal((await app.inject({ method: 'GET', url: codeUrl('landed'), headers: { accept: 'text/plain' } })).body, 'landed\n', 'the version is whole and readable')
  const stored = await storedFor(app, 'landed')
  t.equal(stored.keys.length, 1)
  t.equal(versionItemsOf(stored).length, 1)
  t.equal(stored.items.find((item) => item.sk === 'VIDEO')?.latestCodeVersion, 1, 'the latest hint moved on')
})
