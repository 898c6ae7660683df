// The thread/checkpoint routes RenderStoreCheckpointSaver uses: bad input refused with problem+json and nothing
// stored, a repeated put recognised as its own, writes kept once per (task, index), large payloads in the video bucket
// under checkpoints/, and a thread delete that leaves nothing behind.
import t from 'tap'
import { ListObjectsV2Command } from '@aws-sdk/client-s3'
import { build } from '../helper.js'

const base = '/v1/projects/cp/threads/th-1'
const b64 = (text: string): string => Buffer.from(text).toString('base64')
const checkpoint = (id: string, extra: Record<string, unknown> = {}) => ({
  checkpointNs: '',
  checkpoint: { type: 'json', data: b64(JSON.stringify({ v: 4, id, ts: '2026-01-01T00:00:00.000Z', channel_values: {}, channel_versions: { a: 1 }, versions_seen: {} })) },
  metadata: { source: 'loop', step: 0, parents: {} },
  channelVersions: { a: 1 },
  blobs: [{ channel: 'a', version: '1', type: 'json', data: b64('"hello"') }],
  ...extra
})
const ID1 = '1f1ee000-0000-6000-8000-000000000001'
const ID2 = '1f1ee000-0000-6000-8000-000000000002'

t.test('checkpoint routes', async (t) => {
  const app = await build(t)
  const put = async (path: string, body: unknown, headers: Record<string, string> = {}) => await app.inject({ method: 'PUT', url: path, payload: body as object, headers })

  t.test('bad input: 400 problem+json, nothing stored', async (t) => {
    for (const [path, body] of [
      [`${base}/checkpoints/${ID1}`, { ...checkpoint(ID1), checkpoint: undefined }],
      [`${base}/checkpoints/${ID1}`, { ...checkpoint(ID1), blobs: [{ channel: 'a', version: '1', type: 'json', data: 'not base64!' }] }],
      [`${base}/checkpoints/${ID1}`, { ...checkpoint(ID1), extra: true }],
      [`${base}/checkpoints/latest`, checkpoint(ID1)],
      [`${base}/checkpoints/${ID1}`, { ...checkpoint(ID1), parentCheckpointId: ID1 }],
      ['/v1/projects/cp/threads/bad%23thread/checkpoints/' + ID1, checkpoint(ID1)],
      [`${base}/checkpoints/${ID1}/writes/task-1`, { writes: [] }]
    ] as Array<[string, unknown]>) {
      const answer = await put(path, body)
      t.equal(answer.statusCode, 400, path)
      t.match(answer.headers['content-type'], /application\/problem\+json/)
    }
    t.equal((await app.inject(`${base}/checkpoints/latest`)).statusCode, 404, 'nothing stored')
    t.equal((await app.inject(`${base}/checkpoints?filter=${encodeURIComponent('[1]')}`)).statusCode, 400, 'a filter that is not a JSON object')
    t.same((await app.inject('/v1/projects/cp/threads')).json().items, [], 'no thread listed')
  })

  t.test('a put is keyed by its id: a repeat is answered as its own, other content under the id is a 409', async (t) => {
    const first = await put(`${base}/checkpoints/${ID1}`, checkpoint(ID1))
    t.equal(first.statusCode, 201)
    t.match(first.json(), { checkpointId: ID1, created: true })
    const again = await put(`${base}/checkpoints/${ID1}`, checkpoint(ID1))
    t.equal(again.statusCode, 200)
    t.match(again.json(), { created: false })
    const other = await put(`${base}/checkpoints/${ID1}`, checkpoint(ID1, { metadata: { source: 'input', step: -1, parents: {} } }))
    t.equal(other.statusCode, 409)
    t.match(other.headers['content-type'], /application\/problem\+json/)
    const keyed = { 'idempotency-key': 'cp-put-2' }
    const keyedFirst = await put(`${base}/checkpoints/${ID2}`, checkpoint(ID2, { parentCheckpointId: ID1 }), keyed)
    const keyedAgain = await put(`${base}/checkpoints/${ID2}`, checkpoint(ID2, { parentCheckpointId: ID1 }), keyed)
    t.equal(keyedFirst.statusCode, 201)
    t.equal(keyedAgain.statusCode, 201)
    t.equal(keyedAgain.headers['idempotent-replayed'], 'true', 'the same key: the first answer replayed')
    const latest = (await app.inject(`${base}/checkpoints/latest`)).json()
    t.match(latest, { checkpointId: ID2, parentCheckpointId: ID1, blobs: [{ channel: 'a', version: '1' }] })
    const list = (await app.inject(`${base}/checkpoints`)).json() as { items: Array<{ checkpointId: string }> }
    t.same(list.items.map((item) => item.checkpointId), [ID2, ID1], 'newest first')
    const before = (await app.inject(`${base}/checkpoints?before=${ID2}`)).json() as { items: Array<{ checkpointId: string }> }
    t.same(before.items.map((item) => item.checkpointId), [ID1])
    const paged = (await app.inject(`${base}/checkpoints?limit=1`)).json() as { items: Array<{ checkpointId: string }>, nextCursor: string }
    t.same(paged.items.map((item) => item.checkpointId), [ID2])
    const rest = (await app.inject(`${base}/checkpoints?limit=1&cursor=${paged.nextCursor}`)).json() as { items: Array<{ checkpointId: string }> }
    t.same(rest.items.map((item) => item.checkpointId), [ID1], 'the cursor goes on after the page')
  })

  t.test('writes: the same task id and index is the same write', async (t) => {
    const writes = { checkpointNs: '', writes: [{ idx: 0, channel: 'a', type: 'json', data: b64('"first"') }, { idx: -3, channel: '__interrupt__', type: 'json', data: b64('"one"') }] }
    t.match((await put(`${base}/checkpoints/${ID2}/writes/task-1`, writes)).json(), { stored: 2 })
    const changed = { checkpointNs: '', writes: [{ idx: 0, channel: 'a', type: 'json', data: b64('"second"') }, { idx: -3, channel: '__interrupt__', type: 'json', data: b64('"two"') }] }
    t.match((await put(`${base}/checkpoints/${ID2}/writes/task-1`, changed)).json(), { stored: 1 }, 'only the special write is replaced')
    const tuple = (await app.inject(`${base}/checkpoints/${ID2}`)).json() as { pendingWrites: Array<{ idx: number, data: string }> }
    t.same(tuple.pendingWrites.map((w) => [w.idx, Buffer.from(w.data, 'base64').toString()]).sort(), [[-3, '"two"'], [0, '"first"']])
  })

  t.test('large payloads go to the video bucket under checkpoints/; deleting the thread leaves nothing', async (t) => {
    const big = b64(JSON.stringify('x'.repeat(200 * 1024)))
    const ID3 = '1f1ee000-0000-6000-8000-000000000003'
    t.equal((await put(`${base}/checkpoints/${ID3}`, checkpoint(ID3, { blobs: [{ channel: 'a', version: '2', type: 'json', data: big }], channelVersions: { a: '2' } }))).statusCode, 201)
    const tuple = (await app.inject(`${base}/checkpoints/${ID3}`)).json() as { blobs: Array<{ data: string }> }
    t.equal(tuple.blobs[0].data, big, 'read back whole')
    const listed = async () => (await app.aws.s3.send(new ListObjectsV2Command({ Bucket: app.config.videoBucket, Prefix: 'checkpoints/cp/th-1/' }))).Contents ?? []
    t.equal((await listed()).length, 1, 'one object in the video bucket')
    t.same((await app.inject('/v1/projects/cp/threads')).json().items.map((item: { threadId: string }) => item.threadId), ['th-1'])
    t.equal((await app.inject({ method: 'DELETE', url: base })).statusCode, 204)
    t.equal((await app.inject(`${base}/checkpoints/latest`)).statusCode, 404)
    t.same((await app.inject(`${base}/checkpoints`)).json().items, [])
    t.equal((await listed()).length, 0, 'the object removed')
    t.same((await app.inject('/v1/projects/cp/threads')).json().items, [], 'the thread unlisted')
    t.equal((await app.inject({ method: 'DELETE', url: base })).statusCode, 204, 'deleting again is not an error')
  })
})
