// A checkpoint put whose answer is lost after the service stored it (dropped, turned into a 502, cut in half), then
// repeated as RenderStoreCheckpointSaver's retry does: the repeat answers 200 created:false and exactly one checkpoint
// item is stored. One whose request was cut on the way (the service never got it whole) stores nothing until the
// repeat, which then answers 201. Through test/support/faults/fault-proxy.ts in front of a real listening service.
import t from 'tap'
import { QueryCommand } from '@aws-sdk/lib-dynamodb'
import { listen, startTestAws } from '../helper.js'
import { clients } from '../support/render-fixtures.js'
import { startFaultProxy, type FaultMode } from '../support/faults/fault-proxy.js'
import { threadKey } from '../../src/checkpoints/store.js'

const testAws = await startTestAws(t)
const service = await listen(t, { aws: testAws })
const proxy = await startFaultProxy(service.baseUrl, { t })
const aws = clients(t, testAws)

const PROJECT = 'cpf'
const b64 = (text: string): string => Buffer.from(text).toString('base64')
const body = (id: string): string => JSON.stringify({
  checkpointNs: '',
  checkpoint: { type: 'json', data: b64(JSON.stringify({ v: 4, id, channel_values: {}, channel_versions: { a: 1 }, versions_seen: {} })) },
  metadata: { source: 'loop', step: 1, parents: {} },
  channelVersions: { a: 1 },
  blobs: [{ channel: 'a', version: '1', type: 'json', data: b64('"hello"') }]
})

async function putCheckpoint (baseUrl: string, threadId: string, id: string): Promise<{ status: number, json?: Record<string, unknown> }> {
  const response = await fetch(`${baseUrl}/v1/projects/${PROJECT}/threads/${threadId}/checkpoints/${id}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: body(id) })
  return { status: response.status, json: await response.json() as Record<string, unknown> }
}

/** The checkpoint items of a thread, read straight from the table. */
async function checkpointItems (threadId: string): Promise<Array<Record<string, unknown>>> {
  const { Items = [] } = await aws.ddb.send(new QueryCommand({
    TableName: testAws.config.table,
    KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
    ExpressionAttributeValues: { ':pk': threadKey(PROJECT, threadId), ':prefix': 'CHECKPOINT#' },
    ConsistentRead: true
  }))
  return Items
}

for (const mode of ['drop-answer', 'bad-gateway-after', 'cut-response'] as FaultMode[]) {
  t.test(`${mode}: the service stored the checkpoint, the client never heard; the repeat answers 200 created:false, one item`, async (t) => {
    const threadId = `th-${mode}`
    const id = '1f1ee000-0000-6000-8000-0000000000a1'
    proxy.next(mode)
    const exchange = proxy.nextExchange()
    const first = await putCheckpoint(proxy.url, threadId, id).catch((error: unknown) => ({ status: 0, error }))
    const seen = await (await exchange).finished
    t.equal(seen.upstreamStatus, 201, 'the service stored it and answered 201')
    t.not(seen.client, 'full-answer', 'the client did not get that answer')
    t.not(first.status, 201, 'the client saw no 201')
    t.equal((await checkpointItems(threadId)).length, 1, 'one item before the repeat')

    const repeat = await putCheckpoint(service.baseUrl, threadId, id)
    t.equal(repeat.status, 200, 'the repeat is recognised')
    t.match(repeat.json, { threadId, checkpointId: id, checkpointNs: '', created: false })
    t.equal((await checkpointItems(threadId)).length, 1, 'still exactly one item')
    const read = await fetch(`${service.baseUrl}/v1/projects/${PROJECT}/threads/${threadId}/checkpoints/${id}`)
    t.equal(read.status, 200)
    t.match(await read.json(), { checkpointId: id, blobs: [{ channel: 'a', version: '1' }] }, 'the checkpoint reads back with its channel value')
  })
}

t.test('cut-request: the service never got the whole put, stored nothing; the repeat stores it (201), one item', async (t) => {
  const threadId = 'th-cut-request'
  const id = '1f1ee000-0000-6000-8000-0000000000b1'
  proxy.next('cut-request')
  const exchange = proxy.nextExchange()
  const first = await putCheckpoint(proxy.url, threadId, id).catch((error: unknown) => ({ status: 0, error }))
  await (await exchange).finished
  t.not(first.status, 201, 'the client saw no 201')
  t.equal((await checkpointItems(threadId)).length, 0, 'nothing stored')
  const repeat = await putCheckpoint(service.baseUrl, threadId, id)
  t.equal(repeat.status, 201)
  t.match(repeat.json, { created: true })
  t.equal((await checkpointItems(threadId)).length, 1, 'exactly one item')
})
