// The service as its own process (src/server.ts on the embedded default), for tests whose client must not share the
// service's event loop: a wire race between a client still writing and a server closing only shows across processes.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

type Test = { teardown: (fn: () => unknown) => void }

export interface ServiceProcess { child: ChildProcess, baseUrl: string, output: () => string, stop: () => Promise<number | null> }

const serverEntry = new URL('../../src/server.ts', import.meta.url).pathname

/** Starts src/server.ts with the environment given (PORT 0, a fresh DATA_DIR) and resolves once it listens. */
export async function startServiceProcess (t: Test, environment: Record<string, string> = {}): Promise<ServiceProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), 'render-store-service-'))
  const child = spawn(process.execPath, [...process.execArgv, serverEntry], {
    env: { ...process.env, PORT: '0', DATA_DIR: dataDir, LOG_FORMAT: 'json', LOG_LEVEL: 'info', OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0', ...environment },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  const exited = new Promise<number | null>((resolve) => { child.once('exit', (code) => { resolve(code) }) })
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
    rmSync(dataDir, { recursive: true, force: true })
  })
  child.stderr?.on('data', (chunk) => { output += String(chunk) })
  const baseUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`service did not start:\n${output}`)) }, 60000)
    child.stdout?.on('data', (chunk) => {
      output += String(chunk)
      const listening = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)
      if (listening !== null) { clearTimeout(timer); resolve(listening[1]) }
    })
    void exited.then((code) => { clearTimeout(timer); reject(new Error(`service exited ${code}:\n${output}`)) })
  })
  return {
    child,
    baseUrl,
    output: () => output,
    stop: async () => { child.kill('SIGTERM'); return await exited }
  }
}
