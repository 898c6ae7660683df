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
