// Issue 10, "Done when" (HTTP contract of /work/design-exactly-once.md): a write whose answer was lost on the way
// (dropped, turned into a 502, cut in half) or whose request was cut on the way, repeated directly with the same
// Idempotency-Key, has exactly one stored effect; the repeat gets the stored answer byte for byte with
// `Idempotent-Replayed: true`, or, when the first never arrived whole, runs once. Plus: one key sent ten times at
// once, one key on two different requests, malformed keys.
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { QueryCommand } from '@aws-sdk/lib-dynamodb'
import { listen, startTestAws } from '../helper.js'
import { clients, mp4Bytes, sha256 } from '../support/render-fixtures.js'
import { FAULT_MODES, startFaultProxy, type Exchange, type FaultMode, type RequestInfo } from '../support/faults/fault-proxy.js'
import { assertStoreConsistent, listAll } from '../support/store-check.js'

const PROJECT = 'eo'
const testAws = await startTestAws(t)
// Two replicas on one table and bucket: repeats go to the other one, as a load balancer may send them.
const first = await listen(t, { aws: testAws })
const second = await listen(t, { aws: testAws })
const proxy = await startFaultProxy(first.baseUrl, { t })
const aws = clients(t, testAws)
const config = testAws.config

interface WriteRequest { method: string, path: string, headers: Record<string, string>, body?: Buffer }
interface Answer { status: number, headers: Headers, body: Buffer }

const videoPath = (videoId: string): string => `/v1/projects/${PROJECT}/videos/${videoId}`
const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value))
const newKey = (label: string): string => `eo-${label}-${randomUUID()}`

async function send (baseUrl: string, request: WriteRequest, key?: string): Promise<Answer> {
  const response = await fetch(`${baseUrl}${request.path}`, {
    method: request.method,
    headers: { ...request.headers, ...(key === undefined ? {} : { 'idempotency-key': key }) },
    body: request.body as Uint8Array<ArrayBuffer> | undefined
  })
  return { status: response.status, headers: response.headers, body: Buffer.from(await response.arrayBuffer()) }
}

const isBusy = (answer: Answer): boolean => answer.status === 409 && answer.headers.get('retry-after') !== null && answer.headers.get('idempotent-replayed') === null

/**
 * Repeats a keyed request directly until it is not "still running" (409 + Retry-After), honouring Retry-After;
 * bounded: a key whose first execution died must come free within its lease (IDEMPOTENCY_LEASE_MS, 30 s by default).
 */
async function repeat (request: WriteRequest, key: string, baseUrl = second.baseUrl, maxWaitMs = 45_000): Promise<Answer> {
  const deadline = Date.now() + maxWaitMs
  for (;;) {
    const answer = await send(baseUrl, request, key)
    if (!isBusy(answer) || Date.now() > deadline) return answer
    await sleep(Math.min(5, Math.max(0.2, Number(answer.headers.get('retry-after')))) * 1000)
  }
}

/** Everything stored for one video: its items (without lease bookkeeping) and its objects in both buckets. */
async function snapshot (videoId: string): Promise<{ items: unknown[], objects: string[] }> {
  const { Items = [] } = await aws.ddb.send(new QueryCommand({
    TableName: config.table,
    KeyConditionExpression: 'pk = :pk',
    ExpressionAttributeValues: { ':pk': `VIDEO#${PROJECT}#${videoId}` },
    ConsistentRead: true
  }))
  const items = Items.map((item) => Object.fromEntries(Object.entries(item).filter(([name]) => !/^lease/i.test(name)).sort(([a], [b]) => a.localeCompare(b))))
  const objects = [
    ...(await listAll(aws, config.videoBucket, `videos/${PROJECT}/${videoId}/`)),
    ...(await listAll(aws, config.videoBucket, `staging/${PROJECT}/${videoId}/`)),
    ...(await listAll(aws, config.codeBucket, `code/${PROJECT}/${videoId}/`))
  ].map((object) => `${object.key} ${object.size}`).sort()
  return { items, objects }
}

type Snapshot = Awaited<ReturnType<typeof snapshot>>
const count = (shot: Snapshot, prefix: string): number => shot.items.filter((item) => String((item as { sk: string }).sk).startsWith(prefix)).length
const itemOf = (shot: Snapshot, prefix: string): Record<string, unknown> | undefined => shot.items.find((item) => String((item as { sk: string }).sk).startsWith(prefix)) as Record<string, unknown> | undefined

interface RouteCase {
  name: string
  /** the faults this write is tried under */
  modes: readonly FaultMode[]
  /** the status the write answers when it runs */
  status: number
  /** false for a write that is refused when it runs (its answer is still recorded and replayed) */
  changes?: boolean
  /** sets up the video (without keys) and returns the keyed write to test */
  prepare: (videoId: string) => Promise<WriteRequest>
  /** what "exactly one effect" means for this write, beyond "the repeat changed nothing" */
  once: (t: Test, shot: Snapshot, answer: Answer) => void
}

const mp4 = mp4Bytes(256 * 1024)

async function putVideo (videoId: string): Promise<string> {
  const answer = await send(first.baseUrl, { method: 'PUT', path: videoPath(videoId), headers: { 'content-type': 'application/json' }, body: json({ title: 'prepared' }) })
  if (answer.status !== 201) throw new Error(`prepare: PUT video answered ${answer.status} ${String(answer.body)}`)
  return answer.headers.get('etag') ?? ''
}

async function postCode (videoId: string, content: string): Promise<void> {
  const answer = await send(first.baseUrl, { method: 'POST', path: `${videoPath(videoId)}/code`, headers: { 'content-type': 'application/json' }, body: json({ content }) })
  if (answer.status !== 201) throw new Error(`prepare: POST code answered ${answer.status} ${String(answer.body)}`)
}

async function postRender (videoId: string): Promise<void> {
  const answer = await send(first.baseUrl, { method: 'POST', path: `${videoPath(videoId)}/renders`, headers: { 'content-type': 'video/mp4' }, body: mp4Bytes(64 * 1024) })
  if (answer.status !== 201) throw new Error(`prepare: POST render answered ${answer.status} ${String(answer.body)}`)
}

async function openUpload (videoId: string, bytes: Buffer): Promise<{ uploadId: string, url: string, headers: Record<string, string> }> {
  const answer = await send(first.baseUrl, { method: 'POST', path: `${videoPath(videoId)}/uploads`, headers: { 'content-type': 'application/json' }, body: json({ sizeBytes: bytes.length, contentType: 'video/mp4', sha256: sha256(bytes) }) })
  if (answer.status !== 201) throw new Error(`prepare: open upload answered ${answer.status} ${String(answer.body)}`)
  return JSON.parse(String(answer.body)) as { uploadId: string, url: string, headers: Record<string, string> }
}

const ROUTES: RouteCase[] = [
  {
    name: 'PUT video',
    modes: FAULT_MODES,
    status: 201,
    prepare: async (videoId) => ({ method: 'PUT', path: videoPath(videoId), headers: { 'content-type': 'application/json' }, body: json({ title: 'made once', tags: ['eo'] }) }),
    once: (t, shot) => { t.match(itemOf(shot, 'VIDEO'), { title: 'made once' }, 'the video exists') }
  },
  {
    name: 'PATCH video with If-Match',
    modes: FAULT_MODES,
    status: 200,
    prepare: async (videoId) => {
      const etag = await putVideo(videoId)
      return { method: 'PATCH', path: videoPath(videoId), headers: { 'content-type': 'application/json', 'if-match': etag }, body: json({ title: 'patched once' }) }
    },
    once: (t, shot) => { t.match(itemOf(shot, 'VIDEO'), { title: 'patched once' }, 'patched') }
  },
  {
    name: 'POST code',
    modes: FAULT_MODES,
    status: 201,
    prepare: async (videoId) => ({ method: 'POST', path: `${videoPath(videoId)}/code`, headers: { 'content-type': 'application/json' }, body: json({ content: `print("${videoId}")\n` }) }),
    once: (t, shot) => { t.equal(count(shot, 'CODE#'), 1, 'one code version') }
  },
  {
    name: 'POST code with baseVersion',
    modes: FAULT_MODES,
    status: 201,
    prepare: async (videoId) => {
      await postCode(videoId, 'v1\n')
      return { method: 'POST', path: `${videoPath(videoId)}/code`, headers: { 'content-type': 'application/json' }, body: json({ content: 'v2 on v1\n', baseVersion: 1 }) }
    },
    once: (t, shot) => { t.equal(count(shot, 'CODE#'), 2, 'v1 and one edit on it') }
  },
  {
    name: 'POST renders (raw)',
    modes: FAULT_MODES,
    status: 201,
    prepare: async (videoId) => ({ method: 'POST', path: `${videoPath(videoId)}/renders`, headers: { 'content-type': 'video/mp4', 'x-title': videoId }, body: mp4 }),
    once: (t, shot) => {
      t.equal(count(shot, 'RENDER#'), 1, 'one render version')
      t.equal(shot.objects.filter((object) => object.startsWith('videos/')).length, 1, 'one render object')
    }
  },
  {
    name: 'PUT scene',
    modes: FAULT_MODES,
    status: 201,
    prepare: async (videoId) => {
      await postRender(videoId)
      return { method: 'PUT', path: `${videoPath(videoId)}/renders/1/scenes/1`, headers: { 'content-type': 'video/mp4' }, body: mp4 }
    },
    once: (t, shot) => {
      t.equal(count(shot, 'SCENE#') + shot.items.filter((item) => /#SCENE#/.test(String((item as { sk: string }).sk))).length, 1, 'one scene item')
      t.equal(shot.objects.filter((object) => object.startsWith('videos/')).length, 2, 'the render and one scene object')
    }
  },
  {
    name: 'POST uploads (open a direct upload)',
    modes: FAULT_MODES,
    status: 201,
    prepare: async (videoId) => ({ method: 'POST', path: `${videoPath(videoId)}/uploads`, headers: { 'content-type': 'application/json' }, body: json({ sizeBytes: mp4.length, contentType: 'video/mp4', sha256: sha256(mp4) }) }),
    once: (t, shot) => { t.equal(count(shot, 'UPLOAD#'), 1, 'one upload session') }
  },
  {
    name: 'POST complete',
    modes: FAULT_MODES,
    status: 201,
    prepare: async (videoId) => {
      const plan = await openUpload(videoId, mp4)
      const put = await fetch(plan.url, { method: 'PUT', headers: plan.headers, body: mp4 as Uint8Array<ArrayBuffer> })
      if (put.status !== 200) throw new Error(`prepare: presigned PUT answered ${put.status}`)
      // An explicit (empty) JSON body, so cut-request has bytes to cut.
      return { method: 'POST', path: `${videoPath(videoId)}/uploads/${plan.uploadId}/complete`, headers: { 'content-type': 'application/json' }, body: json({}) }
    },
    once: (t, shot) => {
      t.equal(count(shot, 'RENDER#'), 1, 'one render version')
      t.match(itemOf(shot, 'UPLOAD#'), { status: 'completed', renderVersion: 1 }, 'the session is completed')
    }
  },
  {
    name: 'DELETE upload',
    modes: FAULT_MODES,
    status: 204,
    prepare: async (videoId) => {
      const plan = await openUpload(videoId, mp4)
      return { method: 'DELETE', path: `${videoPath(videoId)}/uploads/${plan.uploadId}`, headers: {} }
    },
    once: (t, shot) => { t.match(itemOf(shot, 'UPLOAD#'), { status: 'aborted' }, 'the session is aborted') }
  },
  {
    // Local S3 has no Object Lock, so the lock is a 409: a 4xx is an answer like any other, recorded and replayed.
    name: 'PUT lock',
    modes: FAULT_MODES,
    status: 409,
    changes: false,
    prepare: async (videoId) => {
      await postCode(videoId, 'lock me\n')
      return { method: 'PUT', path: `${videoPath(videoId)}/code/versions/1/lock`, headers: { 'content-type': 'application/json' }, body: json({ legalHold: true }) }
    },
    once: (t, shot) => { t.equal(count(shot, 'CODE#'), 1, 'still one code version') }
  }
]

const RECORDED_HEADERS = ['content-type', 'location', 'etag', 'x-code-version']

/** The repeat is the first answer, replayed: same status, recorded headers and body bytes, marked as a replay. */
function isReplayOf (t: Test, answer: Answer, original: { status: number, headers: Record<string, string | string[] | undefined> | Headers, body: Buffer }, label: string): void {
  t.equal(answer.status, original.status, `${label}: same status`)
  t.equal(answer.headers.get('idempotent-replayed'), 'true', `${label}: Idempotent-Replayed: true`)
  const header = (name: string): string | null => original.headers instanceof Headers ? original.headers.get(name) : (original.headers[name] === undefined ? null : String(original.headers[name]))
  for (const name of RECORDED_HEADERS) t.equal(answer.headers.get(name), header(name), `${label}: same ${name}`)
  t.ok(answer.body.equals(original.body), `${label}: same body, byte for byte${answer.body.equals(original.body) ? '' : ` (${String(answer.body).slice(0, 200)} vs ${String(original.body).slice(0, 200)})`}`)
}

const SHORT: Record<FaultMode, string> = { pass: 'pass', 'drop-answer': 'drop', 'bad-gateway-after': 'b502', 'cut-request': 'cutreq', 'cut-response': 'cutres' }

for (const route of ROUTES) {
  t.test(route.name, async (t) => {
    for (const mode of route.modes) {
      await t.test(mode, async (t) => {
        const videoId = `${route.name.replace(/[^A-Za-z]+/g, '-').toLowerCase().replace(/^-|-$/g, '')}-${SHORT[mode]}`
        const request = await route.prepare(videoId)
        const before = await snapshot(videoId)
        const key = newKey(SHORT[mode])

        proxy.next({ mode, match: (info: RequestInfo) => info.method === request.method && info.path === request.path })
        let firstAnswer: Answer | undefined
        let firstError: Error | undefined
        try {
          firstAnswer = await send(proxy.url, request, key)
        } catch (error) {
          firstError = error as Error
        }
        const exchange: Exchange = proxy.exchanges[proxy.exchanges.length - 1]
        // Bounded: the proxy is done once the service answered (or the cut went through).
        t.ok(await Promise.race([exchange.finished.then(() => true), sleep(60_000).then(() => false)]), 'the proxy finished the exchange')
        t.equal(exchange.mode, mode, 'the proxy applied the fault')
        if (mode === 'bad-gateway-after') t.equal(firstAnswer?.status, 502, 'the client got a 502')
        else t.ok(firstError !== undefined, `the client got no answer (${firstError?.message ?? `got ${firstAnswer?.status}`})`)

        if (mode === 'cut-request') {
          t.equal(exchange.upstreamStatus, undefined, 'the service never answered the cut request')
          t.same(await snapshot(videoId), before, 'the cut request stored nothing')
          const startedAt = Date.now()
          const retried = await repeat(request, key)
          // The contract only says "409 while the first is still running"; a cut request is not running any more, so
          // a long wait here means its key stayed held until its lease lapsed (IDEMPOTENCY_LEASE_MS).
          t.comment(`${route.name}/cut-request: the repeat ran after ${Date.now() - startedAt} ms`)
          t.equal(retried.status, route.status, `the repeat runs (${String(retried.body).slice(0, 200)})`)
          t.equal(retried.headers.get('idempotent-replayed'), null, 'it is not a replay: nothing was recorded')
          const after = await snapshot(videoId)
          route.once(t, after, retried)
          const again = await send(first.baseUrl, request, key)
          isReplayOf(t, again, retried, 'a third send')
          t.same(await snapshot(videoId), after, 'the third send stored nothing')
          return
        }

        t.equal(exchange.upstreamStatus, route.status, `the service answered ${route.status} (${String(exchange.upstreamBody).slice(0, 200)})`)
        const afterFirst = await snapshot(videoId)
        if (route.changes === false) t.same(afterFirst, before, 'the first request was refused: nothing changed')
        else t.notSame(afterFirst, before, 'the first request took effect')
        route.once(t, afterFirst, { status: exchange.upstreamStatus ?? 0, headers: new Headers(), body: exchange.upstreamBody ?? Buffer.alloc(0) })
        const retried = await repeat(request, key)
        isReplayOf(t, retried, { status: exchange.upstreamStatus ?? 0, headers: exchange.upstreamHeaders ?? {}, body: exchange.upstreamBody ?? Buffer.alloc(0) }, 'the repeat')
        t.same(await snapshot(videoId), afterFirst, 'the repeat stored nothing: exactly one effect')
      })
    }
  })
}

t.test('one key sent 10 times at once: one version; each answer the stored one or 409 + Retry-After; a 409 repeated later gets the stored answer', async (t) => {
  const cases: Array<{ name: string, videoId: string, request: WriteRequest, prefix: string }> = [
    { name: 'POST code', videoId: 'burst-code', request: { method: 'POST', path: `${videoPath('burst-code')}/code`, headers: { 'content-type': 'application/json' }, body: json({ content: 'burst\n' }) }, prefix: 'CODE#' },
    { name: 'POST renders', videoId: 'burst-render', request: { method: 'POST', path: `${videoPath('burst-render')}/renders`, headers: { 'content-type': 'video/mp4' }, body: mp4Bytes(64 * 1024) }, prefix: 'RENDER#' }
  ]
  for (const { name, videoId, request, prefix } of cases) {
    await t.test(name, async (t) => {
      const key = newKey('burst')
      const answers = await Promise.all(Array.from({ length: 10 }, async (_, index) => await send(index % 2 === 0 ? first.baseUrl : second.baseUrl, request, key)))
      const ran = answers.filter((answer) => answer.status === 201 && answer.headers.get('idempotent-replayed') === null)
      t.equal(ran.length, 1, `exactly one ran (statuses ${answers.map((answer) => answer.status).join(',')})`)
      const stored = ran[0] ?? answers.find((answer) => answer.status === 201)
      if (stored === undefined) { t.fail('no 201 at all'); return }
      for (const [index, answer] of answers.entries()) {
        if (answer === stored) continue
        if (isBusy(answer)) {
          t.match(answer.headers.get('content-type'), /^application\/problem\+json/, `#${index}: 409 is problem+json`)
          t.ok(Number(answer.headers.get('retry-after')) >= 0, `#${index}: Retry-After in seconds`)
        } else {
          isReplayOf(t, answer, stored, `#${index}`)
        }
      }
      // Each 409'd request, repeated once its Retry-After has passed, gets the stored answer.
      for (const [index] of answers.filter(isBusy).entries()) isReplayOf(t, await repeat(request, key), stored, `a 409'd request (#${index}), repeated`)
      t.equal(count(await snapshot(videoId), prefix), 1, 'exactly one version')
    })
  }
})

t.test('same key, different request: 422 problem+json, and nothing stored by it', async (t) => {
  const key = newKey('mismatch')
  const code = (content: string): WriteRequest => ({ method: 'POST', path: `${videoPath('mismatch')}/code`, headers: { 'content-type': 'application/json' }, body: json({ content }) })
  t.equal((await send(first.baseUrl, code('one\n'), key)).status, 201)
  const other = await send(second.baseUrl, code('two\n'), key)
  t.equal(other.status, 422, 'a different body under the same key')
  t.match(other.headers.get('content-type'), /^application\/problem\+json/)
  t.equal(count(await snapshot('mismatch'), 'CODE#'), 1, 'still one version')
  const raw = (title: string): WriteRequest => ({ method: 'POST', path: `${videoPath('mismatch-render')}/renders`, headers: { 'content-type': 'video/mp4', 'x-title': title }, body: mp4 })
  const renderKey = newKey('mismatch-render')
  t.equal((await send(first.baseUrl, raw('first'), renderKey)).status, 201)
  const otherTitle = await send(second.baseUrl, raw('second'), renderKey)
  t.equal(otherTitle.status, 422, 'an upload with other metadata headers under the same key')
  t.equal(count(await snapshot('mismatch-render'), 'RENDER#'), 1, 'still one render')
  t.equal((await send(first.baseUrl, code('one\n'), key)).headers.get('idempotent-replayed'), 'true', 'the original request still replays')
})

t.test('malformed Idempotency-Key: 400 problem+json and nothing stored; a quoted key is accepted', async (t) => {
  const malformed = ['', 'has space', 'x'.repeat(256), 'caf\u00e9']
  const requests: Array<[string, (videoId: string) => WriteRequest]> = [
    ['POST code', (videoId) => ({ method: 'POST', path: `${videoPath(videoId)}/code`, headers: { 'content-type': 'application/json' }, body: json({ content: 'x\n' }) })],
    ['PUT video', (videoId) => ({ method: 'PUT', path: videoPath(videoId), headers: { 'content-type': 'application/json' }, body: json({ title: 'x' }) })],
    ['POST renders', (videoId) => ({ method: 'POST', path: `${videoPath(videoId)}/renders`, headers: { 'content-type': 'video/mp4' }, body: mp4Bytes(32 * 1024) })]
  ]
  for (const [name, make] of requests) {
    for (const [index, key] of malformed.entries()) {
      const videoId = `badkey-${name.replace(/\W+/g, '-').toLowerCase()}-${index}`
      const answer = await send(first.baseUrl, make(videoId), key)
      t.equal(answer.status, 400, `${name} with ${JSON.stringify(key.length > 20 ? `${key.slice(0, 10)}… (${key.length} chars)` : key)}: 400`)
      t.match(answer.headers.get('content-type'), /^application\/problem\+json/)
      t.same(await snapshot(videoId), { items: [], objects: [] }, 'nothing stored')
    }
  }
  t.equal((await send(first.baseUrl, requests[0][1]('quoted-key'), `"${randomUUID()}"`)).status, 201, 'a key in double quotes (sf-string) is accepted')
  t.equal((await send(first.baseUrl, requests[0][1]('longest-key'), 'k'.repeat(255))).status, 201, '255 characters are accepted')
})

t.test('the store after every fault: no holes, no shared commit token, every object as recorded, reconcile leaves nothing', async (t) => {
  await proxy.idle()
  const report = proxy.report()
  t.ok(report.swallowed.length >= ROUTES.length * 3, `the proxy swallowed ${report.swallowed.length} answers (${JSON.stringify(report.counts)})`)
  // Every fault here struck after the service had finished or before it had the whole request: no write was in doubt.
  await assertStoreConsistent(t, aws, config, { videos: (pk) => pk.startsWith(`VIDEO#${PROJECT}#`), maxLeftovers: 0 })
})
