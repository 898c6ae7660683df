// `npm run bench:direct`: a direct multipart upload through the project's client (4 parallel parts, URLs signed on
// demand, SHA-256 hashed while the parts go out, then complete: assembly and the service's verification) against
// lib-storage's Upload straight to the same S3 with queueSize 4 and the same part size. S3 is the embedded s3rver in
// its own process (the service's own emulator child); one run each, alternating, BENCH_DIRECT_RUNS times.
// Size: BENCH_DIRECT_MIB (default 256: this machine has 2 cores shared by several engineers; 1024 for 1 GiB).
import { createReadStream, mkdirSync, mkdtempSync, rmSync, writeFileSync, openSync, writeSync, closeSync, readFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { createHash } from 'node:crypto'
import type { Readable } from 'node:stream'
import { Upload } from '@aws-sdk/lib-storage'
import { loadConfig } from '../src/config.js'
import { buildServer } from '../src/app.js'
import { startEmbeddedAws } from '../src/local/embedded.js'
import { createAwsClients, EMBEDDED_CREDENTIALS } from '../src/aws/clients.js'
import { provisionStorage } from '../src/ops/provision.js'
import { RenderStoreClient } from '../src/client/index.js'

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'
const MIB = 1024 * 1024
const size = Number(process.env.BENCH_DIRECT_MIB ?? 256) * MIB
const runs = Number(process.env.BENCH_DIRECT_RUNS ?? 2)
const PART = 8 * MIB

const dataDir = mkdtempSync(join(tmpdir(), 'bench-direct-'))
const base = loadConfig({ LOG_LEVEL: 'silent', DATA_DIR: dataDir, UPLOAD_PART_SIZE: String(PART), DIRECT_MULTIPART_THRESHOLD: String(16 * MIB), MAX_VIDEO_BYTES: String(8 * 1024 * MIB), RATE_LIMIT_MAX: '0' })
const embedded = await startEmbeddedAws({ dataDir, buckets: [base.videoBucket, base.codeBucket] })
const config = { ...base, s3Endpoint: embedded.s3.endpoint, dynamodbEndpoint: embedded.dynamodb.endpoint, overload: { maxEventLoopDelayMs: 0, maxHeapBytes: 0 } }
const aws = createAwsClients(config)
await provisionStorage(aws, config, { info: () => {}, warn: () => {} })
aws.destroy()
const app = await buildServer({ config })
await app.listen({ host: '127.0.0.1', port: 0 })
const baseUrl = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

// A valid MP4 head (the test fixture) and a `free` box of patterned bytes.
const file = join(dataDir, 'render.mp4')
const fixture = readFileSync(new URL('../../test/fixtures/render.mp4', import.meta.url))
const fd = openSync(file, 'w')
const header = Buffer.alloc(8)
header.writeUInt32BE(size - fixture.length, 0)
header.write('free', 4, 'latin1')
writeSync(fd, fixture)
writeSync(fd, header)
const block = Buffer.alloc(MIB)
for (let offset = 0; offset < block.length; offset += 4) block.writeUInt32BE(offset, offset)
let written = fixture.length + 8
while (written < size) written += writeSync(fd, block, 0, Math.min(block.length, size - written))
closeSync(fd)

const s3 = new S3Client({ region: config.region, endpoint: config.s3Endpoint, forcePathStyle: true, credentials: EMBEDDED_CREDENTIALS, requestChecksumCalculation: 'WHEN_REQUIRED' })
const client = new RenderStoreClient({ baseUrl, directUpload: { concurrency: 4, stateDir: join(dataDir, 'state') } })

/**
 * lib-storage's upload, then (timed apart) the same check the service makes before a render version exists: the
 * object read back from S3 and hashed (SHA-256), which is what a lib-storage user needs to know S3 holds their bytes.
 */
async function libStorage (run: number): Promise<{ total: number, partsDone: number, verified: number }> {
  const started = performance.now()
  let partsDone = 0
  const key = `bench/lib-storage-${run}.mp4`
  const upload = new Upload({ client: s3, queueSize: 4, partSize: PART, params: { Bucket: config.videoBucket, Key: key, Body: createReadStream(file), ContentType: 'video/mp4' } })
  upload.on('httpUploadProgress', (progress) => { if (progress.loaded === size) partsDone = performance.now() })
  await upload.done()
  const total = (performance.now() - started) / 1000
  const { Body } = await s3.send(new GetObjectCommand({ Bucket: config.videoBucket, Key: key }))
  const sha = createHash('sha256')
  for await (const chunk of Body as Readable) sha.update(chunk as Buffer)
  sha.digest('hex')
  return { total, partsDone: ((partsDone || performance.now()) - started) / 1000, verified: (performance.now() - started) / 1000 }
}

async function direct (run: number): Promise<{ total: number, partsDone: number }> {
  const started = performance.now()
  let partsDone = 0
  await client.uploadRenderDirect('bench', `direct-${run}`, file, { concurrency: 4, onProgress: (bytes, total) => { if (bytes === total) partsDone = performance.now() } })
  return { total: (performance.now() - started) / 1000, partsDone: (partsDone - started) / 1000 }
}

const rows: Array<{ run: number, lib: number, libParts: number, libVerified: number, direct: number, directParts: number }> = []
for (let run = 1; run <= runs; run++) {
  const measuredLib = await libStorage(run)
  const measured = await direct(run)
  rows.push({ run, lib: measuredLib.total, libParts: measuredLib.partsDone, libVerified: measuredLib.verified, direct: measured.total, directParts: measured.partsDone })
  console.log(`run ${run}: lib-storage ${measuredLib.total.toFixed(2)} s (parts at ${measuredLib.partsDone.toFixed(2)} s), direct ${measured.total.toFixed(2)} s (parts at ${measured.partsDone.toFixed(2)} s)`)
}
const mbps = (seconds: number): string => (size / MIB / seconds).toFixed(1)
const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
const lib = median(rows.map((row) => row.lib))
const libParts = median(rows.map((row) => row.libParts))
const libVerified = median(rows.map((row) => row.libVerified))
const end = median(rows.map((row) => row.direct))
const parts = median(rows.map((row) => row.directParts))
const report = `# Direct multipart upload vs lib-storage (bench/direct.ts)

${new Date().toISOString()}, Node ${process.version}, ${size / MIB} MiB file, ${PART / MIB} MiB parts, 4 at once on both sides; S3: embedded s3rver in
its own process (the service's emulator child); the service, the client and lib-storage share the bench process.
Machine: 2 cores shared with other engineers' work, so figures move between runs. Load average at the end: ${loadavg().map((value) => value.toFixed(1)).join(' / ')} (1/5/15 min).

| run | lib-storage: all parts sent | lib-storage: done (S3 assembled) | lib-storage, then read back and SHA-256 | direct: all parts sent | direct: render version made (assembly + verification + commit) |
| --- | --- | --- | --- | --- | --- |
${rows.map((row) => `| ${row.run} | ${row.libParts.toFixed(2)} s (${mbps(row.libParts)} MB/s) | ${row.lib.toFixed(2)} s (${mbps(row.lib)} MB/s) | ${row.libVerified.toFixed(2)} s (${mbps(row.libVerified)} MB/s) | ${row.directParts.toFixed(2)} s (${mbps(row.directParts)} MB/s) | ${row.direct.toFixed(2)} s (${mbps(row.direct)} MB/s) |`).join('\n')}

Median ratios (lib-storage time / direct time; target >= 0.9):
- all parts in S3, both sides (the transfer itself): **${(libParts / parts).toFixed(2)}**
- lib-storage done (S3 assembled) vs direct render version made: **${(lib / end).toFixed(2)}**. The direct path's end
  includes what lib-storage never does: the service reads the whole object back from S3 for its SHA-256 and container
  check, and commits the render version.
- the same work on both sides (lib-storage, then the object read back and hashed, vs direct render version made):
  **${(libVerified / end).toFixed(2)}**

The direct path also asks the service for part URLs (at most 100 per request, here 16 at a time), hashes the file
while the parts go out, and saves its session file after each part; lib-storage does none of that.
`
mkdirSync(new URL('../../bench/results/', import.meta.url), { recursive: true })
writeFileSync(new URL('../../bench/results/direct.md', import.meta.url), report)
console.log(report)
await app.close()
s3.destroy()
await embedded.close()
rmSync(dataDir, { recursive: true, force: true })
