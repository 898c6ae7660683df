// Faults at the moment a render version is committed. The local DynamoDB cannot fail or delay one chosen request,
// so these tests wrap the document client's send: fakes, named as such.
import t from 'tap'
import { UpdateCommand } from '@aws-sdk/lib-dynamodb'
import { ListObjectsV2Command } from '@aws-sdk/client-s3'
import { createAwsClients, type AwsClients } from '../src/aws/clients.js'
import { buildServer } from '../src/app.js'
import { startTestAws, type TestAws } from './helper.js'
import { mp4Bytes } from './render-fixtures.js'

const base = '/v1/projects/p1/videos/v1/renders'
const isRenderCommit = (command: unknown): boolean =>
  command instanceof UpdateCommand && String(command.input.UpdateExpression).includes('REMOVE #claim ADD revision') &&
  command.input.ExpressionAttributeNames?.['#claim'] === 'renderClaim'

async function faultyApp (t: Parameters<typeof startTestAws>[0], wrap: (send: (command: unknown) => Promise<unknown>) => (command: unknown) => Promise<unknown>): Promise<{ app: Awaited<ReturnType<typeof buildServer>>, clients: AwsClients, testAws: TestAws }> {
  const testAws = await startTestAws(t)
  const clients = createAwsClients(testAws.config)
  const send = clients.ddb.send.bind(clients.ddb) as (command: unknown) => Promise<unknown>
  clients.ddb.send = wrap(send) as typeof clients.ddb.send
  const app = await buildServer({ config: testAws.config, aws: clients })
  t.teardown(async () => { await app.close() })
  return { app, clients, testAws }
}

t.test('fake DynamoDB fault: a render commit that lands but whose answer is lost is kept, not rolled back', async (t) => {
  const { app, clients, testAws } = await faultyApp(t, (send) => async (command) => {
    const result = await send(command)
    if (isRenderCommit(command)) throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })
    return result
  })
  const video = mp4Bytes(64 * 1024)
  const uploaded = await app.inject({ method: 'POST', url: base, headers: { 'content-type': 'video/mp4' }, payload: video })
  t.equal(uploaded.statusCode, 201, 'the client is told what happened: the version exists')
  t.equal(uploaded.json().version, 1)
  const render = await app.inject({ method: 'GET', url: `${base}/1` })
  t.equal(render.statusCode, 200, 'the version is readable')
  t.equal(render.json().sizeBytes, video.length)
  const objects = await clients.s3.send(new ListObjectsV2Command({ Bucket: testAws.config.videoBucket }))
  t.same((objects.Contents ?? []).map((object) => object.Key), ['videos/p1/v1/v1/v1.mp4'], 'its object is there')
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
  t.equal((await app.inject({ method: 'GET', url: `${base}/1` })).statusCode, 404, 'the item written before the commit is not visible')
  t.same((await app.inject({ method: 'GET', url: base })).json().items, [], 'nor listed')
  releaseCommit()
  t.equal((await upload).statusCode, 201)
  t.equal((await app.inject({ method: 'GET', url: `${base}/1` })).statusCode, 200, 'visible once committed')
})
