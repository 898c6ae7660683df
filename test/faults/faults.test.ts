// Faults against the real embedded servers (stopped and restarted), each followed by the reconcile check.
import t from 'tap'
import { spawn } from 'node:child_process'
import { request as httpRequest, type ClientRequest } from 'node:http'
import { createServer } from 'node:net'
import { createAwsClients, type AwsClients } from '../../src/aws/clients.js'
import { isClean, reconcile, type ReconcileReport } from '../../src/ops/reconcile.js'
import type { Config } from '../../src/config.js'
import { build, listen, startTestAws } from '../helper.js'
import { drainedOrClosed, mp4Bytes } from '../support/render-fixtures.js'

const MiB = 1024 * 1024
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

interface Upload { request: ClientRequest, outcome: Promise<{ status: number, body: string } | { error: string }> }

/** A raw video upload whose body the test writes piece by piece, so a fault can strike in the middle. */
function startUpload (baseUrl: string, path: string, size: number): Upload {
  const url = new URL(path, baseUrl)
  const request = httpRequest({ host: url.hostname, port: url.port, method: 'POST', path: url.pathname, headers: { 'content-type': 'video/mp4', 'content-length': String(size) } })
  const outcome = new Promise<{ status: number, body: string } | { error: string }>((resolve) => {
    request.on('response', (response) => {
      let body = ''
      response.on('data', (chunk) => { body += String(chunk) })
      response.on('end', () => { resolve({ status: response.statusCode ?? 0, body }) })
      response.on('error', (error) => { resolve({ error: error.message }) })
    })
    request.on('error', (error) => { resolve({ error: error.message }) })
  })
  return { request, outcome }
}

async function send (request: ClientRequest, bytes: Buffer, pieceSize = 256 * 1024, pauseMs = 20): Promise<void> {
  for (let offset = 0; offset < bytes.length && !request.destroyed; offset += pieceSize) {
    const piece = bytes.subarray(offset, offset + pieceSize)
    if (!request.write(piece)) await drainedOrClosed(request)
    await sleep(pauseMs)
  }
}

/** The reconcile check, polled until clean: cleanup after a fault runs after the answer. */
async function settlesClean (aws: AwsClients, config: Config, timeoutMs = 20000): Promise<ReconcileReport> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const report = await reconcile({ aws, config }, { graceMs: 0, deep: true })
    if (isClean(report) || Date.now() > deadline) return report
    await sleep(500)
  }
}

async function renderCount (baseUrl: string, path: string): Promise<number> {
  const response = await fetch(`${baseUrl}${path}/renders`)
  if (response.status === 404) return 0
  return ((await response.json()) as { items: unknown[] }).items.length
}

t.test('S3 gone mid-upload: never 201, nothing visible, clean after S3 returns, next upload works', async (t) => {
  const testAws = await startTestAws(t)
  const { baseUrl } = await listen(t, { aws: testAws })
  const aws = createAwsClients(testAws.config)
  t.teardown(() => { aws.destroy() })
  const path = '/v1/projects/p1/videos/s3-gone'
  const bytes = mp4Bytes(6 * MiB)
  const upload = startUpload(baseUrl, `${path}/renders`, bytes.length)
  await send(upload.request, bytes.subarray(0, 2 * MiB))
  await testAws.embedded.s3.stop()
  await send(upload.request, bytes.subarray(2 * MiB))
  upload.request.end()
  const outcome = await upload.outcome
  t.not('status' in outcome ? outcome.status : 0, 201, `the upload failed (${JSON.stringify(outcome).slice(0, 200)})`)
  if ('status' in outcome) t.ok(outcome.status === 503 || (outcome.status >= 400 && outcome.status < 500), `a 503 or a client error, not a 500 (${outcome.status})`)
  await testAws.embedded.s3.restart()
  t.equal(await renderCount(baseUrl, path), 0, 'no render version')
  const report = await settlesClean(aws, testAws.config)
  t.ok(isClean(report), `reconcile finds nothing: ${JSON.stringify(report.orphans.concat(report.brokenRecords as never[]))}`)
  const retry = await fetch(`${baseUrl}${path}/renders`, { method: 'POST', headers: { 'content-type': 'video/mp4' }, body: bytes.subarray(0, MiB) })
  t.equal(retry.status, 201, 'the next upload works once S3 is back')
})

t.test('DynamoDB gone between the S3 write and the metadata write: nothing visible, no orphan', async (t) => {
  const testAws = await startTestAws(t)
  const { baseUrl } = await listen(t, { aws: testAws })
  const aws = createAwsClients(testAws.config)
  t.teardown(() => { aws.destroy() })
  const path = '/v1/projects/p1/videos/ddb-gone'
  const bytes = mp4Bytes(4 * MiB)
  const upload = startUpload(baseUrl, `${path}/renders`, bytes.length)
  // The session is written when the upload starts and the version item only after the last byte reaches S3:
  // DynamoDB stops just before the last 64 KiB, so the S3 write completes and the commit meets no table.
  await send(upload.request, bytes.subarray(0, bytes.length - 64 * 1024))
  await testAws.embedded.dynamodb.stop()
  await send(upload.request, bytes.subarray(bytes.length - 64 * 1024))
  upload.request.end()
  const outcome = await upload.outcome
  t.not('status' in outcome ? outcome.status : 0, 201, `the upload was not recorded (${JSON.stringify(outcome).slice(0, 200)})`)
  if ('status' in outcome) t.ok(outcome.status < 500 || outcome.status === 503, `no 500 (${outcome.status})`)
  await testAws.embedded.dynamodb.restart()
  t.equal(await renderCount(baseUrl, path), 0, 'no render version')
  const report = await settlesClean(aws, testAws.config)
  t.ok(isClean(report), `reconcile finds nothing: ${JSON.stringify(report).slice(0, 400)}`)
})

t.test('DynamoDB gone during a code POST: 503, and no object without a record', async (t) => {
  const testAws = await startTestAws(t)
  const app = await build(t, { aws: testAws })
  const aws = createAwsClients(testAws.config)
  t.teardown(() => { aws.destroy() })
  t.equal((await app.inject({ method: 'POST', url: '/v1/projects/p1/videos/code-ddb/code', payload: { content: 'v1\n' } })).statusCode, 201)
  const pending = app.inject({ method: 'POST', url: '/v1/projects/p1/videos/code-ddb/code', payload: { content: 'v2\n' } })
  await testAws.embedded.dynamodb.stop()
  const failed = await pending
  await testAws.embedded.dynamodb.restart()
  t.ok(failed.statusCode === 201 || failed.statusCode === 503, `either it landed before the stop or it is a 503 (${failed.statusCode})`)
  const latest = await app.inject({ method: 'GET', url: '/v1/projects/p1/videos/code-ddb/code', headers: { accept: 'text/plain' } })
  t.equal(latest.body, failed.statusCode === 201 ? 'v2\n' : 'v1\n', 'the latest is the last acknowledged write')
  const report = await settlesClean(aws, testAws.config)
  t.ok(isClean(report), `reconcile finds nothing: ${JSON.stringify(report).slice(0, 400)}`)
})

t.test('both gone at start-up: the service starts, /health 200, /health/ready 503, and recovers by itself', async (t) => {
  const testAws = await startTestAws(t)
  await Promise.all([testAws.embedded.s3.stop(), testAws.embedded.dynamodb.stop()])
  const app = await build(t, { aws: testAws, config: { healthTimeoutMs: 1000 } })
  t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200)
  const down = await app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(down.statusCode, 503)
  t.equal(down.json().overallStatus, 'unhealthy')
  const refused = await app.inject({ method: 'POST', url: '/v1/projects/p1/videos/boot/code', payload: { content: 'x\n' } })
  t.equal(refused.statusCode, 503, 'writes are refused with 503 while storage is down')
  t.ok(Number(refused.headers['retry-after']) > 0)

  await Promise.all([testAws.embedded.s3.restart(), testAws.embedded.dynamodb.restart()])
  t.equal((await app.inject({ method: 'GET', url: '/health/ready' })).statusCode, 200, 'ready without a restart of the service')
  const stored = await app.inject({ method: 'POST', url: '/v1/projects/p1/videos/boot/code', payload: { content: 'x\n' } })
  t.equal(stored.statusCode, 201)
  const aws = createAwsClients(testAws.config)
  t.teardown(() => { aws.destroy() })
  t.ok(isClean(await settlesClean(aws, testAws.config)), 'reconcile finds nothing')
})

t.test('the client hanging up mid-upload leaves nothing behind', async (t) => {
  const testAws = await startTestAws(t)
  const { baseUrl } = await listen(t, { aws: testAws })
  const aws = createAwsClients(testAws.config)
  t.teardown(() => { aws.destroy() })
  const path = '/v1/projects/p1/videos/hang-up'
  const bytes = mp4Bytes(6 * MiB)
  const upload = startUpload(baseUrl, `${path}/renders`, bytes.length)
  await send(upload.request, bytes.subarray(0, 3 * MiB))
  upload.request.destroy()
  await upload.outcome
  const report = await settlesClean(aws, testAws.config)
  t.ok(isClean(report), `reconcile finds nothing: ${JSON.stringify(report).slice(0, 400)}`)
  t.equal(report.objects, 0, 'no object, staging included')
  t.equal(await renderCount(baseUrl, path), 0, 'no render version')
})

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as import('node:net').AddressInfo).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

t.test('SIGTERM during an upload: the upload completes or leaves nothing, and the process exits within the grace period', async (t) => {
  const testAws = await startTestAws(t)
  const aws = createAwsClients(testAws.config)
  t.teardown(() => { aws.destroy() })
  const port = await freePort()
  const graceMs = 15000
  const child = spawn(process.execPath, [...process.execArgv, new URL('../../src/server.ts', import.meta.url).pathname], {
    env: {
      ...process.env,
      PORT: String(port),
      LOG_LEVEL: 'warn',
      SHUTDOWN_GRACE_MS: String(graceMs),
      AWS_ENDPOINT_URL_S3: testAws.config.s3Endpoint,
      AWS_ENDPOINT_URL_DYNAMODB: testAws.config.dynamodbEndpoint,
      AWS_S3_VIDEO_BUCKET: testAws.config.videoBucket,
      AWS_S3_CODE_BUCKET: testAws.config.codeBucket,
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      ALLOW_ANONYMOUS: 'true'
    },
    stdio: ['ignore', 'ignore', 'inherit']
  })
  const exited = new Promise<{ code: number | null, at: number }>((resolve) => { child.on('exit', (code) => { resolve({ code, at: Date.now() }) }) })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const baseUrl = `http://127.0.0.1:${port}`
  for (let ready = false; !ready;) {
    await sleep(250)
    ready = await fetch(`${baseUrl}/health`).then((response) => response.ok, () => false)
  }

  const path = '/v1/projects/p1/videos/sigterm'
  const bytes = mp4Bytes(4 * MiB)
  const upload = startUpload(baseUrl, `${path}/renders`, bytes.length)
  await send(upload.request, bytes.subarray(0, MiB))
  const signalledAt = Date.now()
  child.kill('SIGTERM')
  await send(upload.request, bytes.subarray(MiB))
  upload.request.end()
  const outcome = await upload.outcome
  const { at } = await exited
  t.ok(at - signalledAt < graceMs + 5000, `exited ${at - signalledAt} ms after SIGTERM (grace ${graceMs} ms)`)

  const report = await settlesClean(aws, testAws.config)
  t.ok(isClean(report), `reconcile finds nothing: ${JSON.stringify(report).slice(0, 400)}`)
  if ('status' in outcome && outcome.status === 201) {
    const render = JSON.parse(outcome.body) as { sizeBytes: number, sha256: string }
    t.equal(render.sizeBytes, bytes.length, 'the completed upload is whole')
    t.equal(report.records, 1, 'and recorded')
  } else {
    t.equal(report.records, 0, `the interrupted upload left no record (${JSON.stringify(outcome).slice(0, 200)})`)
    t.equal(report.objects, 0, 'and no object')
  }
})
