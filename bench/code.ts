// `npm run bench:code`: GET latest code with the cache, without it, and a bare Fastify route answering the same
// JSON from memory (autocannon in its own process); then versions created per second by 1 writer and by 10.
// BENCH_BASELINE_DIR=<a built checkout of an older commit> runs that build beside this one, on the same emulators,
// so before and after are compared in one run.
import { fork } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { cpus } from 'node:os'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import { createAwsClients } from '../src/aws/clients.js'
import { buildServer } from '../src/app.js'
import { loadConfig, type Config } from '../src/config.js'
import { startEmbeddedAws } from '../src/local/embedded.js'
import { provisionStorage } from '../src/ops/provision.js'

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10)
const WRITES = Number(process.env.BENCH_WRITES ?? 100)
const autocannonCli = new URL('../../node_modules/autocannon/autocannon.js', import.meta.url).pathname

interface Load { requests: { average: number }, latency: { p50: number, p99: number }, non2xx: number, errors: number }

/** autocannon in its own process, so the load generator does not share the service's event loop. */
async function load (url: string): Promise<Load> {
  const child = fork(autocannonCli, ['-c', String(CONNECTIONS), '-d', String(SECONDS), '--json', url], { stdio: ['ignore', 'pipe', 'ignore', 'ipc'] })
  let output = ''
  child.stdout?.on('data', (chunk) => { output += String(chunk) })
  await new Promise((resolve) => child.once('exit', resolve))
  return JSON.parse(output) as Load
}

async function listen (app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 })
  return `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
}

const sampleCode = (index: number): string => `from manim import *\n\n\nclass Scene${index}(Scene):\n    def construct(self):\n${'        self.play(Write(Text("step")))\n'.repeat(40)}        # revision ${index}\n`

async function post (baseUrl: string, videoId: string, content: string, keyed = false): Promise<number> {
  const headers: Record<string, string> = { 'content-type': 'text/x-python', ...(keyed ? { 'idempotency-key': randomUUID() } : {}) }
  const response = await fetch(`${baseUrl}/v1/projects/bench/videos/${videoId}/code`, { method: 'POST', headers, body: content })
  await response.arrayBuffer()
  return response.status
}

/** Versions per second when `writers` loops each POST their share of WRITES distinct contents to the given videos. */
async function writeRate (baseUrl: string, writers: number, videoOf: (writer: number) => string, keyed = false): Promise<{ perSecond: number, failures: number }> {
  let failures = 0
  let sequence = 0
  const started = performance.now()
  await Promise.all(Array.from({ length: writers }, async (_, writer) => {
    for (let index = 0; index < WRITES / writers; index++) {
      if (await post(baseUrl, videoOf(writer), sampleCode(sequence++), keyed) !== 201) failures++
    }
  }))
  return { perSecond: WRITES / ((performance.now() - started) / 1000), failures }
}

const dataDir = mkdtempSync(join(tmpdir(), 'bench-code-'))
const base = loadConfig({ LOG_LEVEL: 'silent', DATA_DIR: dataDir, RATE_LIMIT_MAX: '0', OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0' })
const embedded = await startEmbeddedAws({ dataDir, buckets: [base.videoBucket, base.codeBucket] })
const config: Config = { ...base, s3Endpoint: embedded.s3.endpoint, dynamodbEndpoint: embedded.dynamodb.endpoint }
const provisioning = createAwsClients(config)
await provisionStorage(provisioning, config, { info: () => {}, warn: () => {} })
provisioning.destroy()

const baselineDir = process.env.BENCH_BASELINE_DIR
const baselineLabel = process.env.BENCH_BASELINE_LABEL ?? 'before'
type Build = typeof buildServer
const buildBaseline: Build | undefined = baselineDir === undefined ? undefined : (await import(join(baselineDir, 'dist/src/app.js')) as { buildServer: Build }).buildServer

const cachedApp = await buildServer({ config: { ...config, codeCacheTtlMs: 2000 } })
const uncachedApp = await buildServer({ config: { ...config, codeCacheTtlMs: 0 } })
const cachedUrl = await listen(cachedApp)
const uncachedUrl = await listen(uncachedApp)
const baselineCachedApp = await buildBaseline?.({ config: { ...config, codeCacheTtlMs: 2000 } })
const baselineUncachedApp = await buildBaseline?.({ config: { ...config, codeCacheTtlMs: 0 } })
const baselineCachedUrl = baselineCachedApp === undefined ? undefined : await listen(baselineCachedApp)
const baselineUncachedUrl = baselineUncachedApp === undefined ? undefined : await listen(baselineUncachedApp)
if (baselineCachedUrl !== undefined && await post(baselineCachedUrl, 'read-before', sampleCode(0)) !== 201) throw new Error('could not seed the baseline code version')
if (await post(cachedUrl, 'read', sampleCode(0)) !== 201) throw new Error('could not seed the code version')
const latestPath = '/v1/projects/bench/videos/read/code'
// The bare route sends the same bytes, serialised once up front: the least work any route can do for this answer.
const latestJson = await (await fetch(`${cachedUrl}${latestPath}`)).text()
const bare = Fastify({ logger: false })
bare.get(latestPath, async (_request, reply) => await reply.type('application/json; charset=utf-8').send(latestJson))
const bareUrl = await listen(bare)

const readTargets: Array<[string, string]> = [['bare Fastify route, JSON from memory', `${bareUrl}${latestPath}`], ['GET latest, cache on (2 s TTL)', `${cachedUrl}${latestPath}`], ['GET latest, cache off', `${uncachedUrl}${latestPath}`]]
if (baselineCachedUrl !== undefined && baselineUncachedUrl !== undefined) {
  const beforePath = '/v1/projects/bench/videos/read-before/code'
  readTargets.push([`${baselineLabel}: GET latest, cache on`, `${baselineCachedUrl}${beforePath}`], [`${baselineLabel}: GET latest, cache off`, `${baselineUncachedUrl}${beforePath}`])
}
const reads: Array<[string, Load]> = []
for (const [name, url] of readTargets) reads.push([name, await load(url)])
await bare.close()
await cachedApp.close()
await baselineCachedApp?.close()

// Before and after interleaved row by row, each on videos of its own, so drift of the machine hits both alike.
const writeCases: Array<[string, number, (writer: number) => string, boolean]> = [
  ['1 writer, one video', 1, () => 'write-one', false],
  ['1 writer, one video, each POST with an Idempotency-Key', 1, () => 'write-one-keyed', true],
  ['10 writers, one video', 10, () => 'write-ten', false],
  ['10 writers, 10 videos', 10, (writer) => `write-many-${writer}`, false]
]
const writes: Array<[string, { perSecond: number, failures: number }]> = []
for (const [name, writers, videoOf, keyed] of writeCases) {
  writes.push([name, await writeRate(uncachedUrl, writers, videoOf, keyed)])
  if (baselineUncachedUrl !== undefined && !keyed) writes.push([`${baselineLabel}: ${name}`, await writeRate(baselineUncachedUrl, writers, (writer) => `before-${videoOf(writer)}`)])
}
await uncachedApp.close()
await baselineUncachedApp?.close()
await embedded.close()
rmSync(dataDir, { recursive: true, force: true })

const bareRate = reads[0][1].requests.average
const readRows = reads.map(([name, result]) => `| ${name} | ${Math.round(result.requests.average)} | ${(result.requests.average / bareRate).toFixed(2)} | ${result.latency.p50} | ${result.latency.p99} | ${result.non2xx + result.errors} |`)
const writeRows = writes.map(([name, result]) => `| ${name} | ${result.perSecond.toFixed(1)} | ${result.failures} |`)

const report = `# Code versions: read and write throughput

${new Date().toISOString()}, Node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? 'unknown'}), shared with other work.
Embedded S3 (s3rver) and DynamoDB (dynalite) in child processes; autocannon in its own process, ${CONNECTIONS} connections, ${SECONDS} s per row.
The code file is ${Buffer.byteLength(sampleCode(0))} bytes; every response is the full JSON (content, presigned download URL).

## GET .../code (latest)

| route | req/s | × bare | p50 ms | p99 ms | non-2xx + errors |
|---|---|---|---|---|---|
${readRows.join('\n')}

Target: cached latest ≥ 0.75 × the bare route.${baselineDir === undefined ? '' : ` Rows named "${baselineLabel}" are the build in ${baselineDir}, run beside this one on the same emulators.`}

## POST .../code (new versions, raw text bodies, cache off)

| writers | versions/s | failures |
|---|---|---|
${writeRows.join('\n')}

${WRITES} distinct versions per row. Each version is now a Query of the latest item, a PutObject, one conditional PutItem of the version item, and the forward-only pointer (UpdateItem), plus the video record's upsert for a video's first version; with an Idempotency-Key also the key's PutItem and the recorded answer (UpdateItem). Before (claims): a GetItem, the claim (conditional UpdateItem), a PutObject, a PutItem and the commit (UpdateItem).
`
writeFileSync(new URL('../../bench/results/code.md', import.meta.url), report)
process.stdout.write(report)
