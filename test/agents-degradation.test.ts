// The agents' retry, degradation and human-loop behaviour, against a scripted stand-in for render-store
// (it answers chosen statuses; the real service is exercised in agents-service.test.ts).
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Command } from '@langchain/langgraph'
import { buildVideoGraph, createVideoAgents, fixtureRenderer, EnhancedRendererAgent, StorageRequiredError, RunAbortedError, type ServiceConfig, type VideoState } from '../src/agents/index.js'
import { closedPortUrl, happyResponder, problem, scriptedService } from './scripted-service.js'

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

t.test('a lost answer to a render upload: the latest render holds these bytes, so it is taken, not uploaded again', async (t) => {
  let stored: { sha256: string } | undefined
  const responder = happyResponder()
  const service = await scriptedService(t, [], (request) => {
    if (request.method === 'POST' && request.path.endsWith('/renders') && stored === undefined) {
      stored = { sha256: request.bodySha256 }
      return { status: 0 }
    }
    if (request.method === 'GET' && request.path.endsWith('/renders/latest')) {
      return stored === undefined ? problem(404, 'none') : { status: 200, body: { version: 1, key: 'k1', bucket: 'b', sha256: stored.sha256, sizeBytes: 1, downloadUrl: 'u' } }
    }
    return responder(request)
  })
  const renderer = new EnhancedRendererAgent({ name: 'renderer' }, { outputDir: outputDir(t) }, { baseUrl: service.baseUrl, retry: fast })
  const state = await renderer.execute({ ...input(), generated_code: 'print(1)' })
  t.equal(state.upload_status, 'completed')
  t.equal(state.aws_upload_results.render_version, 1)
  t.equal(state.aws_upload_results.video_key, 'k1')
  t.equal(state.upload_retry_count, 1)
  t.equal(renderPosts(service.requests), 1, 'the video went up once')
})

t.test('a lost answer when the service has not got the render: uploaded again', async (t) => {
  const service = await scriptedService(t, [{ status: 0 }, problem(404, 'no render yet')])
  const renderer = new EnhancedRendererAgent({ name: 'renderer' }, { outputDir: outputDir(t) }, { baseUrl: service.baseUrl, retry: fast })
  const state = await renderer.execute({ ...input(), generated_code: 'print(1)' })
  t.equal(state.upload_status, 'completed')
  t.equal(renderPosts(service.requests), 2)
  t.same(service.requests.map((r) => r.method + ' ' + r.path.split('/').slice(-2).join('/')), ['POST v1/renders', 'GET renders/latest', 'POST v1/renders'])
})

t.test('a disabled agent passes the state through untouched', async (t) => {
  const service = await scriptedService(t)
  const renderer = new EnhancedRendererAgent({ name: 'renderer', enabled: false }, { outputDir: outputDir(t) }, { baseUrl: service.baseUrl })
  t.same(await renderer.node({ ...(await renderer.execute({})), ...input() } as VideoState), {})
  t.equal(service.requests.length, 0)
})
