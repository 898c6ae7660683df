// src/versions/store.ts against the real emulators: a version exists exactly when its item does, written once by one
// conditional PutItem carrying the writer's commit token. Faults no local server can make on cue (an answer lost
// after the write landed, an SDK retry of a landed write, a table that stops answering) come from LossyDdb.
import t from 'tap'
import { randomUUID } from 'node:crypto'
import { HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3'
import { GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb'
import { createAwsClients } from '../../src/aws/clients.js'
import { createCodeStore } from '../../src/code/store.js'
import { ensureVideoRecord, videoKey } from '../../src/table/video-item.js'
import { createVersions, newIdentity, OutcomeUnknown, type WriteIdentity } from '../../src/versions/store.js'
import { startTestAws } from '../helper.js'
import { anyCommand, isVersionCommit, LossyDdb } from '../support/faults/lossy-ddb.js'

const testAws = await startTestAws(t)

function clients (t: { teardown: (fn: () => unknown) => void }): ReturnType<typeof createAwsClients> {
  const aws = createAwsClients(testAws.config)
  t.teardown(() => { aws.destroy() })
  return aws
}

/** The version items of a kind for a video, read directly (oldest first). */
async function versionItems (aws: ReturnType<typeof createAwsClients>, videoId: string, kind: 'CODE' | 'RENDER' = 'CODE'): Promise<Array<Record<string, unknown>>> {
  const { Items = [] } = await aws.ddb.send(new QueryCommand({
    TableName: testAws.config.table,
    KeyConditionExpression: 'pk = :pk AND begins_with(sk, :kind)',
    ExpressionAttributeValues: { ':pk': videoKey('p1', videoId).pk, ':kind': `${kind}#` },
    ConsistentRead: true
  }))
  return Items
}

const request = (videoId: string, identity: WriteIdentity, extra: { expectedLatest?: number, kind?: 'CODE' | 'RENDER' } = {}) => ({
  kind: extra.kind ?? 'CODE' as const,
  projectId: 'p1',
  videoId,
  identity,
  expectedLatest: extra.expectedLatest,
  build: () => ({ createdAt: new Date().toISOString(), writer: identity.token })
})

t.test('50 concurrent commits get versions exactly 1..50, each item carrying its own writer\'s token', async (t) => {
  const aws = clients(t)
  const versions = createVersions({ ddb: aws.ddb, table: testAws.config.table, commitDeadlineMs: 60_000 })
  const identities = Array.from({ length: 50 }, () => newIdentity(randomUUID()))
  const committed = await Promise.all(identities.map(async (identity) => await versions.commit(request('race', identity))))
  t.same(committed.map((result) => result.version).sort((a, b) => a - b), Array.from({ length: 50 }, (_, index) => index + 1), 'no duplicates, no gaps')
  t.ok(committed.every((result) => !result.recovered), 'every one wrote its own')
  committed.forEach((result, index) => { t.equal(result.item.commitToken, identities[index].token, `version ${result.version} carries its writer's token`) })
  const items = await versionItems(aws, 'race')
  t.equal(items.length, 50, 'one item per version')
  t.equal(new Set(items.map((item) => item.commitToken)).size, 50, 'unique tokens')
  t.ok(items.every((item) => item.writer === item.commitToken), 'each item holds what its writer built')
  t.equal((await versions.latest('CODE', 'p1', 'race'))?.version, 50)
})

t.test('a commit whose PutItem landed but whose answer was lost returns that version, recovered, and writes no second item', async (t) => {
  const aws = clients(t)
  const lossy = new LossyDdb(aws.ddb)
  const versions = createVersions({ ddb: aws.ddb, table: testAws.config.table })
  await versions.commit(request('lost', newIdentity('someone-else')))
  lossy.loseAnswer(isVersionCommit('CODE'))
  const identity = newIdentity(randomUUID())
  const result = await versions.commit(request('lost', identity))
  t.equal(lossy.sent.filter(isVersionCommit('CODE')).length, 2, 'the other writer\'s PutItem and ours (whose answer was lost) were sent')
  t.match(result, { version: 2, recovered: true, item: { commitToken: identity.token } })
  const items = await versionItems(aws, 'lost')
  t.same(items.map((item) => item.commitToken), ['someone-else', identity.token], 'no second item for the lost answer')
})

t.test('an SDK retry of a landed PutItem fails its condition on our own item: that version is ours, recovered', async (t) => {
  const aws = clients(t)
  const lossy = new LossyDdb(aws.ddb).retryAfterLanding(isVersionCommit('CODE'))
  const versions = createVersions({ ddb: aws.ddb, table: testAws.config.table })
  const identity = newIdentity(randomUUID())
  const result = await versions.commit(request('retried', identity))
  t.equal(lossy.sent.filter(isVersionCommit('CODE')).length, 2, 'the PutItem went twice')
  t.match(result, { version: 1, recovered: true })
  t.same((await versionItems(aws, 'retried')).map((item) => item.commitToken), [identity.token])
})

t.test('expectedLatest that is not the latest is a 409 naming the latest, and writes nothing', async (t) => {
  const aws = clients(t)
  const versions = createVersions({ ddb: aws.ddb, table: testAws.config.table })
  t.equal((await versions.commit(request('edit', newIdentity('a'), { expectedLatest: 0 }))).version, 1)
  t.equal((await versions.commit(request('edit', newIdentity('b'), { expectedLatest: 1 }))).version, 2)
  await t.rejects(versions.commit(request('edit', newIdentity('c'), { expectedLatest: 1 })), { message: /not the latest/, statusCode: 409, extensions: { latestVersion: 2 } })
  await t.rejects(versions.commit(request('edit', newIdentity('d'), { expectedLatest: 0 })), { message: /not the latest/, statusCode: 409, extensions: { latestVersion: 2 } })
  t.same((await versionItems(aws, 'edit')).map((item) => item.commitToken), ['a', 'b'])
})

t.test('a repeat of a write (mayExist) finds its earlier commit below newer versions instead of writing another', async (t) => {
  const aws = clients(t)
  const versions = createVersions({ ddb: aws.ddb, table: testAws.config.table })
  const since = Date.now()
  const first = await versions.commit(request('repeat', newIdentity('keyed-write')))
  for (const other of ['x', 'y', 'z']) await versions.commit(request('repeat', newIdentity(other)))
  const repeat = await versions.commit(request('repeat', { token: 'keyed-write', mayExist: true, since }))
  t.match(repeat, { version: first.version, recovered: true, item: { commitToken: 'keyed-write' } })
  const neverCommitted = await versions.commit(request('repeat', { token: 'keyed-other', mayExist: true, since }))
  t.match(neverCommitted, { version: 5, recovered: false }, 'a repeat whose earlier attempt did not commit writes the next version')
  t.same((await versionItems(aws, 'repeat')).map((item) => item.commitToken), ['keyed-write', 'x', 'y', 'z', 'keyed-other'])
})

t.test('the table unreachable past the deadline after an ambiguous PutItem: OutcomeUnknown (503), and the repeat finds the commit', async (t) => {
  const aws = clients(t)
  const lossy = new LossyDdb(aws.ddb).loseAnswer(isVersionCommit('CODE'))
  // After the lost answer nothing reaches the table any more, until the test heals it.
  lossy.afterLostAnswer = () => { lossy.refuse(anyCommand) }
  const versions = createVersions({ ddb: aws.ddb, table: testAws.config.table, commitDeadlineMs: 300 })
  const identity = newIdentity(randomUUID())
  const error = await versions.commit(request('unknown', identity)).then(() => undefined, (caught: unknown) => caught)
  t.ok(error instanceof OutcomeUnknown, 'the outcome is unknown, not a definite failure')
  t.match(error, { statusCode: 503, headers: { 'retry-after': /^\d+$/ } })
  t.ok(lossy.refused.length >= 1, 'attempts after the lost answer could not reach the table')
  lossy.heal()
  t.same((await versionItems(aws, 'unknown')).map((item) => item.commitToken), [identity.token], 'the write had landed')
  const repeat = await versions.commit(request('unknown', { ...identity, mayExist: true, since: Date.now() - 60_000 }))
  t.match(repeat, { version: 1, recovered: true })
  t.equal((await versionItems(aws, 'unknown')).length, 1, 'no second item')
})

t.test('code store: an unknown outcome leaves its object for reconcile; a definite failure deletes it', async (t) => {
  const aws = clients(t)
  const lossy = new LossyDdb(aws.ddb)
  const store = createCodeStore({ aws, config: { ...testAws.config, commitDeadlineMs: 300 } })
  const objects = async (videoId: string): Promise<string[]> =>
    ((await aws.s3.send(new ListObjectsV2Command({ Bucket: testAws.config.codeBucket, Prefix: `code/p1/${videoId}/` }))).Contents ?? []).map((object) => object.Key ?? '')

  lossy.loseAnswer(isVersionCommit('CODE'))
  lossy.afterLostAnswer = () => { lossy.refuse(anyCommand) }
  const identity = newIdentity(randomUUID())
  const unknown = await store.createVersion({ projectId: 'p1', videoId: 'kept', content: 'print(1)\n' }, identity).then(() => undefined, (caught: unknown) => caught)
  t.ok(unknown instanceof OutcomeUnknown, 'the write answers OutcomeUnknown')
  lossy.heal()
  lossy.afterLostAnswer = undefined
  const [key] = await objects('kept')
  t.equal(key, `code/p1/kept/${identity.token}/kept.py`, 'the object stays where the item (if it landed) points')
  await aws.s3.send(new HeadObjectCommand({ Bucket: testAws.config.codeBucket, Key: key }))
  const repeat = await store.createVersion({ projectId: 'p1', videoId: 'kept', content: 'print(1)\n' }, { ...identity, mayExist: true, since: Date.now() - 60_000 })
  t.match(repeat, { created: true, codeVersion: { version: 1, key } }, 'the repeat learns the version')
  t.same(await objects('kept'), [key])

  const denied = (): Error => Object.assign(new Error('User is not authorized to perform: dynamodb:PutItem'), { name: 'AccessDeniedException', $fault: 'client', $metadata: { httpStatusCode: 400 } })
  lossy.refuse(isVersionCommit('CODE'), 1, denied)
  await t.rejects(store.createVersion({ projectId: 'p1', videoId: 'refused', content: 'print(2)\n' }, newIdentity(randomUUID())), { name: 'AccessDeniedException' })
  t.same(await objects('refused'), [], 'a PutItem that was refused can never land: its object is deleted')
  t.same(await versionItems(aws, 'refused'), [])
  const { Item } = await aws.ddb.send(new GetCommand({ TableName: testAws.config.table, Key: videoKey('p1', 'refused'), ConsistentRead: true }))
  t.equal(Item?.latestCodeVersion, undefined, 'the video record names no version')
})

t.test('advance moves the latest hint forward only, and never brings back a deleted video', async (t) => {
  const aws = clients(t)
  const versions = createVersions({ ddb: aws.ddb, table: testAws.config.table })
  await versions.advance('RENDER', 'p1', 'gone', 3)
  const read = async (videoId: string) => (await aws.ddb.send(new GetCommand({ TableName: testAws.config.table, Key: videoKey('p1', videoId), ConsistentRead: true }))).Item
  t.equal(await read('gone'), undefined, 'no record is created')
  await ensureVideoRecord(aws.ddb, testAws.config.table, 'p1', 'hint')
  await versions.advance('RENDER', 'p1', 'hint', 3)
  await versions.advance('RENDER', 'p1', 'hint', 2)
  t.equal((await read('hint'))?.latestRenderVersion, 3, 'a late, lower advance does not move it back')
  await versions.advance('RENDER', 'p1', 'hint', 4)
  t.equal((await read('hint'))?.latestRenderVersion, 4)
})
