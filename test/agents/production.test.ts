// The agents as a LangGraph.js user runs them in production, against the real service on loopback: progress in the
// graph's own stream, cancellation through config.signal, timeout_seconds, the seed's node names, and logging.
import t from 'tap'
import { createServer, type Socket } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { Command } from '@langchain/langgraph'
import { pino } from 'pino'
import { listen } from '../helper.js'
import { RenderStoreClient } from '../../src/client/index.js'
import { buildVideoGraph, createVideoAgents, fixtureRenderer, type ServiceConfig, type UploadProgressEvent, type VideoState } from '../../src/agents/index.js'

type Test = { teardown: (fn: () => unknown) => void }

function outputDir (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'agents-production-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

const input = (videoId: string, extra: Partial<VideoState> = {}): Partial<VideoState> => ({ topic: 'Pythagoras', description: 'a² + b² = c²', project_id: 'prod', video_id: videoId, ...extra })
const thread = (id: string) => ({ configurable: { thread_id: id } })

/** A TCP server that accepts connections and never answers: a hung render-store. */
async function blackHole (t: Test): Promise<string> {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => { sockets.add(socket); socket.on('data', () => {}); socket.on('error', () => {}) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { for (const socket of sockets) socket.destroy(); await new Promise((resolve) => server.close(resolve)) })
  const address = server.address()
  return `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
}

t.test('against the service', async (t) => {
  const { baseUrl } = await listen(t)
  const client = new RenderStoreClient({ baseUrl })
  const service: ServiceConfig = { baseUrl, retry: { initialDelayMs: 5, maxDelayMs: 20 }, uploadChunkBytes: 64 * 1024 }

  t.test('graph.stream with updates and custom: upload progress rising to 100 from the renderer node', async (t) => {
    const agents = createVideoAgents({}, { outputDir: outputDir(t), render: fixtureRenderer({ paddingBytes: 512 * 1024 }) }, service)
    const graph = buildVideoGraph(agents)
    const progress: UploadProgressEvent[] = []
    const updated: string[] = []
    // No storage switch in the input: storage is on by default when a service is configured.
    for await (const [mode, chunk] of await graph.stream(input('streamed', { scene_count: 2 }), { ...thread('stream'), streamMode: ['updates', 'custom'] })) {
      if (mode === 'custom') progress.push(chunk as UploadProgressEvent)
      else updated.push(...Object.keys(chunk as object))
    }
    t.same(updated, ['code_generator', 'renderer', 'summary'], 'one update per node')
    t.ok(progress.length >= 5, `several progress events (${progress.length})`)
    t.ok(progress.every((event) => event.type === 'upload_progress' && event.node === 'renderer' && event.video_id === 'streamed'))
    const percentages = progress.map((event) => event.percentage)
    t.ok(percentages.every((value, index) => index === 0 || value > percentages[index - 1]), 'rising')
    t.equal(percentages.at(-1), 100, 'ending at 100')
    t.equal(progress.at(-1)?.bytes_uploaded, progress.at(-1)?.total_bytes)
    t.same((await client.listRenders('prod', 'streamed')).items.map((r) => r.version), [1], 'stored by default')
    t.same((await client.listCodeVersions('prod', 'streamed')).items.map((v) => v.version), [1])
  })

  t.test('config.signal aborts an upload in flight: no render version, the session aborted (not pending)', async (t) => {
    const agents = createVideoAgents({}, { outputDir: outputDir(t), render: fixtureRenderer({ paddingBytes: 16 * 1024 * 1024 }) }, service)
    const graph = buildVideoGraph(agents)
    const controller = new AbortController()
    let abortedAt = 0
    agents.renderer.addUploadProgressCallback((_video, bytes) => {
      if (bytes >= 1024 * 1024 && abortedAt === 0) { abortedAt = bytes; controller.abort() }
    })
    await t.rejects(graph.invoke(input('aborted'), { ...thread('abort'), signal: controller.signal }), 'the run ends with the abort')
    t.ok(abortedAt > 0 && abortedAt < 16 * 1024 * 1024, `aborted mid-upload, after ${abortedAt} bytes`)
    t.same((await client.listCodeVersions('prod', 'aborted')).items.map((v) => v.version), [1], 'the code stored before the upload stays')
    t.same((await client.listRenders('prod', 'aborted')).items, [], 'no render version')
    // The service sees the hang-up; its upload session ends aborted (or failed), never pending or uploading forever.
    let status = ''
    for (let attempt = 0; attempt < 100 && !['aborted', 'failed'].includes(status); attempt++) {
      status = (await client.progress('prod', 'aborted')).status
      if (!['aborted', 'failed'].includes(status)) await new Promise((resolve) => setTimeout(resolve, 200))
    }
    t.ok(['aborted', 'failed'].includes(status), `the session reads ${status}`)
    t.same((await client.listRenders('prod', 'aborted')).items, [], 'still no render version')
    const snapshot = await graph.getState(thread('abort'))
    t.notOk(snapshot.values.completed_steps.includes('renderer'), 'the renderer did not complete')
  })

  t.test('timeoutSeconds bounds a storage step: a hung service fails the step in time, the run goes on degraded', async (t) => {
    const hung = await blackHole(t)
    const agents = createVideoAgents({ timeoutSeconds: 0.5, maxRetries: 0 }, { outputDir: outputDir(t) }, { baseUrl: hung, timeoutMs: 60_000 })
    const state = await buildVideoGraph(agents).invoke(input('hung'), thread('hung'))
    t.equal(state.code_upload_status, 'failed_graceful')
    t.equal(state.upload_status, 'failed_graceful')
    t.match(state.code_upload_error, /timed out after 0\.5 s/)
    t.match(state.upload_error, /timed out after 0\.5 s/)
    t.same(state.completed_steps, ['code_generator', 'renderer', 'summary'])
  })

  t.test('the seed\'s node names, human loop off and on; a resume with Command', async (t) => {
    const names = { codeGenerator: 'enhanced_code_generator', renderer: 'enhanced_renderer' }
    for (const enableHumanLoop of [false, true]) {
      const agents = createVideoAgents({ enableHumanLoop }, { outputDir: outputDir(t) }, service, names)
      const state = await buildVideoGraph(agents).invoke(input(`named-${String(enableHumanLoop)}`), thread(`named-${String(enableHumanLoop)}`))
      t.same(state.completed_steps, ['enhanced_code_generator', 'enhanced_renderer', 'summary'], `human loop ${enableHumanLoop ? 'on' : 'off'}`)
      t.equal(state.upload_status, 'completed')
    }
    // The upload fails (render-store unreachable from the renderer), the person says skip.
    const failing = { codeGenerator: createVideoAgents({ enableHumanLoop: true }, { outputDir: outputDir(t) }, service, names).codeGenerator, renderer: createVideoAgents({ enableHumanLoop: true }, { outputDir: outputDir(t) }, { baseUrl: await blackHole(t), retry: { retries: 0 } }, names).renderer }
    failing.renderer.agentConfig.timeoutSeconds = 0.3
    const graph = buildVideoGraph(failing)
    const paused = await graph.invoke(input('named-paused'), thread('named-paused'))
    t.match((paused.__interrupt__ as Array<{ value: unknown }>)[0].value, { node: 'enhanced_renderer', error: /timed out/ })
    const done = await graph.invoke(new Command({ resume: 'skip' }), thread('named-paused'))
    t.equal(done.upload_status, 'failed_graceful')
    t.same(done.completed_steps, ['enhanced_code_generator', 'enhanced_renderer', 'summary'])
    t.throws(() => buildVideoGraph(createVideoAgents({}, { outputDir: outputDir(t) }, service, { codeGenerator: 'x', renderer: 'x' })), /three different names/)
  })

  t.test('a pino logger: a child per node run with run and thread id; work at debug, skips at warn', async (t) => {
    const lines: Array<Record<string, unknown>> = []
    const sink = new Writable({ write (chunk: Buffer, _encoding, done) { for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>); done() } })
    const logger = pino({ level: 'debug' }, sink)
    const agents = createVideoAgents({ logger }, { outputDir: outputDir(t) }, service)
    await buildVideoGraph(agents).invoke(input('logged', { enable_aws_upload: false }), { configurable: { thread_id: 'log-thread', run_id: 'run-42' } })
    const stored = lines.find((line) => line.msg === 'code stored')
    t.match(stored, { level: 20, agent: 'code_generator', node: 'code_generator', threadId: 'log-thread', runId: 'run-42', version: 1 }, 'debug: what it did')
    t.match(lines.find((line) => line.msg === 'rendering'), { level: 20, node: 'renderer', threadId: 'log-thread', runId: 'run-42' })
    t.match(lines.find((line) => /upload skipped/.test(String(line.msg))), { level: 40, node: 'renderer', threadId: 'log-thread', msg: 'upload skipped: enable_aws_upload is false' }, 'warn: what it skipped')
    t.notOk(lines.some((line) => line.msg === 'uploading'), 'nothing uploaded')
  })
})
