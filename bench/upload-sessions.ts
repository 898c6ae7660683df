// `npm run bench:sessions`: what opening large direct upload sessions costs other requests. 20 sessions of 5 GiB
// (640 parts of 8 MiB) are opened at once and every part URL of each is asked for (7 requests of at most 100),
// while a probe sends GET requests for a video record every 5 ms. Reported: the probe's latency (p50/p99/max), the
// service's event-loop delay (perf_hooks.monitorEventLoopDelay: the longest time the loop was held), and the CPU
// time one request of 100 part URLs takes to sign. Then 500 session creations with the default caps, counted.
// The service runs in this process (so the event loop measured is the service's); the embedded S3 and DynamoDB run
// in their own processes.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { loadConfig } from '../src/config.js'
import { buildServer } from '../src/app.js'
import { startEmbeddedAws } from '../src/local/embedded.js'
import { createAwsClients } from '../src/aws/clients.js'
import { provisionStorage } from '../src/provision.js'

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'
const GIB = 1024 ** 3
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 20)

const dataDir = mkdtempSync(join(tmpdir(), 'bench-sessions-'))
const base = loadConfig({ LOG_LEVEL: 'silent', DATA_DIR: dataDir, RATE_LIMIT_MAX: '0' })
const embedded = await startEmbeddedAws({ dataDir, buckets: [base.videoBucket, base.codeBucket] })
const config = { ...base, s3Endpoint: embedded.s3.endpoint, dynamodbEndpoint: embedded.dynamodb.endpoint }
const aws = createAwsClients(config)
await provisionStorage(aws, config, { info: () => {}, warn: () => {} })
aws.destroy()
// Caps high enough for the load part (the cap part below uses the defaults).
const app = await buildServer({ config: { ...config, uploadCaps: { perProject: 1000, perVideo: 1000 } } })
await app.listen({ host: '127.0.0.1', port: 0 })
const baseUrl = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

async function json (method: string, path: string, body?: unknown): Promise<{ status: number, body: any }> {
  const response = await fetch(`${baseUrl}${path}`, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
  return { status: response.status, body: await response.json().catch(() => undefined) }
}

await json('PUT', '/v1/projects/bench/videos/probe', { title: 'probe' })

const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0
}

/** GET a video record every 5 ms until stopped; latencies in ms. */
const probeStatuses = new Map<string, number>()
function probe (label = 'loaded'): { stop: () => Promise<number[]> } {
  const latencies: number[] = []
  let running = true
  const loop = (async () => {
    while (running) {
      const started = performance.now()
      const answer = await fetch(`${baseUrl}/v1/projects/bench/videos/probe`)
      await answer.arrayBuffer()
      const name = `${label} ${answer.status}`
      probeStatuses.set(name, (probeStatuses.get(name) ?? 0) + 1)
      latencies.push(performance.now() - started)
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  })()
  return { stop: async () => { running = false; await loop; return latencies } }
}

// Baseline: the probe alone.
const idleDelay = monitorEventLoopDelay({ resolution: 1 })
idleDelay.enable()
await new Promise((resolve) => setTimeout(resolve, 2000))
const idle = probe('idle')
await new Promise((resolve) => setTimeout(resolve, 3000))
const idleLatencies = await idle.stop()
idleDelay.disable()

// Load: 20 large sessions opened at once, each signing all of its 640 part URLs.
const delay = monitorEventLoopDelay({ resolution: 1 })
delay.enable()
const loaded = probe()
const signTimes: number[] = []
const started = performance.now()
let urls = 0
await Promise.all(Array.from({ length: SESSIONS }, async (_, index) => {
  const created = await json('POST', `/v1/projects/bench/videos/large-${index}/uploads`, { sizeBytes: 5 * GIB, contentType: 'video/mp4' })
  if (created.status !== 201) throw new Error(`create answered ${created.status}: ${JSON.stringify(created.body)}`)
  const partCount = created.body.partCount as number
  for (let first = 1; first <= partCount; first += 100) {
    const numbers = Array.from({ length: Math.min(100, partCount - first + 1) }, (_, offset) => first + offset)
    const t0 = performance.now()
    const signed = await json('POST', `/v1/projects/bench/videos/large-${index}/uploads/${created.body.uploadId}/parts`, { partNumbers: numbers })
    signTimes.push(performance.now() - t0)
    if (signed.status !== 200) throw new Error(`parts answered ${signed.status}`)
    urls += signed.body.parts.length
  }
}))
const loadSeconds = (performance.now() - started) / 1000
const loadedLatencies = await loaded.stop()
delay.disable()

// CPU time of signing 100 URLs in one request, alone (no other load).
const single = await json('POST', '/v1/projects/bench/videos/alone/uploads', { sizeBytes: 5 * GIB, contentType: 'video/mp4' })
const cpu: number[] = []
const block = monitorEventLoopDelay({ resolution: 1 })
block.enable()
for (let round = 0; round < 10; round++) {
  const before = process.cpuUsage()
  const numbers = Array.from({ length: 100 }, (_, offset) => round * 50 + offset + 1)
  await json('POST', `/v1/projects/bench/videos/alone/uploads/${single.body.uploadId}/parts`, { partNumbers: numbers })
  const used = process.cpuUsage(before)
  cpu.push((used.user + used.system) / 1000)
}
block.disable()

// Caps: 500 creations on one video with the configured defaults.
await app.close()
const capped = await buildServer({ config })
await capped.listen({ host: '127.0.0.1', port: 0 })
const cappedUrl = `http://127.0.0.1:${(capped.server.address() as { port: number }).port}`
const statuses: number[] = []
const capStarted = performance.now()
for (let batch = 0; batch < 25; batch++) {
  statuses.push(...await Promise.all(Array.from({ length: 20 }, async () => (await fetch(`${cappedUrl}/v1/projects/caps/videos/one/uploads`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sizeBytes: 1000, contentType: 'video/mp4' })
  })).status)))
}
const capSeconds = (performance.now() - capStarted) / 1000
await capped.close()
await embedded.close()
rmSync(dataDir, { recursive: true, force: true })

const ms = (value: number): string => `${value.toFixed(1)} ms`
const nsToMs = (value: number): number => value / 1e6
const report = `# Opening large direct upload sessions: cost to other requests (bench/upload-sessions.ts)

${new Date().toISOString()}, Node ${process.version}. Service in the bench process; embedded S3 and DynamoDB in their own processes.
Machine: 2 cores shared with other engineers' work.

## ${SESSIONS} sessions of 5 GiB opened at once, all ${urls} part URLs signed (${signTimes.length} requests of at most 100), in ${loadSeconds.toFixed(1)} s

| | probe GET p50 | probe GET p99 | probe GET max | probes | event-loop delay p99 | event-loop delay max |
| --- | --- | --- | --- | --- | --- | --- |
| idle | ${ms(percentile(idleLatencies, 50))} | ${ms(percentile(idleLatencies, 99))} | ${ms(Math.max(...idleLatencies))} | ${idleLatencies.length} | ${ms(nsToMs(idleDelay.percentile(99)))} | ${ms(nsToMs(idleDelay.max))} |
| while opening and signing | ${ms(percentile(loadedLatencies, 50))} | **${ms(percentile(loadedLatencies, 99))}** | ${ms(Math.max(...loadedLatencies))} | ${loadedLatencies.length} | ${ms(nsToMs(delay.percentile(99)))} | **${ms(nsToMs(delay.max))}** |

Probe answers by status: ${[...probeStatuses].map(([name, count]) => `${name}: ${count}`).join(', ')} (the service runs with its default overload shedding).

Target: other requests' p99 under 100 ms. Before this change the 20 sessions took 18.6 s and other readers got 503s
(640 URLs signed up front per creation, 0.8-1.7 s of blocked event loop each).

## One request of 100 part URLs, alone (10 requests)

- CPU time per request (service and the bench's fetch together): median ${ms(percentile(cpu, 50))}, max ${ms(Math.max(...cpu))}
- longest event-loop block meanwhile: ${ms(nsToMs(block.max))} (signing yields to the loop every 4 ms of work)
- request latency during the load above: p50 ${ms(percentile(signTimes, 50))}, p99 ${ms(percentile(signTimes, 99))}

## 500 session creations on one video with the default caps (MAX_OPEN_UPLOADS_PER_VIDEO=${config.uploadCaps.perVideo}, per project ${config.uploadCaps.perProject})

${statuses.filter((status) => status === 201).length} created, ${statuses.filter((status) => status === 429).length} refused with 429, other: ${statuses.filter((status) => status !== 201 && status !== 429).length}; ${capSeconds.toFixed(1)} s in batches of 20.
`
mkdirSync(new URL('../../bench/results/', import.meta.url), { recursive: true })
writeFileSync(new URL('../../bench/results/upload-sessions.md', import.meta.url), report)
console.log(report)
