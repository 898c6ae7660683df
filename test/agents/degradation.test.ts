// The agents' retry, degradation and human-loop behaviour, against a scripted stand-in for render-store
// (it answers chosen statuses; the real service is exercised in agents-service.test.ts).
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Command } from '@langchain/langgraph'
import { buildVideoGraph, createVideoAgents, fixtureRenderer, EnhancedRendererAgent, StorageRequiredError, RunAbortedError, type ServiceConfig, type VideoState } from '../../src/agents/index.js'
import { closedPortUrl, happyResponder, problem, scriptedService, type RecordedRequest, type Responder, type ScriptedAnswer } from '../support/scripted-service.js'

type Test = { teardown: (fn: () => unknown) => void }

const fast = { initialDelayMs: 1, maxDelayMs: 5 }

function outputDir (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'agents-test-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

const input = (extra: Partial<VideoState> = {}): Partial<VideoState> => ({
  topic: 'Pythagoras',
  description: 'a squared plus b squared',
  project_id: 'p1',
  video_id: 'v1',
  enable_aws_upload: true,
  enable_aws_code_management: true,
  ...extra
})

function graphFor (t: Test, service: ServiceConfig, options: { humanLoop?: boolean, paddingBytes?: number } = {}) {
  const agents = createVideoAgents({ enableHumanLoop: options.humanLoop }, { outputDir: outputDir(t), render: fixtureRenderer({ paddingBytes: options.paddingBytes }) }, { retry: fast, ...service })
  return { ...agents, graph: buildVideoGraph(agents) }
}

const thread = (id: string) => ({ configurable: { thread_id: id } })
const renderPosts = (requests: Array<{ method: string, path: string }>) => requests.filter((r) => r.method === 'POST' && r.path.endsWith('/renders')).length

t.test('503 twice then success: upload_retry_count 2 and completed', async (t) => {
  const service = await scriptedService(t)
  const { graph } = graphFor(t, { baseUrl: service.baseUrl })
  // The code store goes first and succeeds; the two 503s then meet the render upload.
  service.script.push({ status: 201, body: { version: 1, filename: 'v1.py', key: 'code/p1/v1/v1/v1.py', sha256: 'a'.repeat(64), sizeBytes: 10, createdAt: new Date().toISOString() } },
    problem(503, 'busy', { 'retry-after': '0' }), problem(503, 'busy'))
  const state = await graph.invoke(input(), thread('503'))
  t.equal(state.upload_status, 'completed')
  t.equal(state.upload_retry_count, 2)
  t.equal(state.code_upload_status, 'completed')
  t.equal(state.code_upload_retry_count, 0)
  t.equal(renderPosts(service.requests), 3)
  t.equal(state.aws_upload_results.render_version, 1)
  t.ok(state.completed_steps.includes('summary'))
})

t.test('a 400 is not retried: one attempt, failed_graceful, the error kept', async (t) => {
  const service = await scriptedService(t, [], (request) => request.path.endsWith('/renders') ? problem(400, 'not a video') : { status: 201, body: { version: 1, filename: 'v1.py', key: 'k', sha256: 'a'.repeat(64), sizeBytes: 1, createdAt: '' } })
  const { graph } = graphFor(t, { baseUrl: service.baseUrl })
  const state = await graph.invoke(input(), thread('400'))
  t.equal(renderPosts(service.requests), 1)
  t.equal(state.upload_status, 'failed_graceful')
  t.equal(state.upload_retry_count, 0)
  t.match(state.upload_error, /400 not a video/)
  t.match(state.errors, [{ step: 'renderer' }])
  t.ok(state.completed_steps.includes('summary'))
})

t.test('service down: both steps failed_graceful after their retries, the render made, the later nodes ran', async (t) => {
  const { graph, renderer, codeGenerator } = graphFor(t, { baseUrl: await closedPortUrl() })
  const state = await graph.invoke(input({ editing_existing_video: true, edit_instructions: 'add a triangle' }), thread('down'))
  t.equal(state.code_upload_status, 'failed_graceful')
  t.equal(state.upload_status, 'failed_graceful')
  t.equal(state.upload_retry_count, 3)
  t.equal(state.code_upload_retry_count, 3)
  t.match(state.warnings, [{ step: 'code_generator', message: /could not download the current code.*generating fresh code/ }])
  t.match(state.generated_code, /class Scene1\(Scene\)/)
  t.ok(state.rendered_video_path?.endsWith('.mp4'))
  t.same(state.completed_steps, ['code_generator', 'renderer', 'summary'])
  t.match(renderer.getUploadStatus(state), { upload_status: 'failed_graceful', upload_retry_count: 3, enabled: true })
  t.match(codeGenerator.getCodeManagementStatus(state), { code_upload_status: 'failed_graceful', code_upload_retry_count: 3 })
})

t.test('uploads required: the run fails', async (t) => {
  const { graph } = graphFor(t, { baseUrl: await closedPortUrl(), requireAwsUpload: true, retry: { ...fast, retries: 0 } })
  await t.rejects(graph.invoke(input(), thread('required')), StorageRequiredError)
})

t.test('both flags off, or no service URL: storage keys untouched, no call made', async (t) => {
  const service = await scriptedService(t)
  const { graph } = graphFor(t, { baseUrl: service.baseUrl })
  const off = await graph.invoke(input({ enable_aws_upload: false, enable_aws_code_management: false }), thread('off'))
  const noUrl = await graphFor(t, {}).graph.invoke(input(), thread('no-url'))
  t.equal(service.requests.length, 0)
  for (const state of [off, noUrl]) {
    t.equal(state.upload_status, 'not_started')
    t.equal(state.code_upload_status, 'not_started')
    t.same(state.aws_upload_results, {})
    t.same(state.code_upload_results, {})
    t.equal(state.upload_retry_count, 0)
    t.ok(state.rendered_video_path?.endsWith('.mp4'), 'the base steps still ran')
    t.same(state.completed_steps, ['code_generator', 'renderer', 'summary'])
  }
})

t.test('human loop: an interrupt carries the error; skip goes on degraded', async (t) => {
  const service = await scriptedService(t, [], (request) => request.path.endsWith('/renders') ? problem(503, 'disk full') : { status: 201, body: { version: 1, filename: 'v1.py', key: 'k', sha256: 'a'.repeat(64), sizeBytes: 1, createdAt: '' } })
  const { graph } = graphFor(t, { baseUrl: service.baseUrl }, { humanLoop: true })
  const first = await graph.invoke(input(), thread('skip'))
  const interrupts = first.__interrupt__ as Array<{ value: { error: string, choices: string[], node: string } }>
  t.equal(interrupts.length, 1)
  t.match(interrupts[0].value, { node: 'renderer', error: /503 disk full/, choices: ['retry', 'skip', 'abort'] })
  const posts = renderPosts(service.requests)
  t.equal(posts, 4, 'the automatic retries ran before asking')
  const done = await graph.invoke(new Command({ resume: 'skip' }), thread('skip'))
  t.equal(done.upload_status, 'failed_graceful')
  t.equal(done.pending_intervention, undefined)
  t.ok(done.completed_steps.includes('summary'))
  t.equal(renderPosts(service.requests), posts, 'skip uploads nothing')
})

t.test('human loop: retry uploads what failed, once, and never renders again', async (t) => {
  let failScenes = true
  const responder = happyResponder()
  // The video uploads, then scene 2's clip keeps failing until the person retries.
  const failing = await scriptedService(t, [], (request) => failScenes && request.path.endsWith('/scenes/2') ? problem(500, 'scene store broke') : responder(request))
  const agents = graphFor(t, { baseUrl: failing.baseUrl, retry: { ...fast, retries: 1 } }, { humanLoop: true })
  const first = await agents.graph.invoke(input({ scene_count: 2 }), thread('retry'))
  t.match((first.__interrupt__ as Array<{ value: { error: string } }>)[0].value.error, /500 scene store broke/)
  const snapshot = await agents.graph.getState(thread('retry'))
  const renderedPath = snapshot.values.rendered_video_path as string
  t.equal(snapshot.values.aws_upload_results.render_version, 1, 'what succeeded is in state before the interrupt')
  failScenes = false
  const done = await agents.graph.invoke(new Command({ resume: 'retry' }), thread('retry'))
  t.equal(done.upload_status, 'completed')
  t.equal(done.rendered_video_path, renderedPath)
  t.equal(renderPosts(failing.requests), 1, 'the video went up once')
  const sceneUploads = failing.requests.filter((r) => r.path.includes('/scenes/'))
  t.equal(sceneUploads.filter((r) => r.path.endsWith('/scenes/1')).length, 1, 'scene 1 went up once')
  t.equal(sceneUploads.filter((r) => r.path.endsWith('/scenes/2')).length, 3, 'scene 2: two failed attempts, then the retry')
  t.same(Object.keys(done.aws_upload_results.scenes as object), ['1', '2'])
  t.equal(done.upload_retry_count, 1)
})

t.test('human loop: abort fails the run', async (t) => {
  const { graph } = graphFor(t, { baseUrl: await closedPortUrl(), retry: { ...fast, retries: 0 } }, { humanLoop: true })
  const first = await graph.invoke(input({ enable_aws_upload: false }), thread('abort'))
  t.match((first.__interrupt__ as Array<{ value: { node: string } }>)[0].value, { node: 'code_generator' })
  await t.rejects(graph.invoke(new Command({ resume: 'abort' }), thread('abort')), RunAbortedError)
})

t.test('human loop: retry of a code store stores the code made before, without generating again', async (t) => {
  let down = true
  const service = await scriptedService(t, [], (request) => {
    if (down) return problem(503, 'dynamodb down')
    return { status: 201, body: { version: 1, filename: 'v1.py', key: 'k', sha256: 'a'.repeat(64), sizeBytes: 1, createdAt: '' } }
  })
  let generated = 0
  const agents = createVideoAgents({ enableHumanLoop: true }, {
    outputDir: outputDir(t),
    generateCode: ({ videoId }) => { generated++; return { code: `print(${generated})`, filename: `${videoId}.py` } }
  }, { baseUrl: service.baseUrl, retry: { ...fast, retries: 0 } })
  const graph = buildVideoGraph(agents)
  await graph.invoke(input({ enable_aws_upload: false }), thread('code-retry'))
  down = false
  const done = await graph.invoke(new Command({ resume: 'retry' }), thread('code-retry'))
  t.equal(done.code_upload_status, 'completed')
  t.equal(generated, 1)
  t.equal(JSON.parse(service.requests.at(-1)?.body.toString() ?? '{}').content, 'print(1)')
})

t.test('progress callbacks: rising percentages across video and scene clips, ending at 100', async (t) => {
  const service = await scriptedService(t)
  const renderer = new EnhancedRendererAgent({ name: 'renderer' }, { outputDir: outputDir(t), render: fixtureRenderer({ paddingBytes: 200 * 1024 }) },
    { baseUrl: service.baseUrl, retry: fast, uploadChunkBytes: 32 * 1024 })
  const seen: Array<{ videoId: string, bytes: number, total: number, percentage: number }> = []
  renderer.addUploadProgressCallback((videoId, bytes, total, percentage) => seen.push({ videoId, bytes, total, percentage }))
  service.script.push({ status: 201, body: { version: 7, key: 'k', bucket: 'b', sha256: 'x', sizeBytes: 1 } }, problem(503, 'blip'))
  const state = await renderer.execute({ ...input(), scene_count: 2, generated_code: 'print(1)' })
  t.equal(state.upload_status, 'completed')
  t.equal(state.upload_retry_count, 1)
  t.ok(seen.length > 10)
  t.ok(seen.every((entry, i) => entry.videoId === 'v1' && (i === 0 || entry.percentage >= seen[i - 1].percentage) && (i === 0 || entry.bytes > seen[i - 1].bytes)), 'rising')
  t.equal(seen.at(-1)?.percentage, 100)
  t.equal(seen.at(-1)?.bytes, seen[0].total)
  t.match(renderer.getUploadProgress('v1'), { percentage: 100, status: 'completed' })
  t.equal(renderer.getUploadProgress('nope'), undefined)
  t.equal(state.aws_upload_results.render_version, 7)
})

/**
 * The service's side of exactly-once writes: an answer recorded per Idempotency-Key and replayed (with
 * Idempotent-Replayed: true) to a repeat, 5xx never recorded; `lose` drops the answer of a request that was carried out.
 */
function replaying (inner: Responder, lose: (request: RecordedRequest) => boolean = () => false) {
  const answers = new Map<string, ScriptedAnswer>()
  const ran: RecordedRequest[] = []
  const responder: Responder = (request) => {
    const key = request.headers['idempotency-key'] as string | undefined
    const recorded = key === undefined ? undefined : answers.get(key)
    let answer: ScriptedAnswer
    if (recorded !== undefined) {
      answer = { ...recorded, headers: { ...recorded.headers, 'idempotent-replayed': 'true' } }
    } else {
      answer = inner(request)
      if (request.method !== 'GET') ran.push(request)
      if (key !== undefined && answer.status < 500) answers.set(key, answer)
    }
    return lose(request) ? { status: 0 } : answer
  }
  return { responder, ran }
}

const keyOf = (request: RecordedRequest): string | undefined => request.headers['idempotency-key'] as string | undefined

t.test('a lost answer to a render upload: the retry carries the same key, the service replays it, one version exists', async (t) => {
  let lost = 0
  const service = replaying(happyResponder(), (request) => request.path.endsWith('/renders') && lost++ === 0)
  const scripted = await scriptedService(t, [], service.responder)
  const renderer = new EnhancedRendererAgent({ name: 'renderer' }, { outputDir: outputDir(t) }, { baseUrl: scripted.baseUrl, retry: fast })
  const state = await renderer.execute({ ...input(), generated_code: 'print(1)' })
  t.equal(state.upload_status, 'completed')
  t.equal(state.aws_upload_results.render_version, 1)
  t.equal(state.aws_upload_results.replayed, true)
  t.equal(state.upload_retry_count, 1)
  t.equal(renderPosts(scripted.requests), 2, 'sent twice')
  t.equal(renderPosts(service.ran), 1, 'stored once')
  const posts = scripted.requests.filter((r) => r.path.endsWith('/renders'))
  t.equal(keyOf(posts[1]), keyOf(posts[0]), 'one key for both attempts')
  t.notOk(scripted.requests.some((r) => r.method === 'GET'), 'no look at the latest render to guess what happened')
  t.same(state.upload_idempotency_keys, { video: keyOf(posts[0]) })
})

t.test('human loop: a code store whose answers were lost is retried by a person with the same key, and stored once', async (t) => {
  let down = true
  const service = replaying(happyResponder(), () => down)
  const scripted = await scriptedService(t, [], service.responder)
  const agents = createVideoAgents({ enableHumanLoop: true }, { outputDir: outputDir(t) }, { baseUrl: scripted.baseUrl, retry: { ...fast, retries: 1 } })
  const graph = buildVideoGraph(agents)
  const first = await graph.invoke(input({ enable_aws_upload: false }), thread('code-lost'))
  t.match((first.__interrupt__ as Array<{ value: { node: string } }>)[0].value, { node: 'code_generator' })
  const pending = (await graph.getState(thread('code-lost'))).values as VideoState
  t.ok(pending.code_idempotency_key, 'the key is in state before the interrupt')
  down = false
  const done = await graph.invoke(new Command({ resume: 'retry' }), thread('code-lost'))
  t.equal(done.code_upload_status, 'completed')
  t.equal(done.version, 1)
  t.equal(done.code_upload_results.replayed, true, 'the answer is the first attempt\'s')
  const posts = scripted.requests.filter((r) => r.path.endsWith('/code'))
  t.equal(posts.length, 3, 'two automatic attempts, then the person\'s retry')
  t.same(new Set(posts.map(keyOf)), new Set([pending.code_idempotency_key]), 'every attempt carried the same key')
  t.equal(service.ran.filter((r) => r.path.endsWith('/code')).length, 1, 'stored once')
})

t.test('human loop: a render upload retried by a person reuses its key; a new run uploads under a new one', async (t) => {
  let down = true
  const service = replaying(happyResponder(), (request) => down && request.path.endsWith('/renders'))
  const scripted = await scriptedService(t, [], service.responder)
  const agents = createVideoAgents({ enableHumanLoop: true }, { outputDir: outputDir(t) }, { baseUrl: scripted.baseUrl, retry: { ...fast, retries: 0 } })
  const graph = buildVideoGraph(agents)
  const first = await graph.invoke(input({ enable_aws_code_management: false }), thread('render-lost'))
  t.match((first.__interrupt__ as Array<{ value: { node: string } }>)[0].value, { node: 'renderer' })
  down = false
  const done = await graph.invoke(new Command({ resume: 'retry' }), thread('render-lost'))
  t.equal(done.upload_status, 'completed')
  t.equal(done.aws_upload_results.render_version, 1)
  const posts = scripted.requests.filter((r) => r.path.endsWith('/renders'))
  t.equal(posts.length, 2)
  t.equal(keyOf(posts[1]), keyOf(posts[0]))
  t.equal(renderPosts(service.ran), 1, 'one render version')
  const again = await agents.renderer.execute({ ...input({ enable_aws_code_management: false }), generated_code: 'print(2)', version: 2 })
  t.equal(again.upload_status, 'completed')
  t.equal(again.aws_upload_results.render_version, 2)
  t.not(keyOf(scripted.requests.filter((r) => r.path.endsWith('/renders')).at(-1) as RecordedRequest), keyOf(posts[0]), 'a new logical write, a new key')
})

t.test('scene clips: one key each, kept across retries', async (t) => {
  let failed = 0
  const service = replaying(happyResponder(), (request) => request.path.endsWith('/scenes/2') && failed++ === 0)
  const scripted = await scriptedService(t, [], service.responder)
  const renderer = new EnhancedRendererAgent({ name: 'renderer' }, { outputDir: outputDir(t) }, { baseUrl: scripted.baseUrl, retry: fast })
  const state = await renderer.execute({ ...input(), scene_count: 2, generated_code: 'print(1)' })
  t.equal(state.upload_status, 'completed')
  const scenes = scripted.requests.filter((r) => r.path.includes('/scenes/'))
  t.same(scenes.map((r) => r.path.split('/').at(-1)), ['1', '2', '2'])
  t.equal(keyOf(scenes[2]), keyOf(scenes[1]))
  t.not(keyOf(scenes[1]), keyOf(scenes[0]))
  t.same(Object.keys(state.upload_idempotency_keys).sort(), ['scene-1', 'scene-2', 'video'])
})

t.test('an edit whose first write is still running (409 + Retry-After) is not re-applied as if it were a conflict', async (t) => {
  const stored = { version: 3, filename: 'v1.py', key: 'k', sha256: 'a'.repeat(64), sizeBytes: 1, createdAt: '', content: 'print(1)\n        self.wait(1)\n' }
  const scripted = await scriptedService(t, [], (request) => request.method === 'GET'
    ? { status: 200, body: stored }
    : problem(409, 'a request with this Idempotency-Key is still running', { 'retry-after': '0' }))
  const agents = createVideoAgents({}, { outputDir: outputDir(t) }, { baseUrl: scripted.baseUrl, retry: { ...fast, inProgressRetries: 2 } })
  const state = await agents.codeGenerator.execute({ ...input({ enable_aws_upload: false }), editing_existing_video: true, edit_instructions: 'add a note' })
  t.equal(state.code_upload_status, 'failed_graceful')
  t.match(state.code_upload_error, /409 .*still running/)
  const posts = scripted.requests.filter((r) => r.method === 'POST')
  t.equal(posts.length, 3, 'the first attempt and two waits')
  t.equal(new Set(posts.map(keyOf)).size, 1)
  t.equal(scripted.requests.filter((r) => r.method === 'GET').length, 1, 'the latest was read once, for the edit, never again for a re-apply')
  t.equal(state.code_idempotency_key, keyOf(posts[0]))
})

t.test('a real version conflict (409 with latestVersion, no Retry-After): the edit re-applied on the latest under a new key', async (t) => {
  const v = (version: number, content: string) => ({ version, filename: 'v1.py', key: 'k', sha256: 'a'.repeat(64), sizeBytes: 1, createdAt: '', content })
  let latest = v(1, 'print(1)\n        self.wait(1)\n')
  const scripted = await scriptedService(t, [], (request) => {
    if (request.method === 'GET') return { status: 200, body: latest }
    const sent = JSON.parse(request.body.toString()) as { baseVersion: number }
    if (latest.version === 1) { latest = v(2, 'print(2)\n        self.wait(1)\n'); return { ...problem(409, 'not the latest'), body: { type: 'about:blank', title: 'Conflict', status: 409, detail: 'version 1 is not the latest', latestVersion: 2 } } }
    return { status: 201, body: v(sent.baseVersion + 1, '') }
  })
  const agents = createVideoAgents({}, { outputDir: outputDir(t) }, { baseUrl: scripted.baseUrl, retry: fast })
  const state = await agents.codeGenerator.execute({ ...input({ enable_aws_upload: false }), editing_existing_video: true, edit_instructions: 'add a note' })
  t.equal(state.code_upload_status, 'completed')
  t.equal(state.version, 3)
  t.match(state.code_upload_results, { base_version: 2, conflicts_resolved: 1 })
  const posts = scripted.requests.filter((r) => r.method === 'POST')
  t.equal(posts.length, 2)
  t.not(keyOf(posts[1]), keyOf(posts[0]), 'the re-applied edit is another logical write')
  t.match(JSON.parse(posts[1].body.toString()).content, /print\(2\)[\s\S]*note1/)
})

t.test('a disabled agent passes the state through untouched', async (t) => {
  const service = await scriptedService(t)
  const renderer = new EnhancedRendererAgent({ name: 'renderer', enabled: false }, { outputDir: outputDir(t) }, { baseUrl: service.baseUrl })
  t.same(await renderer.node({ ...(await renderer.execute({})), ...input() } as VideoState), {})
  t.equal(service.requests.length, 0)
})
