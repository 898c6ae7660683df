// Issue 10, "Done when" (/work/design-exactly-once.md): stalls, not crashes. Two replicas on one table and bucket,
// 20 code writers and 20 render writers with Idempotency-Keys spread over both, while DynamoDB (then S3) is frozen
// with SIGSTOP mid-run; every writer repeats its write with its key until a 2xx or it gives up. Afterwards: no holes,
// no shared commit token, every 2xx stored once, every other write absent or answered by a repeat with what was
// stored; reconcile clean. And a replica SIGKILLed mid-upload: its session reads failed/abandoned within a lease, an
// SSE watcher gets that as its terminal event, and the next upload to the video is not held up.
//
// Default: 5 s stalls (about a minute for the file). EXACTLY_ONCE_LONG_STALLS=1 adds 20 s and 40 s stalls of each.
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { listen, startTestAws, type TestAws } from '../helper.js'
import { clients, mp4Bytes, sha256 } from '../support/render-fixtures.js'
import { freeze } from '../support/faults/freeze.js'
import { assertStoreConsistent, scanAll } from '../support/store-check.js'

const LONG = process.env.EXACTLY_ONCE_LONG_STALLS === '1'
const STALLS_MS = LONG ? [5_000, 20_000, 40_000] : [5_000]
const WRITERS = 20
const MIN_WRITES = 2 // per writer, and then on until the stall is over
const MAX_WRITES = 10
const LEASE_MS = 3000

interface Answer { status: number, headers: Headers, body: Buffer }
interface WriteRequest { method: string, path: string, headers: Record<string, string>, body: Buffer }
interface Write {
  kind: 'code' | 'render'
  label: string
  key: string
  request: WriteRequest
  /** sha256 the stored version must carry (each write's content is unique) */
  sha256: string
  attempts: Array<{ replica: number, status?: number, error?: string, replayed: boolean, ms: number }>
  success?: Answer
  /** the last non-2xx answer, when the writer stopped without a 2xx */
  lastAnswer?: Answer
  gaveUp: boolean
}

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value))

async function send (baseUrl: string, request: WriteRequest, key: string, timeoutMs: number): Promise<Answer> {
  const response = await fetch(`${baseUrl}${request.path}`, {
    method: request.method,
    headers: { ...request.headers, 'idempotency-key': key },
    body: request.body as Uint8Array<ArrayBuffer>,
    signal: AbortSignal.timeout(timeoutMs)
  })
  return { status: response.status, headers: response.headers, body: Buffer.from(await response.arrayBuffer()) }
}

/** Worth repeating with the same key: no answer, "still running", overload, or a dependency problem. */
const retryable = (answer: Answer): boolean => answer.status === 409 ? answer.headers.get('retry-after') !== null : answer.status === 429 || answer.status >= 500

/** One logical write: repeated with its key, alternating replicas, until a 2xx, a final answer, or the deadline. */
async function perform (write: Write, replicas: string[], first: number, deadlineMs: number, attemptTimeoutMs: number): Promise<void> {
  const deadline = Date.now() + deadlineMs
  for (let attempt = 0; attempt < 200; attempt++) {
    const replica = (first + attempt) % replicas.length
    const startedAt = Date.now()
    let answer: Answer | undefined
    try {
      answer = await send(replicas[replica], write.request, write.key, attemptTimeoutMs)
      write.attempts.push({ replica, status: answer.status, replayed: answer.headers.get('idempotent-replayed') === 'true', ms: Date.now() - startedAt })
    } catch (error) {
      write.attempts.push({ replica, error: (error as Error).message, replayed: false, ms: Date.now() - startedAt })
    }
    if (answer !== undefined && answer.status >= 200 && answer.status < 300) { write.success = answer; return }
    if (answer !== undefined && !retryable(answer)) { write.lastAnswer = answer; return }
    if (answer !== undefined) write.lastAnswer = answer
    if (Date.now() > deadline) break
    const retryAfter = Number(answer?.headers.get('retry-after') ?? Number.NaN)
    await sleep(Number.isFinite(retryAfter) ? Math.min(2000, Math.max(100, retryAfter * 1000)) : Math.min(2000, 100 * 2 ** Math.min(attempt, 4)))
  }
  write.gaveUp = true
}

/** Resolves once `count` writes have succeeded. */
function successCounter (count: number): { note: () => void, reached: Promise<void> } {
  let seen = 0
  let done: () => void = () => {}
  const reached = new Promise<void>((resolve) => { done = resolve })
  return { note: () => { if (++seen >= count) done() }, reached }
}

interface StallRun { writes: Write[], frozenMs: number, runMs: number }

/**
 * 20 code writers (two videos) and 20 render writers (two videos) on both replicas; once a first batch has landed,
 * `pid` is frozen for `stallMs` while they go on. Each writer makes MIN_WRITES writes and then goes on until the stall
 * is over, so writes are in flight when it begins, while it lasts and when it ends.
 */
async function stallRun (project: string, replicas: string[], pid: number | undefined, stallMs: number, t: Test): Promise<StallRun> {
  const startedAt = Date.now()
  const counter = successCounter(WRITERS / 2)
  let stallOver = false
  const writes: Write[] = []
  const renderSize = 48 * 1024
  const deadlineMs = stallMs + 60_000
  // A client that waits this long gives up on the attempt and repeats it with its key (as agents do).
  const attemptTimeoutMs = stallMs + 15_000
  const writer = async (kind: 'code' | 'render', index: number): Promise<void> => {
    const videoId = `${kind}-${index % 2}`
    for (let n = 0; n < MAX_WRITES && (n < MIN_WRITES || !stallOver); n++) {
      const label = `${kind}-w${index}-n${n}`
      let request: WriteRequest
      let digest: string
      if (kind === 'code') {
        const content = `# ${label} ${randomUUID()}\nprint(${n})\n`
        request = { method: 'POST', path: `/v1/projects/${project}/videos/${videoId}/code`, headers: { 'content-type': 'application/json' }, body: json({ content }) }
        digest = sha256(Buffer.from(content))
      } else {
        const bytes = mp4Bytes(renderSize)
        request = { method: 'POST', path: `/v1/projects/${project}/videos/${videoId}/renders`, headers: { 'content-type': 'video/mp4', 'x-title': label }, body: bytes }
        digest = sha256(bytes)
      }
      const write: Write = { kind, label, key: `stall-${label}-${randomUUID()}`, request, sha256: digest, attempts: [], gaveUp: false }
      writes.push(write)
      await perform(write, replicas, index, deadlineMs, attemptTimeoutMs)
      if (write.success !== undefined) counter.note()
      else if (!stallOver) await sleep(50) // a writer that stopped on a final answer does not spin
    }
  }
  const running = Promise.all([
    ...Array.from({ length: WRITERS }, async (_, index) => await writer('code', index)),
    ...Array.from({ length: WRITERS }, async (_, index) => await writer('render', index))
  ])
  // Bounded: writers that all stop before ten successes end the wait too (and the mid-run check below then fails).
  await Promise.race([counter.reached, running])
  const { frozenMs } = await freeze(pid, stallMs, t)
  stallOver = true
  await running
  return { writes, frozenMs, runMs: Date.now() - startedAt }
}

/** The checks after a run: the store, then each write against it. */
async function checkRun (t: Test, testAws: TestAws, project: string, replicas: string[], { writes, frozenMs, runMs }: StallRun): Promise<void> {
  const aws = clients(t, testAws)
  const succeeded = writes.filter((write) => write.success !== undefined)
  const attempts = writes.reduce((sum, write) => sum + write.attempts.length, 0)
  const statuses: Record<string, number> = {}
  for (const write of writes) for (const attempt of write.attempts) statuses[attempt.status ?? 'no answer'] = (statuses[attempt.status ?? 'no answer'] ?? 0) + 1
  const slow = writes.flatMap((write) => write.attempts.filter((attempt) => attempt.ms >= 15_000).map((attempt) => `${write.label}@${attempt.replica}: ${attempt.status ?? attempt.error ?? ''} after ${attempt.ms} ms`))
  if (slow.length > 0) t.comment(`${slow.length} attempts of 15 s or more, e.g. ${slow.slice(0, 12).join('; ')}`)
  t.comment(`${writes.length} writes (${succeeded.length} 2xx, ${writes.filter((write) => write.gaveUp).length} gave up), ${attempts} attempts ${JSON.stringify(statuses)}, frozen ${frozenMs} ms, run ${runMs} ms`)
  // Mid-run: some attempt was still waiting when the stall was half over (a repeat, or one answer that long in coming).
  const slowest = Math.max(...writes.flatMap((write) => write.attempts.map((attempt) => attempt.ms)))
  t.ok(writes.some((write) => write.attempts.length > 1) || slowest >= frozenMs / 2, `the stall struck writes in flight (slowest attempt ${slowest} ms)`)
  t.equal(statuses['500'] ?? 0, 0, 'no 500: a stalled dependency is a 503, never an internal error')

  const checkStartedAt = Date.now()
  const check = await assertStoreConsistent(t, aws, testAws.config, { videos: (pk) => pk.startsWith(`VIDEO#${project}#`) })
  t.ok(check.versionItems.length > 0, 'versions were stored')
  t.comment(`store check and reconcile: ${Date.now() - checkStartedAt} ms; reconcile removed ${check.reconcile?.leftovers ?? 0} leftovers of writes in doubt`)

  // Each write's content is unique, so its stored effects are the version items carrying its sha256.
  const items = (await scanAll(aws, testAws.config.table)).filter((item) => String(item.pk).startsWith(`VIDEO#${project}#`) && /^(CODE|RENDER)#\d{9}$/.test(String(item.sk)))
  const bySha = new Map<string, Array<Record<string, unknown>>>()
  for (const item of items) bySha.set(String(item.sha256), [...(bySha.get(String(item.sha256)) ?? []), item])
  const duplicated = writes.filter((write) => (bySha.get(write.sha256)?.length ?? 0) > 1).map((write) => write.label)
  t.same(duplicated, [], 'no write is stored twice')
  const lost = succeeded.filter((write) => (bySha.get(write.sha256)?.length ?? 0) !== 1).map((write) => write.label)
  t.same(lost, [], 'every 2xx is stored')
  const wrongVersion = succeeded.filter((write) => {
    const item = bySha.get(write.sha256)?.[0]
    return item !== undefined && (JSON.parse(String(write.success?.body)) as { version?: number }).version !== item.version
  }).map((write) => write.label)
  t.same(wrongVersion, [], 'every 2xx names the version that holds its content')
  t.equal(items.length, new Set(items.map((item) => String(item.sha256))).size, 'no stored version without a write of its own')

  // A repeat now, when nothing is stalled: a 2xx'd write gets its stored answer; one that never got a 2xx is either
  // absent (and stays so until repeated) or gets the version that holds it, stored once.
  const notReplayed: string[] = []
  const otherwise: string[] = []
  const finalRefusals: string[] = []
  const repeatOne = async (write: Write, index: number): Promise<void> => {
    const stored = bySha.get(write.sha256)?.[0]
    const refused = write.success === undefined && write.lastAnswer !== undefined && !retryable(write.lastAnswer) ? write.lastAnswer : undefined
    if (refused !== undefined && stored === undefined) {
      // Answered otherwise, with an answer the service records (a 4xx): the repeat gets that answer again.
      const again = await send(replicas[index % replicas.length], write.request, write.key, 30_000)
      if (again.status !== refused.status || again.headers.get('idempotent-replayed') !== 'true' || !again.body.equals(refused.body)) {
        finalRefusals.push(`${write.label}: first ${refused.status}, the repeat ${again.status} replayed=${again.headers.get('idempotent-replayed')}`)
      }
      return
    }
    if (write.success === undefined && stored === undefined) return
    const again = await send(replicas[index % replicas.length], write.request, write.key, 30_000)
    if (write.success !== undefined) {
      if (again.headers.get('idempotent-replayed') !== 'true' || again.status !== write.success.status || !again.body.equals(write.success.body)) {
        notReplayed.push(`${write.label}: ${again.status} replayed=${again.headers.get('idempotent-replayed')} ${String(again.body).slice(0, 120)}`)
      }
    } else {
      const version = again.status < 300 ? (JSON.parse(String(again.body)) as { version?: number }).version : undefined
      if (version !== stored?.version) otherwise.push(`${write.label}: stored as ${String(stored?.version)}, the repeat answered ${again.status} ${String(again.body).slice(0, 120)}`)
    }
  }
  for (let index = 0; index < writes.length; index += 8) await Promise.all(writes.slice(index, index + 8).map(async (write, offset) => { await repeatOne(write, index + offset) }))
  t.same(notReplayed, [], 'every 2xx write, repeated, gets its stored answer byte for byte')
  t.same(finalRefusals, [], 'every write refused with a 4xx, repeated, gets that answer again')
  t.same(otherwise, [], 'every write stored without a 2xx, repeated, answers with the version that holds it')
  const afterRepeats = (await scanAll(aws, testAws.config.table)).filter((item) => String(item.pk).startsWith(`VIDEO#${project}#`) && /^(CODE|RENDER)#\d{9}$/.test(String(item.sk)))
  t.equal(afterRepeats.length, items.length, 'the repeats stored nothing')
  t.comment(`checks: ${Date.now() - checkStartedAt} ms`)
}

// One pair of emulators for the file (each scenario writes its own project): starting them is the slow part.
const testAws = await startTestAws(t)

for (const dependency of ['dynamodb', 's3'] as const) {
  for (const stallMs of STALLS_MS) {
    t.test(`${dependency === 'dynamodb' ? 'DynamoDB' : 'S3'} frozen ${stallMs / 1000} s under 40 keyed writers on two replicas`, async (t) => {
      const replicas = [(await listen(t, { aws: testAws })).baseUrl, (await listen(t, { aws: testAws })).baseUrl]
      const project = `stall-${dependency}-${stallMs / 1000}`
      const run = await stallRun(project, replicas, testAws.embedded[dependency].pid, stallMs, t)
      await checkRun(t, testAws, project, replicas, run)
    })
  }
}

// ---------------------------------------------------------------------------------------------------------------
// A replica that dies mid-upload.

const serverEntry = new URL('../../src/server.ts', import.meta.url).pathname

/** The real entry point as a child process, on the test's emulators (aws mode: endpoints, buckets and table given). */
async function startReplicaProcess (t: Test, testAws: TestAws): Promise<{ child: ChildProcess, baseUrl: string, output: () => string }> {
  const { config, embedded } = testAws
  const child = spawn(process.execPath, [...process.execArgv, serverEntry], {
    env: {
      ...process.env,
      AWS_REGION: config.region,
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      AWS_ENDPOINT_URL_S3: embedded.s3.endpoint,
      AWS_ENDPOINT_URL_DYNAMODB: embedded.dynamodb.endpoint,
      AWS_S3_VIDEO_BUCKET: config.videoBucket,
      AWS_S3_CODE_BUCKET: config.codeBucket,
      AWS_DYNAMODB_TABLE: config.table,
      ALLOW_ANONYMOUS: 'true',
      UPLOAD_LEASE_MS: String(LEASE_MS),
      IDEMPOTENCY_LEASE_MS: String(LEASE_MS),
      OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0',
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_FORMAT: 'json',
      LOG_LEVEL: 'info'
    },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let output = ''
  child.stderr?.on('data', (chunk) => { output += String(chunk) })
  const baseUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`the replica did not start within 120 s:\n${output}`)) }, 120_000)
    let pending = ''
    child.stdout?.on('data', (chunk) => {
      output += String(chunk)
      pending += String(chunk)
      const lines = pending.split('\n')
      pending = lines.pop() ?? ''
      for (const line of lines) {
        const listening = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(line)
        if (listening !== null) { clearTimeout(timer); resolve(listening[1]) }
      }
    })
    child.once('exit', (code, signal) => { clearTimeout(timer); reject(new Error(`the replica exited (${code ?? signal}) before listening:\n${output}`)) })
  })
  return { child, baseUrl, output: () => output }
}

interface SseEvent { event: string, data: Record<string, unknown>, at: number }

/** Reads an SSE stream, delivering events as they come; `ended` resolves when the server closes it. */
async function watch (url: string): Promise<{ next: (timeoutMs?: number) => Promise<SseEvent | undefined>, ended: Promise<void>, close: () => void }> {
  const controller = new AbortController()
  const response = await fetch(url, { headers: { accept: 'text/event-stream' }, signal: controller.signal })
  if (response.status !== 200 || response.body === null) throw new Error(`SSE answered ${response.status}`)
  const queue: SseEvent[] = []
  const waiting: Array<(event: SseEvent | undefined) => void> = []
  let done = false
  const deliver = (event: SseEvent | undefined): void => {
    const waiter = waiting.shift()
    if (waiter !== undefined) waiter(event)
    else if (event !== undefined) queue.push(event)
  }
  const ended = (async () => {
    const decoder = new TextDecoder()
    let buffer = ''
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true })
        let end: number
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const event = /^event: (.*)$/m.exec(block)?.[1]
          const data = /^data: (.*)$/m.exec(block)?.[1]
          if (event !== undefined && data !== undefined) deliver({ event, data: JSON.parse(data) as Record<string, unknown>, at: Date.now() })
        }
      }
    } catch {
      // aborted by close()
    }
    done = true
    while (waiting.length > 0) deliver(undefined)
  })()
  return {
    // undefined when the stream ended, or nothing came within timeoutMs
    next: async (timeoutMs = 30_000) => queue.shift() ?? (done
      ? undefined
      : await new Promise<SseEvent | undefined>((resolve) => {
        const timer = setTimeout(() => { waiting.splice(waiting.indexOf(waiter), 1); resolve(undefined) }, timeoutMs)
        const waiter = (event: SseEvent | undefined): void => { clearTimeout(timer); resolve(event) }
        waiting.push(waiter)
      })),
    ended,
    close: () => { controller.abort() }
  }
}

// The replica process compiles the app on start (many seconds on a busy machine): started now, it does so while the
// stall scenarios above wait on their frozen emulator. It touches no storage until the test below uses it.
const spawnedAt = Date.now()
const doomedStart = startReplicaProcess(t, testAws).then((replica) => ({ replica, listenedAfterMs: Date.now() - spawnedAt }), (error: Error) => ({ error }))

t.test('a replica SIGKILLed mid-upload: the session reads failed/abandoned within a lease, SSE ends with it, the next upload is not held up', async (t) => {
  const survivor = (await listen(t, { aws: testAws, config: { uploadLeaseMs: LEASE_MS } })).baseUrl
  const started = await doomedStart
  if ('error' in started) throw started.error
  const doomed = started.replica
  t.comment(`the replica process listened ${started.listenedAfterMs} ms after it was spawned`)
  const project = 'kill'
  const video = `/v1/projects/${project}/videos/k1`

  // A raw upload to the doomed replica whose body arrives in pieces and never ends.
  const total = 12 * 1024 * 1024
  const url = new URL(`${video}/renders`, doomed.baseUrl)
  const killedKey = `kill-${randomUUID()}`
  const upload = httpRequest({ host: url.hostname, port: url.port, method: 'POST', path: url.pathname, headers: { 'content-type': 'video/mp4', 'content-length': String(total), 'idempotency-key': killedKey } })
  const uploadOutcome = new Promise<string>((resolve) => {
    upload.on('response', (response) => { resolve(`answered ${response.statusCode}`); response.resume() })
    upload.on('error', (error) => { resolve(`error: ${error.message}`) })
  })
  const body = mp4Bytes(total)
  let sent = 0
  const sendPiece = async (): Promise<void> => {
    const piece = body.subarray(sent, sent + 256 * 1024)
    sent += piece.length
    if (!upload.write(piece)) await new Promise((resolve) => upload.once('drain', resolve))
  }

  // The session exists and shows bytes on the surviving replica once the doomed one has stored progress (at most about
  // once a second): polled, as another process's writes give no event here. Bounded: 15 s.
  let progress: Record<string, unknown> | undefined
  for (let round = 0; round < 150 && !(Number(progress?.bytesUploaded ?? 0) > 0); round++) {
    if (sent < total / 2) await sendPiece()
    await sleep(100)
    const answer = await fetch(`${survivor}${video}/progress`)
    progress = answer.status === 200 ? await answer.json() as Record<string, unknown> : undefined
  }
  t.match(progress, { status: 'uploading' }, 'the surviving replica sees the upload in progress')
  t.ok(Number(progress?.bytesUploaded) > 0, 'with bytes')
  const uploadId = String(progress?.uploadId)

  const watcher = await watch(`${survivor}${video}/progress`)
  t.teardown(() => { watcher.close() })
  const firstEvent = await watcher.next()
  t.match(firstEvent, { event: 'progress', data: { status: 'uploading', uploadId } }, 'the SSE watcher starts on the running upload')

  const killedAt = Date.now()
  doomed.child.kill('SIGKILL')
  t.match(await uploadOutcome, /^error/, 'the uploading client loses its connection')

  let terminal: SseEvent | undefined
  for (let events = 0; events < 100; events++) {
    const event = await watcher.next()
    if (event === undefined || event.event !== 'progress' || ['completed', 'failed', 'aborted', 'expired'].includes(String(event.data.status))) { terminal = event; break }
  }
  t.match(terminal, { event: 'progress', data: { uploadId, status: 'failed', failureReason: 'abandoned' } }, 'SSE: the terminal event says failed, abandoned')
  const tookMs = (terminal?.at ?? Date.now()) - killedAt
  t.ok(tookMs <= LEASE_MS + 2000, `within one lease (${LEASE_MS} ms, plus the stream's 500 ms poll and slack): ${tookMs} ms`)
  const closed = await Promise.race([watcher.ended.then(() => true), sleep(10_000).then(() => false)])
  t.ok(closed, 'the SSE stream closes after the terminal event')

  const session = await (await fetch(`${survivor}${video}/uploads/${uploadId}`)).json()
  t.match(session, { uploadId, status: 'failed', failureReason: 'abandoned' }, 'GET session')
  t.match(await (await fetch(`${survivor}${video}/progress`)).json(), { uploadId, status: 'failed', failureReason: 'abandoned' }, '/progress JSON')
  t.match(await (await fetch(`${survivor}${video}/status`)).json(), { video: { upload: { uploadId, status: 'failed', failureReason: 'abandoned' } } }, '/status')

  // Render uploads take no claim: the next one neither waits for the dead one nor inherits a hole.
  const nextStarted = Date.now()
  const next = await fetch(`${survivor}${video}/renders`, { method: 'POST', headers: { 'content-type': 'video/mp4', 'idempotency-key': `after-kill-${randomUUID()}` }, body: mp4Bytes(256 * 1024) as Uint8Array<ArrayBuffer> })
  const nextMs = Date.now() - nextStarted
  t.equal(next.status, 201, 'the next upload to the video is stored')
  t.equal(((await next.json()) as { version?: number }).version, 1, 'as version 1: the dead upload left no number behind')
  // Not held up: about as fast as the same upload to a video nobody else touched (a wait on the dead upload's claim or
  // lease would add seconds). The baseline absorbs how busy the machine is.
  const baselineStarted = Date.now()
  const baseline = await fetch(`${survivor}/v1/projects/${project}/videos/k2/renders`, { method: 'POST', headers: { 'content-type': 'video/mp4' }, body: mp4Bytes(256 * 1024) as Uint8Array<ArrayBuffer> })
  const baselineMs = Date.now() - baselineStarted
  t.equal(baseline.status, 201)
  t.ok(nextMs < baselineMs + LEASE_MS, `without waiting for the dead upload: ${nextMs} ms (the same upload to an untouched video: ${baselineMs} ms)`)

  // The killed upload, repeated with its key: its replica's hold on the key lapses with its lease (IDEMPOTENCY_LEASE_MS,
  // 3 s for that replica), the repeat runs it once on the survivor, and a further repeat replays that answer.
  const repeatKilled = async (): Promise<Answer> => await send(survivor, { method: 'POST', path: `${video}/renders`, headers: { 'content-type': 'video/mp4' }, body }, killedKey, 60_000)
  let taken = await repeatKilled()
  for (let round = 0; round < 30 && taken.status === 409 && taken.headers.get('retry-after') !== null; round++) {
    await sleep(Math.min(2000, Math.max(200, Number(taken.headers.get('retry-after')) * 1000)))
    taken = await repeatKilled()
  }
  t.equal(taken.status, 201, `the killed upload, repeated with its key, is stored (${String(taken.body).slice(0, 160)})`)
  t.equal((JSON.parse(String(taken.body)) as { version?: number }).version, 2, 'once, as the next version')
  const replayed = await repeatKilled()
  t.equal(replayed.headers.get('idempotent-replayed'), 'true', 'a further repeat is a replay')
  t.ok(replayed.body.equals(taken.body), 'of that answer')

  const aws = clients(t, testAws)
  const check = await assertStoreConsistent(t, aws, testAws.config, { videos: (pk) => pk.startsWith(`VIDEO#${project}#`) })
  t.same(check.videos.get(`VIDEO#${project}#k1`)?.render, [1, 2], 'video k1 holds exactly the next upload and the repeated one')
})
