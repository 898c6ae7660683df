// `npm run bench:embedded`: should the embedded S3 run inside the service process or as a child process?
// While 200 MiB are stored into local S3, measure how the API answers (GET /health, autocannon) and the upload speed.
import { fork } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import S3rver from 's3rver'
import { loadConfig } from '../src/config.js'
import { buildServer } from '../src/app.js'
import { startEmulator } from '../src/local/embedded.js'

const MIB = Number(process.env.BENCH_MIB ?? 200)
const PROBE_SECONDS = Number(process.env.BENCH_PROBE_SECONDS ?? 5)
const uploader = new URL('./s3-uploader.js', import.meta.url).pathname

const autocannonCli = new URL('../../node_modules/autocannon/autocannon.js', import.meta.url).pathname

/** autocannon in its own process, so the load generator does not share the service's event loop. */
async function probe (url: string, seconds: number): Promise<{ requests: { average: number }, latency: { p50: number, p99: number, max: number } }> {
  const child = fork(autocannonCli, ['-c', '10', '-d', String(seconds), '--json', url], { stdio: ['ignore', 'pipe', 'ignore', 'ipc'] })
  let output = ''
  child.stdout?.on('data', (chunk) => { output += String(chunk) })
  await new Promise((resolve) => child.once('exit', resolve))
  return JSON.parse(output)
}

async function upload (endpoint: string): Promise<{ seconds: number, mbPerSecond: number }> {
  const child = fork(uploader, [endpoint, 'bench', String(MIB)], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] })
  let output = ''
  child.stdout?.on('data', (chunk) => { output += String(chunk) })
  await new Promise((resolve) => child.once('exit', resolve))
  return JSON.parse(output) as { seconds: number, mbPerSecond: number }
}

async function measure (variant: 'in-process' | 'child-process'): Promise<Record<string, number | string>> {
  const directory = mkdtempSync(join(tmpdir(), 'bench-embedded-'))
  let endpoint: string
  let stop: () => Promise<void>
  if (variant === 'in-process') {
    const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory, configureBuckets: [{ name: 'bench' }] })
    const { port } = await server.run()
    endpoint = `http://127.0.0.1:${port}`
    stop = async () => { await server.close() }
  } else {
    const emulator = await startEmulator('s3', { directory, buckets: ['bench'] })
    endpoint = emulator.endpoint
    stop = emulator.stop
  }
  const app = await buildServer({ config: { ...loadConfig({ LOG_LEVEL: 'silent' }), s3Endpoint: endpoint } })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address() as { port: number }
  const [health, result] = await Promise.all([probe(`http://127.0.0.1:${address.port}/health`, PROBE_SECONDS), upload(endpoint)])
  await app.close()
  await stop()
  rmSync(directory, { recursive: true, force: true })
  return {
    variant,
    uploadMBps: Number(result.mbPerSecond.toFixed(1)),
    uploadSeconds: Number(result.seconds.toFixed(2)),
    healthRequestsPerSecond: Math.round(health.requests.average),
    healthP50ms: health.latency.p50,
    healthP99ms: health.latency.p99,
    healthMaxMs: health.latency.max
  }
}

const rows = [await measure('in-process'), await measure('child-process')]
const header = Object.keys(rows[0])
const table = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((row) => `| ${header.map((key) => row[key]).join(' | ')} |`)].join('\n')
const report = `# Embedded S3: in-process vs. child process\n\n${new Date().toISOString()}, ${MIB} MiB stored with lib-storage (8 MiB parts, 3 at once) from a separate process while autocannon (its own process, 10 connections, ${PROBE_SECONDS} s from the upload's start) calls GET /health on the service.\n\n${table}\n`
mkdirSync(new URL('./results/', import.meta.url).pathname.replace('/dist/bench/', '/bench/'), { recursive: true })
writeFileSync(new URL('../../bench/results/embedded.md', import.meta.url), report)
process.stdout.write(report)
