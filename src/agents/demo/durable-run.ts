// One agent process of a durable run: its checkpoints live in render-store (RenderStoreCheckpointSaver), so a run that
// paused in interrupt() outlives the process and any process resumes it with Command({ resume }).
//
//   node dist/src/agents/demo/durable-run.js --service URL --project P --video V --thread T --output DIR   start a run
//   node dist/src/agents/demo/durable-run.js --service URL --project P --thread T --output DIR --resume retry   resume it
//
// --upload-service URL sends the renders elsewhere than the code and checkpoints (the demo points it at a closed port
// to stand for render-store being unreachable from the renderer: the upload fails, and the human loop pauses the run).
// Prints one JSON line per event on stdout: progress (from the graph's custom stream), paused (with the interrupt, then
// waits for a person: the process stays until killed, or exits with --exit-on-pause), done (the final state).
import { randomUUID } from 'node:crypto'
import { parseArgs } from 'node:util'
import { Command } from '@langchain/langgraph'
import { pino } from 'pino'
import { RenderStoreCheckpointSaver } from '../checkpoint-saver.js'
import { EnhancedCodeGeneratorAgent } from '../enhanced-code-generator-agent.js'
import { EnhancedRendererAgent } from '../enhanced-renderer-agent.js'
import { buildVideoGraph } from '../graph.js'
import { fixtureRenderer } from '../base-steps.js'
import type { VideoState } from '../state.js'
import { pathToFileURL } from 'node:url'

export interface DurableRunOptions {
  service: string
  uploadService?: string
  apiKey?: string
  project: string
  video?: string
  thread: string
  output: string
  resume?: string
  exitOnPause?: boolean
  timeoutSeconds?: number
  write?: (line: string) => void
}

/** Runs (or resumes) the thread; answers 'paused' or 'done'. */
export async function durableRun (options: DurableRunOptions): Promise<'paused' | 'done'> {
  const write = options.write ?? ((line: string) => { process.stdout.write(`${line}\n`) })
  const logger = pino({ level: process.env.LOG_LEVEL ?? 'warn' }, pino.destination(2))
  const agentConfig = { enableHumanLoop: true, timeoutSeconds: options.timeoutSeconds, logger }
  const retry = { retries: 1, initialDelayMs: 100, maxDelayMs: 500 }
  const system = { outputDir: options.output, render: fixtureRenderer({ paddingBytes: 256 * 1024 }) }
  const graph = buildVideoGraph({
    codeGenerator: new EnhancedCodeGeneratorAgent({ ...agentConfig, name: 'enhanced_code_generator' }, system, { baseUrl: options.service, apiKey: options.apiKey, retry }),
    renderer: new EnhancedRendererAgent({ ...agentConfig, name: 'enhanced_renderer' }, system, { baseUrl: options.uploadService ?? options.service, apiKey: options.apiKey, retry, uploadChunkBytes: 64 * 1024 }),
    checkpointer: new RenderStoreCheckpointSaver({ baseUrl: options.service, apiKey: options.apiKey, projectId: options.project })
  })
  const config = { configurable: { thread_id: options.thread, run_id: randomUUID() } }
  const input = options.resume !== undefined
    ? new Command({ resume: options.resume })
    : { topic: 'The Pythagorean theorem', description: 'A right triangle whose squares on the sides add up', project_id: options.project, video_id: options.video ?? options.thread, scene_count: 2 }
  let lastPercent = -1
  const interrupts: unknown[] = []
  for await (const [mode, chunk] of await graph.stream(input, { ...config, streamMode: ['updates', 'custom'] })) {
    if (mode === 'custom') {
      const event = chunk as { percentage: number }
      if (Math.floor(event.percentage) >= lastPercent + 10 || event.percentage === 100) {
        lastPercent = Math.floor(event.percentage)
        write(JSON.stringify({ event: 'progress', ...chunk }))
      }
    } else if (typeof chunk === 'object' && chunk !== null && '__interrupt__' in chunk) {
      interrupts.push(...(chunk as { __interrupt__: Array<{ value: unknown }> }).__interrupt__.map((entry) => entry.value))
    }
  }
  // The stream has ended: LangGraph has stored the checkpoint and the interrupt (the interrupt chunk itself comes
  // before they are stored, so a process killed on seeing it could lose the pause). From here on, killing is safe.
  const snapshot = await graph.getState({ configurable: { thread_id: options.thread } })
  if (snapshot.next.length > 0) {
    write(JSON.stringify({ event: 'paused', pid: process.pid, thread: options.thread, next: snapshot.next, interrupts }))
    return 'paused'
  }
  const state = snapshot.values as VideoState
  write(JSON.stringify({
    event: 'done',
    code_upload_status: state.code_upload_status,
    upload_status: state.upload_status,
    version: state.version,
    render_version: state.aws_upload_results.render_version,
    completed_steps: state.completed_steps,
    errors: state.errors
  }))
  return 'done'
}

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      service: { type: 'string' },
      'upload-service': { type: 'string' },
      project: { type: 'string', default: 'demo' },
      video: { type: 'string' },
      thread: { type: 'string' },
      output: { type: 'string' },
      resume: { type: 'string' },
      'exit-on-pause': { type: 'boolean', default: false },
      'timeout-seconds': { type: 'string' }
    }
  })
  if (values.service === undefined || values.thread === undefined || values.output === undefined) {
    process.stderr.write('usage: durable-run --service URL --thread T --output DIR [--project P] [--video V] [--upload-service URL] [--resume retry|skip|abort] [--exit-on-pause]\n')
    process.exitCode = 2
    return
  }
  const outcome = await durableRun({
    service: values.service,
    uploadService: values['upload-service'],
    apiKey: process.env.RENDER_STORE_API_KEY,
    project: values.project,
    video: values.video,
    thread: values.thread,
    output: values.output,
    resume: values.resume,
    timeoutSeconds: values['timeout-seconds'] === undefined ? undefined : Number(values['timeout-seconds'])
  })
  // Paused: a person decides, maybe much later and from another process; this one waits like any prompt would.
  if (outcome === 'paused' && !values['exit-on-pause']) setInterval(() => {}, 60_000)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main()
