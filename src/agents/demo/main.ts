// `npm run demo`: the agent graph end to end against render-store over HTTP. Run 1 generates code v1, renders and
// uploads it with a progress bar; run 2 edits: downloads v1, changes it, stores v2, renders and uploads render v2.
// Run 3 is durable: its checkpoints live in render-store; the agent process pauses in interrupt() (the renderer cannot
// reach the service, a person must decide), is killed, and a new process resumes the run with Command({ resume }).
// Uses RENDER_STORE_URL (and RENDER_STORE_API_KEY) when set, else starts the embedded service in-process. Everything
// it writes under the temp directory (renders, the embedded service's data) is removed at the end.
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { RenderStoreClient } from '../../client/render-store-client.js'
import { buildVideoGraph, createVideoAgents } from '../graph.js'
import { fixtureRenderer } from '../base-steps.js'
import type { VideoState } from '../state.js'
import type { VideoStatusReport } from '../../client/types.js'

export interface DemoOptions {
  baseUrl: string
  apiKey?: string
  projectId?: string
  videoId?: string
  /** where renders are written (a temp dir by default) */
  outputDir?: string
  /** bytes added to each rendered file so the progress bar has something to show (default 2 MiB) */
  paddingBytes?: number
  /** where lines go (stdout by default) */
  write?: (text: string) => void
}

export interface DemoResult {
  projectId: string
  videoId: string
  first: VideoState
  second: VideoState
  status?: VideoStatusReport
}

/** A one-line text progress bar, redrawn in place. */
export function progressBar (bytes: number, total: number, percentage: number, width = 30): string {
  const filled = Math.round((percentage / 100) * width)
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${percentage.toFixed(1).padStart(5)}%  ${(bytes / 1024).toFixed(0)}/${(total / 1024).toFixed(0)} KiB`
}

function describeRun (label: string, state: VideoState): string[] {
  return [
    `${label}: code ${state.code_upload_status} as version ${state.version}` +
      (state.code_upload_results.base_version !== undefined ? ` (edited from v${String(state.code_upload_results.base_version)})` : ''),
    `${label}: upload ${state.upload_status}, render version ${String(state.aws_upload_results.render_version ?? '-')}, ${state.scene_clip_paths.length} scene clip(s), ${state.upload_retry_count} upload retr${state.upload_retry_count === 1 ? 'y' : 'ies'}`,
    ...state.warnings.map((warning) => `${label}: warning (${warning.step}): ${warning.message}`),
    ...state.errors.map((error) => `${label}: error (${error.step}): ${error.message}`)
  ]
}

/** The two demo runs against a running service; answers both final states and the service's status of the video. */
export async function runDemo (options: DemoOptions): Promise<DemoResult> {
  const write = options.write ?? ((text: string) => { process.stdout.write(text) })
  const projectId = options.projectId ?? 'demo'
  const videoId = options.videoId ?? `pythagoras-${Date.now().toString(36)}`
  const client = new RenderStoreClient({ baseUrl: options.baseUrl, apiKey: options.apiKey, retry: { initialDelayMs: 250 }, uploadChunkBytes: 128 * 1024 })
  const outputDir = options.outputDir ?? mkdtempSync(join(tmpdir(), 'render-store-demo-'))
  try {
    return await demoRuns(options, write, projectId, videoId, client, outputDir)
  } finally {
    // Renders written to a directory of our own are not needed after the upload (they are in render-store).
    if (options.outputDir === undefined) rmSync(outputDir, { recursive: true, force: true })
  }
}

async function demoRuns (options: DemoOptions, write: (text: string) => void, projectId: string, videoId: string, client: RenderStoreClient, outputDir: string): Promise<DemoResult> {
  const agents = createVideoAgents({}, { outputDir, render: fixtureRenderer({ paddingBytes: options.paddingBytes ?? 2 * 1024 * 1024 }) }, { client })
  let lastDrawn = -1
  agents.renderer.addUploadProgressCallback((_videoId, bytes, total, percentage) => {
    if (Math.floor(percentage) === lastDrawn && percentage < 100) return
    lastDrawn = Math.floor(percentage)
    write(`\r  upload ${progressBar(bytes, total, percentage)}${percentage >= 100 ? '\n' : ''}`)
  })
  const graph = buildVideoGraph(agents)
  const common = {
    topic: 'The Pythagorean theorem',
    description: 'A right triangle whose squares on the sides add up',
    project_id: projectId,
    video_id: videoId,
    scene_count: 2,
    enable_aws_upload: true,
    enable_aws_code_management: true
  }

  write(`render-store demo against ${client.baseUrl}: project ${projectId}, video ${videoId}\n`)
  write('run 1: generate code -> render -> upload\n')
  lastDrawn = -1
  const first = await graph.invoke(common, { configurable: { thread_id: `${videoId}-run-1` } })
  for (const line of describeRun('run 1', first)) write(`${line}\n`)

  write('run 2: download the code, edit it, store it, render -> upload\n')
  lastDrawn = -1
  const second = await graph.invoke({ ...common, editing_existing_video: true, edit_instructions: 'Show a² + b² = c² under the title' }, { configurable: { thread_id: `${videoId}-run-2` } })
  for (const line of describeRun('run 2', second)) write(`${line}\n`)

  let status: VideoStatusReport | undefined
  try {
    status = await client.status(projectId, videoId)
    const diff = await client.diffCode(projectId, videoId, 2, 1)
    write(`code diff v1 -> v2:\n${diff.split('\n').filter((line) => /^[+-][^+-]/.test(line)).map((line) => `  ${line}`).join('\n')}\n`)
    write(`final status: video ${status.video.status}, latest render v${String(status.video.latestRenderVersion)}, latest code v${String(status.code.latestVersion)}, upload ${status.video.upload?.status ?? '-'}\n`)
  } catch (error) {
    write(`final status unavailable: ${(error as Error).message}\n`)
  }
  return { projectId, videoId, first, second, status }
}

/** A loopback URL nothing listens on: render-store unreachable. */
async function unreachableUrl (): Promise<string> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise((resolve) => server.close(resolve))
  return `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
}

/** The agent process script, compiled (dist) or as source (tests run TypeScript directly). */
function durableRunScript (): string {
  const compiled = fileURLToPath(new URL('./durable-run.js', import.meta.url))
  return existsSync(compiled) ? compiled : fileURLToPath(new URL('./durable-run.ts', import.meta.url))
}

/**
 * Run 3: a run paused in interrupt() survives its process. Process A stores the code, cannot reach render-store for
 * the upload, and waits for a person; it is killed. Process B, new, resumes the thread with Command({ resume: 'retry' })
 * from the checkpoints in render-store and uploads the render. Answers B's final event.
 */
export async function runDurableDemo (options: { baseUrl: string, apiKey?: string, projectId?: string, videoId?: string, write?: (text: string) => void }): Promise<Record<string, unknown>> {
  const write = options.write ?? ((text: string) => { process.stdout.write(text) })
  const projectId = options.projectId ?? 'demo'
  const videoId = options.videoId ?? `durable-${Date.now().toString(36)}`
  const thread = `${videoId}-run-3`
  const outputDir = mkdtempSync(join(tmpdir(), 'render-store-demo-durable-'))
  const common = ['--service', options.baseUrl, '--project', projectId, '--video', videoId, '--thread', thread, '--output', outputDir]
  // The agent processes log at error unless LOG_LEVEL says otherwise: the demo prints what they do.
  const env = { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'error', ...(options.apiKey !== undefined ? { RENDER_STORE_API_KEY: options.apiKey } : {}) }
  const agent = (args: string[], until: string) => {
    const child = spawn(process.execPath, [...process.execArgv, durableRunScript(), ...common, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env })
    let buffered = ''
    const event = new Promise<Record<string, unknown>>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        buffered += chunk.toString()
        for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
          const line = buffered.slice(0, newline)
          buffered = buffered.slice(newline + 1)
          const parsed = JSON.parse(line) as Record<string, unknown>
          if (parsed.event === 'progress') write(`\r  upload ${progressBar(parsed.bytes_uploaded as number, parsed.total_bytes as number, parsed.percentage as number)}${parsed.percentage === 100 ? '\n' : ''}`)
          if (parsed.event === until) resolve(parsed)
        }
      })
      child.on('exit', (code, signal) => { reject(new Error(`agent process ended (${String(code ?? signal)}) before '${until}'`)) })
    })
    return { child, event }
  }
  try {
    write(`run 3: durable, thread ${thread}: checkpoints in render-store\n`)
    const first = agent(['--upload-service', await unreachableUrl()], 'paused')
    const paused = await first.event
    const request = (paused.interrupts as Array<{ node: string, error: string }>)[0]
    write(`run 3: process ${String(paused.pid)} paused in interrupt() at ${request.node}: ${request.error}\n`)
    first.child.kill('SIGKILL')
    write(`run 3: process ${String(paused.pid)} killed; a new process resumes the thread with Command({ resume: 'retry' })\n`)
    const second = agent(['--resume', 'retry'], 'done')
    const done = await second.event
    write(`run 3: process ${String(second.child.pid)} finished the run: code ${String(done.code_upload_status)} (v${String(done.version)}), upload ${String(done.upload_status)} (render v${String(done.render_version)})\n`)
    await new Promise((resolve) => second.child.once('exit', resolve))
    return done
  } finally {
    rmSync(outputDir, { recursive: true, force: true })
  }
}

/** Starts the embedded S3 and DynamoDB and the service on a free loopback port, as `npm start` would. */
export async function startEmbeddedService (dataDir: string): Promise<{ baseUrl: string, close: () => Promise<void> }> {
  const [{ loadConfig }, { startEmbeddedAws }, { createAwsClients }, { provisionStorage }, { buildServer }] = await Promise.all([
    import('../../config.js'), import('../../local/embedded.js'), import('../../aws/clients.js'), import('../../ops/provision.js'), import('../../app.js')
  ])
  const base = loadConfig({ ...process.env, DATA_DIR: dataDir, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn', PORT: '0' })
  const embedded = await startEmbeddedAws({ dataDir, buckets: [base.videoBucket, base.codeBucket] })
  const config = { ...base, s3Endpoint: embedded.s3.endpoint, dynamodbEndpoint: embedded.dynamodb.endpoint }
  const aws = createAwsClients(config)
  await provisionStorage(aws, config, { info: () => {}, warn: () => {} })
  const server = await buildServer({ config, aws })
  server.addHook('onClose', async () => { await embedded.close() })
  await server.listen({ host: '127.0.0.1', port: 0 })
  const address = server.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  return { baseUrl: `http://127.0.0.1:${port}`, close: async () => { await server.close() } }
}

async function main (): Promise<void> {
  const given = process.env.RENDER_STORE_URL
  const dataDir = given === undefined || given === '' ? mkdtempSync(join(tmpdir(), 'render-store-demo-data-')) : undefined
  try {
    const embedded = dataDir !== undefined ? await startEmbeddedService(dataDir) : undefined
    if (embedded !== undefined) process.stdout.write(`started the embedded render-store at ${embedded.baseUrl}\n`)
    try {
      const baseUrl = given ?? embedded?.baseUrl ?? ''
      const result = await runDemo({ baseUrl, apiKey: process.env.RENDER_STORE_API_KEY })
      const durable = await runDurableDemo({ baseUrl, apiKey: process.env.RENDER_STORE_API_KEY, projectId: result.projectId, videoId: `${result.videoId}-durable` })
      const ok = result.first.upload_status === 'completed' && result.second.upload_status === 'completed' && result.second.code_upload_status === 'completed' &&
        durable.upload_status === 'completed'
      process.exitCode = ok ? 0 : 1
    } finally {
      await embedded?.close()
    }
  } finally {
    // The embedded service's S3 and DynamoDB data of this demo: nothing else uses it.
    if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true })
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main()
