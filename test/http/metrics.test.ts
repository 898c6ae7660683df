import t from 'tap'
import { readFileSync } from 'node:fs'
import { build, startTestAws } from '../helper.js'
import { recordCodeCache, recordUploadBytes, startUpload } from '../../src/http/metrics.js'

/** The value of one sample line (`name{labels} value`) in Prometheus text, 0 when absent. */
function sample (text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`)
  let total = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue
    if (wanted.every((pair) => line.includes(pair))) total += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return total
}

const TOKEN = 'metrics-token-0123456789'

t.test('GET /metrics is Prometheus text and the request counter and latency histogram move by route template', async (t) => {
  const app = await build(t)
  const scrape = async (): Promise<string> => {
    const response = await app.inject({ method: 'GET', url: '/metrics' })
    t.equal(response.statusCode, 200)
    t.match(response.headers['content-type'], /^text\/plain; version=0\.0\.4/)
    return response.body
  }
  const before = await scrape()
  for (let i = 0; i < 3; i++) t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/no/such/path/12345' })).statusCode, 404)
  const after = await scrape()
  const health = { method: 'GET', route: '/health', status_code: '200' }
  t.equal(sample(after, 'render_store_http_requests_total', health) - sample(before, 'render_store_http_requests_total', health), 3)
  t.equal(sample(after, 'render_store_http_request_duration_seconds_count', health) - sample(before, 'render_store_http_request_duration_seconds_count', health), 3)
  t.ok(sample(after, 'render_store_http_requests_total', { route: 'unmatched', status_code: '404' }) >= 1, 'unknown URLs share one label')
  t.notMatch(after, /no\/such\/path/, 'raw URLs never become labels')
  t.match(after, /render_store_process_resident_memory_bytes/, 'default process metrics are there')
})

t.test('S3 and DynamoDB calls are counted, and a stopped S3 shows as errors with retries', async (t) => {
  const aws = await startTestAws(t)
  const app = await build(t, { aws, config: { healthTimeoutMs: 5000, metrics: { token: TOKEN, openDetail: false } } })
  const scrape = async (): Promise<string> => (await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } })).body
  const before = await scrape()
  t.equal((await app.inject({ method: 'GET', url: '/health/ready' })).statusCode, 200)
  const healthy = await scrape()
  t.equal(sample(healthy, 'render_store_aws_calls_total', { service: 's3', command: 'HeadBucketCommand', outcome: 'ok' }) -
    sample(before, 'render_store_aws_calls_total', { service: 's3', command: 'HeadBucketCommand', outcome: 'ok' }), 2, 'one HeadBucket per bucket')
  t.equal(sample(healthy, 'render_store_aws_calls_total', { service: 'dynamodb', command: 'DescribeTableCommand', outcome: 'ok' }) -
    sample(before, 'render_store_aws_calls_total', { service: 'dynamodb', command: 'DescribeTableCommand', outcome: 'ok' }), 1)

  await aws.embedded.s3.stop()
  t.equal((await app.inject({ method: 'GET', url: '/health/ready' })).statusCode, 503)
  const broken = await scrape()
  t.ok(sample(broken, 'render_store_aws_call_errors_total', { service: 's3' }) - sample(healthy, 'render_store_aws_call_errors_total', { service: 's3' }) >= 2,
    'each failed HeadBucket is an error')
  t.ok(sample(broken, 'render_store_aws_call_retries_total', { service: 's3' }) > sample(healthy, 'render_store_aws_call_retries_total', { service: 's3' }),
    'the SDK retried a refused connection before giving up')
})

t.test('upload and cache helpers move their series as stores call them', async (t) => {
  const app = await build(t)
  const scrape = async (): Promise<string> => (await app.inject({ method: 'GET', url: '/metrics' })).body
  const before = await scrape()
  const end = startUpload('render')
  const during = await scrape()
  t.equal(sample(during, 'render_store_uploads_in_flight', { kind: 'render' }) - sample(before, 'render_store_uploads_in_flight', { kind: 'render' }), 1)
  recordUploadBytes('render', 1234)
  recordUploadBytes('render', 0)
  end('completed')
  end('failed')
  recordCodeCache(true)
  recordCodeCache(false)
  recordCodeCache(true)
  const after = await scrape()
  t.equal(sample(after, 'render_store_uploads_in_flight', { kind: 'render' }), sample(before, 'render_store_uploads_in_flight', { kind: 'render' }), 'ending twice counts once')
  t.equal(sample(after, 'render_store_upload_bytes_total', { kind: 'render' }) - sample(before, 'render_store_upload_bytes_total', { kind: 'render' }), 1234)
  t.equal(sample(after, 'render_store_upload_duration_seconds_count', { kind: 'render', outcome: 'completed' }) -
    sample(before, 'render_store_upload_duration_seconds_count', { kind: 'render', outcome: 'completed' }), 1)
  t.equal(sample(after, 'render_store_upload_duration_seconds_count', { kind: 'render', outcome: 'failed' }), sample(before, 'render_store_upload_duration_seconds_count', { kind: 'render', outcome: 'failed' }))
  t.equal(sample(after, 'render_store_code_cache_lookups_total', { result: 'hit' }) - sample(before, 'render_store_code_cache_lookups_total', { result: 'hit' }), 2)
  t.equal(sample(after, 'render_store_code_cache_lookups_total', { result: 'miss' }) - sample(before, 'render_store_code_cache_lookups_total', { result: 'miss' }), 1)
})

t.test('during real requests: render and code upload bytes, the upload timer and code cache hits move', async (t) => {
  const app = await build(t)
  const scrape = async (): Promise<string> => (await app.inject({ method: 'GET', url: '/metrics' })).body
  const before = await scrape()
  const video = readFileSync(new URL('../fixtures/render.mp4', import.meta.url))
  const render = await app.inject({ method: 'POST', url: '/v1/projects/demo/videos/intro/renders', headers: { 'content-type': 'video/mp4' }, payload: video })
  t.equal(render.statusCode, 201, render.body)
  const code = await app.inject({ method: 'POST', url: '/v1/projects/demo/videos/intro/code', payload: { content: 'print("hi")\n' } })
  t.equal(code.statusCode, 201, code.body)
  for (let i = 0; i < 2; i++) t.equal((await app.inject({ method: 'GET', url: '/v1/projects/demo/videos/intro/code' })).statusCode, 200)
  const after = await scrape()
  const delta = (name: string, labels: Record<string, string>): number => sample(after, name, labels) - sample(before, name, labels)
  t.equal(delta('render_store_upload_bytes_total', { kind: 'render' }), video.length, 'render bytes counted')
  t.equal(delta('render_store_upload_bytes_total', { kind: 'code' }), 'print("hi")\n'.length, 'code bytes counted')
  t.equal(delta('render_store_upload_duration_seconds_count', { kind: 'render', outcome: 'completed' }), 1)
  t.equal(sample(after, 'render_store_uploads_in_flight', { kind: 'render' }), 0, 'nothing in flight afterwards')
  t.ok(delta('render_store_code_cache_lookups_total', { result: 'hit' }) >= 1, 'the second read of the latest code is a cache hit')
  t.equal(delta('render_store_http_requests_total', { method: 'POST', route: '/v1/projects/:projectId/videos/:videoId/renders', status_code: '201' }), 1, 'labelled by route template')
  t.ok(delta('render_store_aws_calls_total', { service: 's3', outcome: 'ok' }) >= 2, 'S3 calls counted')
  t.ok(delta('render_store_aws_calls_total', { service: 'dynamodb', outcome: 'ok' }) >= 4, 'DynamoDB calls counted')
})

t.test('anonymous /metrics shows no refused requests by route and no storage error names; METRICS_TOKEN unlocks them and closes it to others', async (t) => {
  const { KEYS, bearer, writeKeysFile } = await import('../support/auth.js')
  const aws = await startTestAws(t)
  const open = await build(t, { aws, config: { apiKeysFile: writeKeysFile(t) } })
  t.equal((await open.inject({ method: 'GET', url: '/v1/projects/p1/videos', headers: bearer('wrong-key') })).statusCode, 401)
  t.equal((await open.inject({ method: 'GET', url: '/v1/projects/p2/videos', headers: bearer(KEYS.writer) })).statusCode, 403)
  await aws.embedded.s3.stop()
  t.equal((await open.inject({ method: 'GET', url: '/health/ready' })).statusCode, 503)
  const anonymous = await open.inject({ method: 'GET', url: '/metrics' })
  t.equal(anonymous.statusCode, 200)
  t.notMatch(anonymous.body, /status_code="40[13]"/, 'no per-route 401/403 series')
  t.notMatch(anonymous.body, /aws_call_errors_total|render_store_aws_calls_total\{[^}]*outcome="(?!ok")/, 'no storage error names')
  t.match(anonymous.body, /render_store_aws_calls_total\{[^}]*outcome="ok"/, 'successful storage calls are still counted')
  t.match(anonymous.body, /render_store_http_requests_total\{/, 'request counts are still there')
  t.match(anonymous.body, /render_store_process_resident_memory_bytes/)

  const guarded = await build(t, { aws, config: { apiKeysFile: writeKeysFile(t), metrics: { token: TOKEN, openDetail: false } } })
  t.equal((await guarded.inject({ method: 'GET', url: '/v1/projects/p1/videos', headers: bearer('wrong-key') })).statusCode, 401)
  const refused = await guarded.inject({ method: 'GET', url: '/metrics' })
  t.equal(refused.statusCode, 401)
  t.match(refused.headers['content-type'], /^application\/problem\+json/)
  t.equal((await guarded.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer metrics-token-wrong-000' } })).statusCode, 401)
  const full = await guarded.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(full.statusCode, 200)
  t.match(full.body, /status_code="401"/, 'the token holder sees refused requests')
  t.match(full.body, /render_store_aws_call_errors_total\{/, 'and storage error names')
})
