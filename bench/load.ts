// `npm run bench:load`: a mixed workload (health, reads, code writes, small uploads) against the embedded default
// started as its own process (`node dist/src/server.js`), at rising concurrency. Per level: throughput, p50/p99,
// errors and 5xx; after each level every acknowledged code version is read back (zero lost writes).
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs'
import { createServer } from 'node:net'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8)
const LEVELS = (process.env.BENCH_LEVELS ?? '1,4,16,64').split(',').map(Number)
const VIDEOS = 8
const UPLOAD_BYTES = 64 * 1024

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

const upload = randomBytes(UPLOAD_BYTES)
Buffer.from([0, 0, 0, 0x18, ...Buffer.from('ftypisom'), 0, 0, 2, 0, ...Buffer.from('isomiso2')]).copy(upload)

const dataDir = mkdtempSync(join(tmpdir(), 'bench-load-'))
const port = await freePort()
const baseUrl = `http://127.0.0.1:${port}`
const server = spawn(process.execPath, [new URL('../src/server.js', import.meta.url).pathname], {
  // Rate limiting is off (one client would hit it at once); overload shedding stays at its default, so a 503 counts.
  env: { ...process.env, PORT: String(port), DATA_DIR: dataDir, LOG_LEVEL: 'warn', LOG_FORMAT: 'json', RATE_LIMIT_MAX: '0' },
  stdio: ['ignore', 'ignore', 'inherit']
})
for (let ready = false; !ready;) {
  await new Promise((resolve) => setTimeout(resolve, 250))
  ready = await fetch(`${baseUrl}/health/ready`).then((response) => response.ok, () => false)
}

const codePath = (video: number): string => `/v1/projects/bench/videos/load-${video}/code`
for (let video = 0; video < VIDEOS; video++) {
  await fetch(`${baseUrl}${codePath(video)}`, { method: 'POST', headers: { 'content-type': 'text/x-python' }, body: `# seed ${video}\n` })
}

interface Acknowledged { video: number, version: number, sha256: string }
const acknowledged: Acknowledged[] = []
let sequence = 0
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')

/** One round of the mix: 2 health, 2 reads (latest code, the video record), 1 code write, 1 small upload. */
function mix (): autocannon.Request[] {
  return [
    { method: 'GET', path: '/health' },
    {
      method: 'GET',
      setupRequest: (request) => ({ ...request, path: `${codePath(sequence % VIDEOS)}` })
    },
    {
      method: 'POST',
      headers: { 'content-type': 'text/x-python' },
      setupRequest: (request, context) => {
        const id = sequence++
        const video = id % VIDEOS
        const body = `# write ${id}\nprint(${id})\n`
        ;(context as { write?: unknown }).write = { video, sha256: sha256(body) }
        return { ...request, path: codePath(video), body }
      },
      onResponse: (status, body, context) => {
        const write = (context as { write: { video: number, sha256: string } }).write
        if (status === 201) acknowledged.push({ ...write, version: (JSON.parse(body) as { version: number }).version })
      }
    },
    { method: 'GET', path: '/health/ready' },
    { method: 'GET', setupRequest: (request) => ({ ...request, path: `/v1/projects/bench/videos/load-${sequence % VIDEOS}` }) },
    { method: 'POST', path: '/v1/projects/bench/videos/uploads/renders', headers: { 'content-type': 'video/mp4' }, body: upload }
  ]
}

/** Every acknowledged version is there, with the acknowledged bytes. */
async function lostWrites (): Promise<number> {
  let lost = 0
  for (const write of acknowledged) {
    const response = await fetch(`${baseUrl}${codePath(write.video)}/versions/${write.version}`)
    const record = response.ok ? await response.json() as { sha256: string } : undefined
    if (record?.sha256 !== write.sha256) lost++
  }
  return lost
}

interface Row { connections: number, requestsPerSecond: number, p50: number, p99: number, errors: number, timeouts: number, fourXx: number, fiveXx: number, writes: number, lost: number }
const rows: Row[] = []
for (const connections of LEVELS) {
  const before = acknowledged.length
  const result = await autocannon({ url: baseUrl, connections, duration: SECONDS, requests: mix(), timeout: 30 })
  const fiveXx = result['5xx']
  rows.push({
    connections,
    requestsPerSecond: Math.round(result.requests.average),
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors,
    timeouts: result.timeouts,
    fourXx: result['4xx'],
    fiveXx,
    writes: acknowledged.length - before,
    lost: await lostWrites()
  })
  process.stdout.write(`${JSON.stringify(rows.at(-1))}\n`)
}

server.kill('SIGTERM')
await new Promise((resolve) => server.once('exit', resolve))
rmSync(dataDir, { recursive: true, force: true })

const good = rows.filter((row) => row.p99 < 1000)
const best = good.at(-1)
const report = [
  '# bench:load: mixed workload against the embedded default',
  '',
  `Service: \`node dist/src/server.js\` as its own process (embedded local S3 and DynamoDB as its child processes), rate limit off, overload shedding at its default. Load: autocannon in the bench process, ${SECONDS} s per level, on ${cpus().length} cores shared with the emulators${process.env.BENCH_NOTE !== undefined ? ` (${process.env.BENCH_NOTE})` : ''}.`,
  `Each connection cycles: GET /health, GET latest code, POST a new code version (distinct content, ${VIDEOS} videos), GET /health/ready, GET a video record, POST a ${UPLOAD_BYTES / 1024} KiB render upload.`,
  'Lost writes: after each level every code version answered 201 so far is read back by number and its sha256 compared.',
  '4xx are expected only as 429 from the cap on concurrent proxied uploads (MAX_CONCURRENT_UPLOADS, default 16), which answers with Retry-After.',
  '',
  '| connections | req/s | p50 ms | p99 ms | errors | timeouts | 4xx | 5xx | code versions written | lost writes |',
  '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...rows.map((row) => `| ${row.connections} | ${row.requestsPerSecond} | ${row.p50} | ${row.p99} | ${row.errors} | ${row.timeouts} | ${row.fourXx} | ${row.fiveXx} | ${row.writes} | ${row.lost} |`),
  '',
  best === undefined
    ? 'No level kept p99 under 1 s.'
    : `Highest level with p99 < 1 s: ${best.connections} connections, ${best.fiveXx} 5xx and ${best.lost} lost writes.`,
  ''
].join('\n')
mkdirSync(new URL('../../bench/results/', import.meta.url), { recursive: true })
const target = new URL('../../bench/results/load.md', import.meta.url)
writeFileSync(target, report)
process.stdout.write(report)
process.exitCode = best !== undefined && best.fiveXx === 0 && best.lost === 0 ? 0 : 1
