import t from 'tap'
import { GetCommand } from '@aws-sdk/lib-dynamodb'
import { createAwsClients } from '../src/aws/clients.js'
import { createVersionClaims, videoKey } from '../src/video-records.js'
import { startTestAws } from './helper.js'

t.test('concurrent claims hand out 1..N in order, each exactly once', async (t) => {
  const testAws = await startTestAws(t)
  const aws = createAwsClients(testAws.config)
  t.teardown(() => aws.destroy())
  const claims = createVersionClaims({ ddb: aws.ddb, table: testAws.config.table })
  const versions = await Promise.all(Array.from({ length: 25 }, async () => {
    const held = await claims.claim({ kind: 'CODE', projectId: 'p1', videoId: 'v1' })
    await claims.commit(held, { latestCodeSha256: `sha-${held.version}` })
    return held.version
  }))
  t.same([...versions].sort((a, b) => a - b), Array.from({ length: 25 }, (_, index) => index + 1))
  const { Item } = await aws.ddb.send(new GetCommand({ TableName: testAws.config.table, Key: videoKey('p1', 'v1') }))
  t.equal(Item?.latestCodeVersion, 25)
  t.equal(Item?.codeClaim, undefined, 'no claim left behind')
  t.equal(Item?.status, 'created')
})

t.test('a released claim frees its number; expectedLatest that is stale is a 409', async (t) => {
  const testAws = await startTestAws(t)
  const aws = createAwsClients(testAws.config)
  t.teardown(() => aws.destroy())
  const claims = createVersionClaims({ ddb: aws.ddb, table: testAws.config.table })
  const first = await claims.claim({ kind: 'RENDER', projectId: 'p1', videoId: 'v2' })
  await claims.release(first)
  const again = await claims.claim({ kind: 'RENDER', projectId: 'p1', videoId: 'v2', expectedLatest: 0 })
  t.equal(again.version, 1, 'the number was given back')
  await claims.commit(again)
  await t.rejects(claims.claim({ kind: 'RENDER', projectId: 'p1', videoId: 'v2', expectedLatest: 0 }), { statusCode: 409, extensions: { latestVersion: 1 } })
})

t.test('a held claim makes others wait, and past maxWaitMs they get a 503', async (t) => {
  const testAws = await startTestAws(t)
  const aws = createAwsClients(testAws.config)
  t.teardown(() => aws.destroy())
  const claims = createVersionClaims({ ddb: aws.ddb, table: testAws.config.table, maxWaitMs: 300 })
  await claims.claim({ kind: 'CODE', projectId: 'p1', videoId: 'v3' })
  await t.rejects(claims.claim({ kind: 'CODE', projectId: 'p1', videoId: 'v3' }), { statusCode: 503 })
})

t.test('extend keeps a claim alive for its holder only', async (t) => {
  const testAws = await startTestAws(t)
  const aws = createAwsClients(testAws.config)
  t.teardown(() => aws.destroy())
  const claims = createVersionClaims({ ddb: aws.ddb, table: testAws.config.table, claimTtlMs: 50 })
  const held = await claims.claim({ kind: 'RENDER', projectId: 'p1', videoId: 'v4' })
  t.equal(await claims.extend(held, 60_000), true)
  await new Promise((resolve) => setTimeout(resolve, 100))
  await t.rejects(claims.claim({ kind: 'RENDER', projectId: 'p1', videoId: 'v4', waitMs: 200 }), { statusCode: 503 }, 'extended claim still blocks')
  await claims.release(held)
  t.equal(await claims.extend(held), false, 'a released claim cannot be extended')
})
