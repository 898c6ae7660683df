// `npm run bench:upload`: upload throughput through the service vs. lib-storage straight to the same local S3, vs. a
// bare Fastify route piping into lib-storage, and tus through the service vs. @tus/server + @tus/s3-store (both peers
// in their own process, bench/upload-peers.ts, on the service's S3); and the service's peak RSS for a small and a
// large upload, raw and over tus. The service (`node dist/src/server.js`, embedded mode) runs
// in its own process and forks its S3 and DynamoDB emulators; this process is the client. BENCH_BASELINE_DIR=<a built
// checkout of an older commit> starts that build too (its own emulators) and interleaves its raw uploads with ours.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { DeleteObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { loadConfig } from '../src/config.js'

const MiB = 1024 * 1024
const THROUGHPUT_MIB = Number(process.env.BENCH_MIB ?? 200)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const RSS_SIZES_MIB = (process.env.BENCH_RSS_MIB ?? '100,1024').split(',').map(Number)
const config = loadConfig({})
const serverEntry = new URL('../src/server.js', import.meta.url).pathname
const FTYP = Buffer.from([0, 0, 0, 0x18, ...Buffer.from('ftypisom'), 0, 0, 2, 0, ...Buffer.from('isomiso2')])
const block = randomBytes(MiB)

/** `size` bytes of an MP4-looking body, generated 1 MiB at a time (never held whole). */
function videoStream (size: number): Readable {
  let sent = 0
  return new Readable({
    read () {
      if (sent >= size) { this.push(null); return }
      const chunk = Buffer.from(block.subarray(0, Math.min(MiB, size - sent)))
      if (sent === 0) FTYP.copy(chunk)
      sent += chunk.length
      this.push(chunk)
    }
  })
}

interface Service { child: ChildProcess, baseUrl: string, s3Endpoint: string, dataDir: string }

async function startService (entry = serverEntry): Promise<Service> {
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-upload-'))
  mkdirSync(dataDir, { recursive: true })
  const port = 30000 + Math.floor(Math.random() * 20000)
  // Embedded mode: no AWS bucket, table or endpoint variables may reach the service.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('AWS_')))
  // BENCH_SERVICE_NODE_ARGS: extra node flags for the service only (e.g. --cpu-prof).
  const nodeArgs = (process.env.BENCH_SERVICE_NODE_ARGS ?? '').split(' ').filter((arg) => arg !== '')
  const child = spawn(process.execPath, [...nodeArgs, entry], {
    env: { ...env, DATA_DIR: dataDir, PORT: String(port), LOG_LEVEL: 'info', LOG_FORMAT: 'json' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  let s3Endpoint: string | undefined
  let listening = false
  let buffered = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error('the service did not start within 30 s')) }, 30_000)
    child.once('exit', (code) => { reject(new Error(`the service exited with ${code}`)) })
    child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString()
      for (let end = buffered.indexOf('\n'); end !== -1; end = buffered.indexOf('\n')) {
        const line = buffered.slice(0, end)
        buffered = buffered.slice(end + 1)
        try {
          const entry = JSON.parse(line) as { s3?: string, msg?: string }
          if (entry.s3 !== undefined) s3Endpoint = entry.s3
          if (entry.msg?.startsWith('Server listening') === true) listening = true
        } catch {}
        if (listening && s3Endpoint !== undefined) { clearTimeout(timer); resolve() }
      }
    })
  })
  child.stdout?.resume()
  return { child, baseUrl: `http://127.0.0.1:${port}`, s3Endpoint: s3Endpoint as string, dataDir }
}

/** CPU seconds (user + system) a process has used so far. */
const cpuOf = (pid: number): number => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

const rssOf = (pid: number): number => {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return match === null ? 0 : Number(match[1]) * 1024
}

/** Samples the service's RSS every 20 ms while `run` goes on. */
async function withRss<T> (pid: number, run: () => Promise<T>): Promise<{ result: T, before: number, peak: number }> {
  const before = rssOf(pid)
  let peak = before
  const timer = setInterval(() => { peak = Math.max(peak, rssOf(pid)) }, 20)
  try {
    return { result: await run(), before, peak }
  } finally {
    clearInterval(timer)
  }
}

async function post (url: string, headers: Record<string, string>, body: Readable): Promise<{ status: number, text: string }> {
  const request = httpRequest(url, { method: 'POST', headers })
  const answer = new Promise<{ status: number, text: string }>((resolve, reject) => {
    request.on('response', (response) => {
      let text = ''
      response.on('data', (chunk: Buffer) => { text += chunk.toString() })
      response.on('end', () => { resolve({ status: response.statusCode ?? 0, text }) })
    })
    request.on('error', reject)
  })
  await pipeline(body, request)
  return await answer
}

async function throughService (service: Service, videoId: string, sizeMiB: number, form: boolean, keyed = false): Promise<{ seconds: number, key: string }> {
  const size = sizeMiB * MiB
  const url = `${service.baseUrl}/v1/projects/bench/videos/${videoId}/renders`
  const started = performance.now()
  let answer
  if (form) {
    const boundary = `----bench${Date.now()}`
    const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nbench\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="v.mp4"\r\nContent-Type: video/mp4\r\n\r\n`)
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`)
    const body = Readable.from((async function * () { yield head; yield * videoStream(size); yield tail })())
    answer = await post(url, { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(head.length + size + tail.length) }, body)
  } else {
    answer = await post(url, { 'content-type': 'video/mp4', 'content-length': String(size), ...(keyed ? { 'idempotency-key': randomUUID() } : {}) }, videoStream(size))
  }
  const seconds = (performance.now() - started) / 1000
  if (answer.status !== 201) throw new Error(`upload answered ${answer.status}: ${answer.text.slice(0, 300)}`)
  return { seconds, key: (JSON.parse(answer.text) as { key: string }).key }
}

async function direct (s3: S3Client, sizeMiB: number): Promise<{ seconds: number, key: string }> {
  const key = `bench/direct-${Date.now()}.mp4`
  const started = performance.now()
  await new Upload({ client: s3, partSize: config.partSize, queueSize: config.queueSize, params: { Bucket: config.videoBucket, Key: key, Body: videoStream(sizeMiB * MiB), ContentType: 'video/mp4', ServerSideEncryption: 'AES256' } }).done()
  return { seconds: (performance.now() - started) / 1000, key }
}

interface Peers { child: ChildProcess, bareUrl: string, tusUrl: string }

async function startPeers (s3Endpoint: string): Promise<Peers> {
  const child = spawn(process.execPath, [new URL('./upload-peers.js', import.meta.url).pathname], {
    env: { ...process.env, S3_ENDPOINT: s3Endpoint, BUCKET: config.videoBucket, PART_SIZE: String(config.partSize), QUEUE_SIZE: String(config.queueSize) },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const ports = await new Promise<{ bare: number, tus: number }>((resolve, reject) => {
    child.once('exit', (code) => { reject(new Error(`the peers exited with ${code}`)) })
    child.stdout?.once('data', (chunk: Buffer) => { resolve(JSON.parse(chunk.toString()) as { bare: number, tus: number }) })
  })
  child.stdout?.resume()
  return { child, bareUrl: `http://127.0.0.1:${ports.bare}`, tusUrl: `http://127.0.0.1:${ports.tus}/files` }
}

async function throughBare (peers: Peers, sizeMiB: number): Promise<{ seconds: number, key: string }> {
  const started = performance.now()
  const answer = await post(`${peers.bareUrl}/upload/${randomUUID()}`, { 'content-type': 'video/mp4', 'content-length': String(sizeMiB * MiB) }, videoStream(sizeMiB * MiB))
  if (answer.status !== 201) throw new Error(`bare route answered ${answer.status}: ${answer.text.slice(0, 300)}`)
  return { seconds: (performance.now() - started) / 1000, key: (JSON.parse(answer.text) as { key: string }).key }
}

/** tus creation, then the whole body in one PATCH; timed from the POST to the PATCH's 204. */
async function throughTus (endpoint: string, sizeMiB: number): Promise<{ seconds: number, uploadUrl: string, renderVersion?: string }> {
  const size = sizeMiB * MiB
  const started = performance.now()
  const created = await fetch(endpoint, { method: 'POST', headers: { 'tus-resumable': '1.0.0', 'upload-length': String(size), 'upload-metadata': `filetype ${Buffer.from('video/mp4').toString('base64')}` } })
  if (created.status !== 201) throw new Error(`tus creation at ${endpoint} answered ${created.status}: ${(await created.text()).slice(0, 300)}`)
  const uploadUrl = new URL(created.headers.get('location') ?? '', endpoint).toString()
  const request = httpRequest(uploadUrl, { method: 'PATCH', headers: { 'tus-resumable': '1.0.0', 'upload-offset': '0', 'content-type': 'application/offset+octet-stream', 'content-length': String(size) } })
  const answer = new Promise<{ status: number, renderVersion?: string }>((resolve, reject) => {
    request.on('response', (response) => { response.resume(); response.on('end', () => { resolve({ status: response.statusCode ?? 0, renderVersion: response.headers['x-render-version'] as string | undefined }) }) })
    request.on('error', reject)
  })
  await pipeline(videoStream(size), request).catch(async (error: unknown) => { throw new Error(`tus PATCH at ${uploadUrl}: ${String(error)}; answered ${JSON.stringify(await Promise.race([answer, new Promise((resolve) => setTimeout(resolve, 1000))]))}`) })
  const { status, renderVersion } = await answer
  if (status !== 204) throw new Error(`tus PATCH at ${uploadUrl} answered ${status}`)
  return { seconds: (performance.now() - started) / 1000, uploadUrl, renderVersion }
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
const mbps = (mib: number, seconds: number): number => (mib * MiB) / 1e6 / seconds
const fmt = (value: number, digits = 1): string => value.toFixed(digits)

const s3Of = (endpoint: string): S3Client => new S3Client({
  region: 'us-east-1', endpoint, forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED'
})
const service = await startService()
const s3 = s3Of(service.s3Endpoint)
const drop = async (key: string): Promise<void> => { await s3.send(new DeleteObjectCommand({ Bucket: config.videoBucket, Key: key })) }
const baselineDir = process.env.BENCH_BASELINE_DIR
const baselineLabel = process.env.BENCH_BASELINE_LABEL ?? 'before'
const baseline = baselineDir === undefined ? undefined : await startService(join(baselineDir, 'dist/src/server.js'))
const baselineS3 = baseline === undefined ? undefined : s3Of(baseline.s3Endpoint)
const pid = service.child.pid as number
const peers = await startPeers(service.s3Endpoint)
const serviceTus = (videoId: string): string => `${service.baseUrl}/v1/projects/bench/videos/${videoId}/tus`
/** The render a tus upload through the service became, for its key. */
const tusRenderKey = async (videoId: string, version: string | undefined): Promise<string> =>
  ((await (await fetch(`${service.baseUrl}/v1/projects/bench/videos/${videoId}/renders/${version ?? 'latest'}`)).json()) as { key: string }).key
try {
  // Warm-up: connections, JIT, the table's first writes.
  await drop((await direct(s3, 16)).key)
  await drop((await throughService(service, 'warmup', 16, false)).key)
  if (baseline !== undefined) await throughService(baseline, 'warmup', 16, false)
  await drop((await throughBare(peers, 16)).key)
  await throughTus(peers.tusUrl, 16)
  const warm = await throughTus(serviceTus('warmup-tus'), 16)
  await drop(await tusRenderKey('warmup-tus', warm.renderVersion))

  const rss: Array<{ mib: number, before: number, peak: number, seconds: number }> = []
  for (const mib of RSS_SIZES_MIB) {
    const { result, before, peak } = await withRss(pid, async () => await throughService(service, `rss${mib}`, mib, false))
    await drop(result.key)
    rss.push({ mib, before, peak, seconds: result.seconds })
    process.stdout.write(`rss ${mib} MiB upload: service RSS ${fmt(before / MiB, 0)} -> peak ${fmt(peak / MiB, 0)} MiB\n`)
  }
  const rssTus: Array<{ mib: number, before: number, peak: number, seconds: number }> = []
  for (const mib of RSS_SIZES_MIB) {
    const { result, before, peak } = await withRss(pid, async () => await throughTus(serviceTus(`rsstus${mib}`), mib))
    await drop(await tusRenderKey(`rsstus${mib}`, result.renderVersion))
    rssTus.push({ mib, before, peak, seconds: result.seconds })
    process.stdout.write(`rss ${mib} MiB tus upload: service RSS ${fmt(before / MiB, 0)} -> peak ${fmt(peak / MiB, 0)} MiB\n`)
  }
  const loadBefore = loadavg()[0]
  const benchStarted = performance.now()
  const peerPid = peers.child.pid as number
  /** Runs one upload and adds the CPU seconds the process `pid` spent meanwhile to `into`. */
  const cpu = async <T>(into: number[], of: number, run: () => Promise<T>): Promise<T> => {
    const before = cpuOf(of)
    const result = await run()
    into.push(cpuOf(of) - before)
    return result
  }
  const cpuRuns: Record<'raw' | 'bare' | 'tus' | 'tusPeer', number[]> = { raw: [], bare: [], tus: [], tusPeer: [] }
  const runs: Record<'direct' | 'raw' | 'keyed' | 'multipart' | 'baseline' | 'bare' | 'tus' | 'tusPeer', number[]> = { direct: [], raw: [], keyed: [], multipart: [], baseline: [], bare: [], tus: [], tusPeer: [] }
  for (let round = 0; round < ROUNDS; round++) {
    const a = await direct(s3, THROUGHPUT_MIB)
    runs.direct.push(a.seconds)
    await drop(a.key)
    const b = await cpu(cpuRuns.raw, pid, async () => await throughService(service, `raw${round}`, THROUGHPUT_MIB, false))
    runs.raw.push(b.seconds)
    await drop(b.key)
    const c = await throughService(service, `form${round}`, THROUGHPUT_MIB, true)
    runs.multipart.push(c.seconds)
    await drop(c.key)
    const d = await throughService(service, `keyed${round}`, THROUGHPUT_MIB, false, true)
    runs.keyed.push(d.seconds)
    await drop(d.key)
    const f = await cpu(cpuRuns.bare, peerPid, async () => await throughBare(peers, THROUGHPUT_MIB))
    runs.bare.push(f.seconds)
    await drop(f.key)
    const g = await cpu(cpuRuns.tus, pid, async () => await throughTus(serviceTus(`tus${round}`), THROUGHPUT_MIB))
    runs.tus.push(g.seconds)
    await drop(await tusRenderKey(`tus${round}`, g.renderVersion))
    const h = await cpu(cpuRuns.tusPeer, peerPid, async () => await throughTus(peers.tusUrl, THROUGHPUT_MIB))
    runs.tusPeer.push(h.seconds)
    await s3.send(new DeleteObjectCommand({ Bucket: config.videoBucket, Key: new URL(h.uploadUrl).pathname.split('/').pop() }))
    if (baseline !== undefined && baselineS3 !== undefined) {
      const e = await throughService(baseline, `raw${round}`, THROUGHPUT_MIB, false)
      runs.baseline.push(e.seconds)
      await baselineS3.send(new DeleteObjectCommand({ Bucket: config.videoBucket, Key: e.key }))
    }
    process.stdout.write(`round ${round + 1}: direct ${fmt(mbps(THROUGHPUT_MIB, a.seconds))} MB/s, raw ${fmt(mbps(THROUGHPUT_MIB, b.seconds))} MB/s, multipart ${fmt(mbps(THROUGHPUT_MIB, c.seconds))} MB/s, keyed raw ${fmt(mbps(THROUGHPUT_MIB, d.seconds))} MB/s, bare ${fmt(mbps(THROUGHPUT_MIB, f.seconds))} MB/s, tus ${fmt(mbps(THROUGHPUT_MIB, g.seconds))} MB/s, @tus/server ${fmt(mbps(THROUGHPUT_MIB, h.seconds))} MB/s\n`)
  }

  const roundsSeconds = (performance.now() - benchStarted) / 1000
  const direct200 = median(runs.direct)
  const cpuRow = (name: string, seconds: number[]): string => `| ${name} | ${seconds.map((s) => fmt(s, 2)).join(' / ')} | ${fmt(median(seconds), 2)} |`
  const row = (name: string, seconds: number[]): string => {
    const m = median(seconds)
    return `| ${name} | ${seconds.map((s) => fmt(mbps(THROUGHPUT_MIB, s))).join(' / ')} | ${fmt(mbps(THROUGHPUT_MIB, m))} | ${fmt(direct200 / m, 2)} |`
  }
  const small = rss[0]
  const large = rss.at(-1) ?? small
  const tusSmall = rssTus[0]
  const tusLarge = rssTus.at(-1) ?? tusSmall
  const ratio = (ours: number[], theirs: number[]): string => fmt(median(theirs) / median(ours), 2)
  const report = `# Upload benchmark (\`npm run bench:upload\`)

Run ${new Date().toISOString()} on ${process.platform} ${process.arch}, Node ${process.version}, ${cpus().length} cores shared with other work
(1-minute load average ${fmt(loadBefore)} before the throughput rounds, ${fmt(loadavg()[0])} after them).
The service is \`node dist/src/server.js\` in embedded mode (its own process), which forks local S3 (s3rver) and
DynamoDB (dynalite) as further processes; this benchmark is the client. Body: generated bytes with an MP4 \`ftyp\`
header, streamed 1 MiB at a time. Part size ${config.partSize / MiB} MiB, queue size ${config.queueSize}, SSE AES256 in every case.

## Throughput, ${THROUGHPUT_MIB} MiB (${ROUNDS} rounds, interleaved; MB = 10^6 bytes)
| path | MB/s per round | median MB/s | vs. direct |
|---|---|---|---|
${row('lib-storage straight to the same S3', runs.direct)}
${row('raw video/mp4 body through the service', runs.raw)}
${row('multipart/form-data through the service', runs.multipart)}
${row('raw body with an Idempotency-Key', runs.keyed)}
${row('bare Fastify route piping into lib-storage (peer process)', runs.bare)}
${row('tus through the service (POST + one PATCH)', runs.tus)}
${row('@tus/server + @tus/s3-store (peer process; POST + one PATCH)', runs.tusPeer)}
${runs.baseline.length > 0 ? row(`${baselineLabel}: raw body through that build (its own emulators)`, runs.baseline) : ''}

| comparison (medians) | ratio | target |
|---|---|---|
| raw body through the service / bare Fastify route into lib-storage | ${ratio(runs.raw, runs.bare)} | >= 0.95 |
| tus through the service / @tus/server + @tus/s3-store | ${ratio(runs.tus, runs.tusPeer)} | >= 1.15 |

## CPU seconds per ${THROUGHPUT_MIB} MiB upload (user + system of the receiving process, from /proc; less noisy than MB/s on a loaded machine)
| receiver | per round | median |
|---|---|---|
${cpuRow('the service, raw body', cpuRuns.raw)}
${cpuRow('bare Fastify route into lib-storage (peer process)', cpuRuns.bare)}
${cpuRow('the service, tus (POST + one PATCH)', cpuRuns.tus)}
${cpuRow('@tus/server + @tus/s3-store (peer process)', cpuRuns.tusPeer)}

The ${ROUNDS} throughput rounds took ${fmt(roundsSeconds, 0)} s.

Both tus servers get the same part size (${config.partSize / MiB} MiB) and ${config.queueSize} parts in flight; the service's tus also
hashes (SHA-256) what it receives, records its parts in DynamoDB about once a second, and makes the upload a render
version (commit, session, pointer) before it answers the last PATCH; @tus/server answers once S3 assembled the parts.

"Through the service" is timed from the first byte sent to the 201 answer, so it includes sniffing, SHA-256,
the upload session and its lease and progress writes, the version commit (a Query and one conditional PutItem), and
the video record's forward-only pointer; with a key also the key's record and its recorded answer.
Target: >= 0.95 of direct.

## Service RSS during one raw upload (after a 16 MiB warm-up; sampled every 20 ms from /proc/{pid}/status)
| upload | RSS before | peak RSS | growth | seconds |
|---|---|---|---|---|
${rss.map((entry) => `| ${entry.mib} MiB | ${fmt(entry.before / MiB, 0)} MiB | ${fmt(entry.peak / MiB, 0)} MiB | ${fmt((entry.peak - entry.before) / MiB, 0)} MiB | ${fmt(entry.seconds, 1)} |`).join('\n')}

Peak of the ${large.mib} MiB upload vs. the ${small.mib} MiB one: ${fmt((large.peak / small.peak - 1) * 100)} %.

## Service RSS during one tus upload (POST + one PATCH)
| upload | RSS before | peak RSS | growth | seconds |
|---|---|---|---|---|
${rssTus.map((entry) => `| ${entry.mib} MiB | ${fmt(entry.before / MiB, 0)} MiB | ${fmt(entry.peak / MiB, 0)} MiB | ${fmt((entry.peak - entry.before) / MiB, 0)} MiB | ${fmt(entry.seconds, 1)} |`).join('\n')}

Peak of the ${tusLarge.mib} MiB tus upload vs. the ${tusSmall.mib} MiB one: ${fmt((tusLarge.peak / tusSmall.peak - 1) * 100)} %.
Targets: peak under 200 MiB; the large figure within 10 % of the small one.
`
  mkdirSync(new URL('../../bench/results/', import.meta.url), { recursive: true })
  writeFileSync(new URL('../../bench/results/upload.md', import.meta.url), report)
  process.stdout.write(report)
} finally {
  s3.destroy()
  baselineS3?.destroy()
  peers.child.kill('SIGTERM')
  for (const started of [service, baseline]) {
    if (started === undefined) continue
    await new Promise<void>((resolve) => {
      started.child.once('exit', () => { resolve() })
      started.child.kill('SIGTERM')
    })
    rmSync(started.dataDir, { recursive: true, force: true })
  }
}
