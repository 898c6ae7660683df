import t from 'tap'
import { build, startTestAws } from '../helper.js'

t.test('GET /health answers without touching any dependency', async (t) => {
  const aws = await startTestAws(t)
  const app = await build(t, { aws })
  await aws.embedded.s3.stop()
  await aws.embedded.dynamodb.stop()
  const response = await app.inject({ method: 'GET', url: '/health' })
  t.equal(response.statusCode, 200)
  const body = response.json()
  t.equal(body.status, 'ok')
  t.match(body.version, /^\d+\.\d+\.\d+/)
  t.type(body.uptimeSeconds, 'number')
})

t.test('GET /health/ready is healthy with all three dependencies up', async (t) => {
  const app = await build(t)
  const response = await app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(response.statusCode, 200)
  const body = response.json()
  t.equal(body.overallStatus, 'healthy')
  t.equal(body.services.s3Video.status, 'healthy')
  t.equal(body.services.s3Video.bucket, app.config.videoBucket)
  t.equal(body.services.s3Code.bucket, app.config.codeBucket)
  t.equal(body.services.dynamodb.tableStatus, 'ACTIVE')
  t.ok(Date.parse(body.timestamp) > 0)
})

t.test('with local S3 stopped, /health/ready is 503 unhealthy naming S3 within the timeout, and recovers', async (t) => {
  const aws = await startTestAws(t)
  const app = await build(t, { aws, config: { healthTimeoutMs: 1500 } })
  await aws.embedded.s3.stop()
  const started = Date.now()
  const response = await app.inject({ method: 'GET', url: '/health/ready' })
  const elapsed = Date.now() - started
  t.equal(response.statusCode, 503)
  t.equal(response.headers['retry-after'], '5')
  const body = response.json()
  t.equal(body.overallStatus, 'unhealthy')
  t.equal(body.services.s3Video.status, 'unhealthy')
  t.equal(body.services.s3Code.status, 'unhealthy')
  t.ok(body.services.s3Video.error, 'names the failure')
  t.equal(body.services.dynamodb.status, 'healthy')
  t.ok(elapsed < 1500 + 1000, `answered in ${elapsed} ms`)
  t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200)

  await aws.embedded.s3.restart()
  const recovered = await app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(recovered.statusCode, 200)
  t.equal(recovered.json().overallStatus, 'healthy')
})

t.test('a hung dependency cannot hang the probe', async (t) => {
  const net = await import('node:net')
  // A listener that accepts connections and never answers: the worst kind of dependency.
  const sockets: import('node:net').Socket[] = []
  const silent = net.createServer((socket) => { sockets.push(socket) })
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { sockets.forEach((socket) => socket.destroy()); silent.close() })
  const port = (silent.address() as import('node:net').AddressInfo).port
  // 1500 ms, not less: on a loaded 2-core machine the healthy S3's own HeadBucket took 393 ms, and this checks the hung
  // one is cut off, not how fast the healthy one is. A probe is at most two check timeouts (availability, then canary).
  const app = await build(t, { config: { dynamodbEndpoint: `http://127.0.0.1:${port}`, healthTimeoutMs: 1500 } })
  const started = Date.now()
  const response = await app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(response.statusCode, 503)
  t.ok(Date.now() - started < 2 * 1500 + 1000, 'bounded by the check timeout')
  t.match(response.json().services.dynamodb.error, /no answer within 1500 ms/)
  t.equal(response.json().services.s3Video.status, 'healthy')
})

t.test('readiness results are reused for HEALTH_CACHE_MS so a probe storm is one check', async (t) => {
  const app = await build(t, { config: { healthCacheMs: 60000 } })
  const first = (await app.inject({ method: 'GET', url: '/health/ready' })).json()
  const storm = await Promise.all(Array.from({ length: 20 }, async () => (await app.inject({ method: 'GET', url: '/health/ready' })).json()))
  t.ok(storm.every((body) => body.timestamp === first.timestamp), 'every answer is the cached one')
})
