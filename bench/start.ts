// `npm run bench:start`: how long the service takes from being started to answering /health 200, on its embedded
// default (the S3 and DynamoDB emulators forked at start, a fresh data directory each time), side by side in one run:
// the bundle as it ships (`node dist/bundle/server.js`), the same through `npm start`, and the unbundled tsc output
// (`node dist/src/server.js`) it replaced. BENCH_START_RUNS starts of each (default 5), interleaved. Also the CPU
// time the server process had used by then (from /proc), which moves less with the machine's other load.
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'

const root = new URL('../..', import.meta.url).pathname
const RUNS = Number(process.env.BENCH_START_RUNS ?? 5)
const WAYS: Array<{ name: string, command: string[] }> = [
  { name: '`node dist/bundle/server.js` (what ships)', command: [process.execPath, 'dist/bundle/server.js'] },
  { name: '`npm start` (the README\'s command; runs the bundle)', command: ['npm', 'start', '--silent'] },
  { name: '`node dist/src/server.js` (unbundled, before)', command: [process.execPath, 'dist/src/server.js'] }
]

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  const port = (server.address() as { port: number }).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** CPU time (user + system, ms) a process has used, from /proc/PID/stat (clock ticks of 10 ms). */
function cpuMs (pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}

async function once (command: string[]): Promise<{ ms: number, cpu: number | undefined }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-start-'))
  const port = await freePort()
  const started = performance.now()
  const child = spawn(command[0], command.slice(1), {
    cwd: root, stdio: 'ignore', env: { ...process.env, PORT: String(port), DATA_DIR: dataDir, LOG_LEVEL: 'warn', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' }
  })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  try {
    for (;;) {
      const answer = await fetch(`http://127.0.0.1:${port}/health`).catch(() => undefined)
      if (answer?.status === 200) {
        const ms = performance.now() - started
        // npm runs the server as its grandchild: the CPU figure is the server's only where it is the child.
        return { ms, cpu: command[0] === 'npm' ? undefined : cpuMs(child.pid as number) }
      }
      await answer?.body?.cancel()
      if (performance.now() - started > 60_000) throw new Error(`${command.join(' ')}: no /health 200 within 60 s`)
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  } finally {
    child.kill('SIGTERM')
    await exited
    rmSync(dataDir, { recursive: true, force: true })
  }
}

const results = WAYS.map(() => ({ ms: [] as number[], cpu: [] as number[] }))
for (let run = 0; run < RUNS; run++) {
  for (const [index, way] of WAYS.entries()) {
    const { ms, cpu } = await once(way.command)
    results[index].ms.push(ms)
    if (cpu !== undefined) results[index].cpu.push(cpu)
  }
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
const list = (values: number[]): string => values.map((value) => (value / 1000).toFixed(2)).join(', ')
const report = `# Start time: spawned to /health 200 (bench/start.ts)

${new Date().toISOString()}, Node ${process.version}, ${cpus().length} cores. Embedded default: the S3 and DynamoDB emulators
are forked at every start, with a fresh data directory. ${RUNS} starts of each, interleaved. Load average at the end:
${loadavg().map((value) => value.toFixed(1)).join(' / ')} (1/5/15 min).

| how it is started | to /health 200, median | each start (s) | server CPU by then, median |
| --- | --- | --- | --- |
${WAYS.map((way, index) => `| ${way.name} | **${(median(results[index].ms) / 1000).toFixed(2)} s** | ${list(results[index].ms)} | ${results[index].cpu.length === 0 ? 'n/a (npm\'s grandchild)' : `${(median(results[index].cpu) / 1000).toFixed(2)} s`} |`).join('\n')}

Target (issue 13): \`npm start\` on a built tree answers /health within 2 s.
`
mkdirSync(new URL('../../bench/results/', import.meta.url), { recursive: true })
writeFileSync(new URL('../../bench/results/start.md', import.meta.url), report)
console.log(report)
