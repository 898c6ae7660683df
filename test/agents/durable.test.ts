// A run paused in interrupt() outlives its agent process: checkpoints in render-store (RenderStoreCheckpointSaver), the
// process killed while it waits for a person, a NEW process resumes the run with Command({ resume }), and the service
// holds exactly the versions the run made, once each. Agent processes are real child processes (src/agents/demo/durable-run.ts).
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { listen } from '../helper.js'
import { closedPortUrl } from '../support/scripted-service.js'
import { RenderStoreClient } from '../../src/client/index.js'
import { durableRun } from '../../src/agents/demo/durable-run.js'

const script = fileURLToPath(new URL('../../src/agents/demo/durable-run.ts', import.meta.url))

interface Agent { child: ChildProcess, events: Array<Record<string, unknown>>, exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>, next: (event: string) => Promise<Record<string, unknown>>, stderr: () => string }

function agentProcess (args: string[]): Agent {
  const child = spawn(process.execPath, [...process.execArgv, script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'warn' } })
  const events: Array<Record<string, unknown>> = []
  const waiters: Array<{ event: string, resolve: (value: Record<string, unknown>) => void }> = []
  let buffered = ''
  let errors = ''
  child.stderr?.on('data', (chunk: Buffer) => { errors += chunk.toString() })
  child.stdout?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString()
    let newline: number
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline)
      buffered = buffered.slice(newline + 1)
      if (!line.startsWith('{')) continue
      const event = JSON.parse(line) as Record<string, unknown>
      events.push(event)
      for (const waiter of waiters.filter((w) => w.event === event.event)) waiter.resolve(event)
    }
  })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => { resolve({ code, signal }) }))
  const next = async (event: string): Promise<Record<string, unknown>> => {
    const seen = events.find((e) => e.event === event)
    if (seen !== undefined) return seen
    return await Promise.race([
      new Promise<Record<string, unknown>>((resolve) => waiters.push({ event, resolve })),
      exited.then(({ code, signal }) => { throw new Error(`agent process ended (${code ?? signal}) before '${event}':\n${errors.slice(-3000)}`) })
    ])
  }
  return { child, events, exited, next, stderr: () => errors }
}

t.test('paused in interrupt(), the process killed, resumed by a new process: versions stored exactly once', async (t) => {
  const { baseUrl } = await listen(t)
  const client = new RenderStoreClient({ baseUrl })
  const output = mkdtempSync(join(tmpdir(), 'agents-durable-'))
  t.teardown(() => { rmSync(output, { recursive: true, force: true }) })
  const common = ['--service', baseUrl, '--project', 'durable', '--video', 'pythagoras', '--thread', 'pythagoras-run-1', '--output', output]

  // Process 1: code stored, the render upload finds render-store unreachable, the human loop pauses the run.
  const first = agentProcess([...common, '--upload-service', await closedPortUrl()])
  t.teardown(() => { first.child.kill('SIGKILL') })
  const paused = await first.next('paused')
  t.match(paused, { thread: 'pythagoras-run-1', interrupts: [{ node: 'enhanced_renderer', choices: ['retry', 'skip', 'abort'], status: 0 }] }, 'the seed\'s node names, human loop on: the renderer asks a person')
  t.equal(first.child.exitCode, null, 'the process waits for a person')
  first.child.kill('SIGKILL')
  t.match(await first.exited, { signal: 'SIGKILL' }, 'killed while the run waits in interrupt()')

  t.same((await client.listCodeVersions('durable', 'pythagoras')).items.map((v) => v.version), [1], 'code v1 stored before the pause')
  t.same((await client.listRenders('durable', 'pythagoras')).items, [], 'no render yet')
  const checkpoints = await (await fetch(`${baseUrl}/v1/projects/durable/threads/pythagoras-run-1/checkpoints?limit=100`)).json() as { items: Array<{ checkpointId: string, metadata: { step: number } }> }
  t.ok(checkpoints.items.length >= 3, `the paused run's checkpoints are in render-store (${checkpoints.items.length})`)
  const ids = checkpoints.items.map((item) => item.checkpointId)
  t.same(ids, [...ids].sort().reverse(), 'listed newest first')

  // Process 2: a new process, same thread, resumes with Command({ resume: 'retry' }).
  const second = agentProcess([...common, '--resume', 'retry'])
  t.teardown(() => { second.child.kill('SIGKILL') })
  const done = await second.next('done')
  t.match(await second.exited, { code: 0 }, second.stderr().slice(-2000))
  t.match(done, { code_upload_status: 'completed', upload_status: 'completed', version: 1, render_version: 1, completed_steps: ['enhanced_code_generator', 'enhanced_renderer', 'summary'] })
  const progress = second.events.filter((e) => e.event === 'progress').map((e) => e.percentage as number)
  t.equal(progress.at(-1), 100, 'the resumed upload streamed its progress to 100')

  // Exactly once, as the service sees it: contiguous versions, no duplicates, nothing generated or stored again.
  t.same((await client.listCodeVersions('durable', 'pythagoras')).items.map((v) => v.version), [1], 'the code was stored once: the resume re-ran only the renderer')
  const renders = await client.listRenders('durable', 'pythagoras')
  t.same(renders.items.map((r) => r.version), [1], 'one render version')
  const render = await client.getRender('durable', 'pythagoras', 1)
  t.same(render.scenes?.map((s) => s.sceneNumber), [1, 2], 'both scene clips, once each')
  const status = await client.status('durable', 'pythagoras')
  t.equal(status.video.latestRenderVersion, 1)
  t.equal(status.code.latestVersion, 1)

  // Resuming the finished thread again (a second person, a retried deploy) stores nothing more.
  const lines: string[] = []
  t.equal(await durableRun({ service: baseUrl, project: 'durable', thread: 'pythagoras-run-1', output, resume: 'retry', write: (line) => lines.push(line) }), 'done')
  t.same((await client.listRenders('durable', 'pythagoras')).items.map((r) => r.version), [1], 'still one render version')
  t.same((await client.listCodeVersions('durable', 'pythagoras')).items.map((v) => v.version), [1], 'still one code version')
})
