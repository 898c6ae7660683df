// Open direct upload sessions are capped per project and per video, counted in DynamoDB: two replicas on one table
// share the count. Not timed (the latency under load is bench/upload-sessions.ts).
import t from 'tap'
import { listen, startTestAws } from '../helper.js'

const testAws = await startTestAws(t)
const caps = { perProject: 12, perVideo: 5 }
const overload = { maxEventLoopDelayMs: 0, maxHeapBytes: 0 }
const replicaA = await listen(t, { aws: testAws, config: { uploadCaps: caps, overload, rateLimit: { max: 0, windowMs: 60_000 } } })
const replicaB = await listen(t, { aws: testAws, config: { uploadCaps: caps, overload, rateLimit: { max: 0, windowMs: 60_000 } } })

async function open (baseUrl: string, projectId: string, videoId: string, sizeBytes = 1000, contentType = 'video/mp4'): Promise<{ status: number, json: any, headers: Headers }> {
  const response = await fetch(`${baseUrl}/v1/projects/${projectId}/videos/${videoId}/uploads`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sizeBytes, contentType })
  })
  return { status: response.status, json: await response.json(), headers: response.headers }
}

t.test('500 session creations on one video, from two replicas: exactly the per-video cap succeed, the rest 429 problem+json with Retry-After', async (t) => {
  const answers: Array<{ status: number, json: any, headers: Headers }> = []
  for (let batch = 0; batch < 25; batch++) {
    answers.push(...await Promise.all(Array.from({ length: 20 }, async (_, index) => await open(index % 2 === 0 ? replicaA.baseUrl : replicaB.baseUrl, 'capped', 'one', index % 3 === 0 ? 200 * 1024 * 1024 : 1000))))
  }
  const created = answers.filter((answer) => answer.status === 201)
  const refused = answers.filter((answer) => answer.status === 429)
  t.equal(created.length, caps.perVideo, `${caps.perVideo} created`)
  t.equal(refused.length, 500 - caps.perVideo, 'every other one refused')
  const sample = refused[0]
  t.match(sample.headers.get('content-type'), /application\/problem\+json/)
  const retryAfter = Number(sample.headers.get('retry-after'))
  t.ok(retryAfter >= 1 && retryAfter <= testAws.config.directSessionTtlSeconds, `Retry-After ${retryAfter} s: until the oldest open session expires`)
  t.match(sample.json, { status: 429, scope: 'video', maxOpenUploads: caps.perVideo })

  // The refused ones changed nothing: the video's newest upload is still one of the created sessions.
  const progress = await (await fetch(`${replicaA.baseUrl}/v1/projects/capped/videos/one/progress`)).json() as { uploadId?: string }
  t.ok(created.some((answer) => answer.json.uploadId === progress.uploadId), '/progress names a session that was created')

  // Ending a session gives its slot back, on either replica.
  const first = created[0].json.uploadId as string
  t.equal((await fetch(`${replicaB.baseUrl}/v1/projects/capped/videos/one/uploads/${first}`, { method: 'DELETE' })).status, 204)
  t.equal((await open(replicaA.baseUrl, 'capped', 'one')).status, 201, 'an aborted session frees its slot')
  t.equal((await open(replicaB.baseUrl, 'capped', 'one')).status, 429, 'and only one')
})

t.test('a fresh project and video: as many creations at once as the cap all succeed (the first claims race to make the count)', async (t) => {
  const answers = await Promise.all(Array.from({ length: caps.perVideo }, async (_, index) => await open(index % 2 === 0 ? replicaA.baseUrl : replicaB.baseUrl, 'fresh', 'race')))
  t.same(answers.map((answer) => answer.status), Array(caps.perVideo).fill(201), `${caps.perVideo} of ${caps.perVideo} created`)
  t.equal((await open(replicaA.baseUrl, 'fresh', 'race')).status, 429, 'the next one is refused')
})

t.test('the per-project cap counts every video of the project', async (t) => {
  const statuses: number[] = []
  for (let video = 0; video < 5; video++) {
    for (let session = 0; session < 4; session++) statuses.push((await open(video % 2 === 0 ? replicaA.baseUrl : replicaB.baseUrl, 'busy-project', `v${video}`)).status)
  }
  t.equal(statuses.filter((status) => status === 201).length, caps.perProject, `${caps.perProject} across the project's videos`)
  const refused = await open(replicaA.baseUrl, 'busy-project', 'v9')
  t.equal(refused.status, 429)
  t.match(refused.json, { scope: 'project', maxOpenUploads: caps.perProject })
  t.equal((await open(replicaA.baseUrl, 'other-project', 'v0')).status, 201, 'another project is not affected')
})

t.test('a slot whose session passed its completeBy is pruned by the next claim that finds the scope full', async (t) => {
  const { UpdateCommand } = await import('@aws-sdk/lib-dynamodb')
  const { createAwsClients } = await import('../../src/aws/clients.js')
  const aws = createAwsClients(replicaA.app.config)
  t.teardown(() => aws.destroy())
  const sessions = []
  for (let index = 0; index < caps.perVideo; index++) sessions.push((await open(replicaA.baseUrl, 'lapse', 'v')).json)
  t.equal((await open(replicaA.baseUrl, 'lapse', 'v')).status, 429)
  // One session's slot reads as lapsed (its completeBy passed, nobody ended it).
  await aws.ddb.send(new UpdateCommand({
    TableName: replicaA.app.config.table,
    Key: { pk: 'SLOTS#lapse', sk: 'VIDEO#v' },
    UpdateExpression: 'SET #open.#id = :past',
    ExpressionAttributeNames: { '#open': 'open', '#id': sessions[0].uploadId },
    ExpressionAttributeValues: { ':past': Math.floor(Date.now() / 1000) - 1 }
  }))
  t.equal((await open(replicaB.baseUrl, 'lapse', 'v')).status, 201, 'the lapsed slot was pruned and taken')
  t.equal((await open(replicaB.baseUrl, 'lapse', 'v')).status, 429)
})

t.test('a replica opens at most UPLOAD_SESSION_CONCURRENCY sessions at once; the rest wait their turn and all succeed', async (t) => {
  // Observed on the real S3: how many CreateMultipartUpload calls of this replica are in flight at the same moment.
  const replica = await listen(t, { aws: testAws, config: { uploadCaps: { perProject: 0, perVideo: 0 }, uploadSessionConcurrency: 2, overload, rateLimit: { max: 0, windowMs: 60_000 } } })
  let inFlight = 0
  let most = 0
  replica.app.aws.s3.middlewareStack.add((next, context) => async (args) => {
    if (context.commandName !== 'CreateMultipartUploadCommand') return await next(args)
    most = Math.max(most, ++inFlight)
    try { return await next(args) } finally { inFlight-- }
  }, { step: 'initialize', name: 'countOpenings' })
  const answers = await Promise.all(Array.from({ length: 12 }, async (_, index) => await open(replica.baseUrl, 'turns', `v${index}`, 200 * 1024 * 1024)))
  t.same(answers.map((answer) => answer.status), Array(12).fill(201), '12 of 12 created')
  t.equal(most, 2, 'never more than 2 at once, and 2 did run together')
})

t.test('a client that leaves while waiting for its turn: its session is never opened; cheap refusals take no turn', async (t) => {
  const replica = await listen(t, { aws: testAws, config: { uploadCaps: { perProject: 0, perVideo: 0 }, uploadSessionConcurrency: 1, overload, rateLimit: { max: 0, windowMs: 60_000 } } })
  // The first opening is held inside its S3 call (an observer on the real S3 client, not a fake) until released.
  let release: () => void = () => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  let opened = 0
  replica.app.aws.s3.middlewareStack.add((next, context) => async (args) => {
    if (context.commandName === 'CreateMultipartUploadCommand' && ++opened === 1) await held
    return await next(args)
  }, { step: 'initialize', name: 'holdFirstOpening' })
  const until = async (condition: () => boolean): Promise<void> => { while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5)) }
  // The store's start is wrapped to see the second request queue for its turn and to learn when its client is gone.
  const start = replica.app.directUploads.start
  let second: { gone: () => boolean, outcome: Promise<unknown> } | undefined
  replica.app.directUploads.start = async (request, gone) => {
    const running = start(request, gone)
    if (request.videoId === 'second' && gone !== undefined) second = { gone, outcome: running.then(() => 'opened', (error: { statusCode?: number }) => error.statusCode) }
    return await running
  }

  const first = open(replica.baseUrl, 'leaving', 'first', 200 * 1024 * 1024)
  await until(() => opened === 1)
  const leaving = new AbortController()
  const abandoned = fetch(`${replica.baseUrl}/v1/projects/leaving/videos/second/uploads`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sizeBytes: 200 * 1024 * 1024, contentType: 'video/mp4' }), signal: leaving.signal
  }).catch(() => 'aborted')
  await until(() => second !== undefined)
  // While the only turn is taken: a request refused without storage is answered at once.
  t.equal((await open(replica.baseUrl, 'leaving', 'third', 1000, 'text/plain')).status, 415, '415 without waiting for a turn')
  leaving.abort()
  t.equal(await abandoned, 'aborted')
  await until(() => second!.gone())
  release()
  t.equal((await first).status, 201, 'the held opening completes')
  t.equal(await second!.outcome, 503, 'the abandoned one is refused when its turn comes')
  t.equal(opened, 1, 'and never reached S3')
})
