import t from 'tap'
import { schemaCheck } from '../src/schema-check.js'
import { ApiKeysFile } from '../src/http/api-keys.js'
import { spawnSync } from 'node:child_process'
import { loadConfig, ConfigError } from '../src/config.js'

t.test('defaults give the embedded mode on port 3000', async (t) => {
  const config = loadConfig({})
  t.equal(config.mode, 'embedded')
  t.equal(config.port, 3000)
  t.equal(config.table, 'VideoMetadata')
  t.equal(config.sse.algorithm, 'AES256')
  t.equal(config.partSize, 8 * 1024 * 1024)
  t.equal(config.presignExpiresSeconds, 900)
})

t.test('AWS settings switch to aws mode and never embedded', async (t) => {
  const config = loadConfig({ AWS_S3_VIDEO_BUCKET: 'my-videos', AWS_S3_CODE_BUCKET: 'my-code', AWS_DYNAMODB_TABLE: 'Meta', AWS_KMS_KEY_ID: 'alias/render' })
  t.equal(config.mode, 'aws')
  t.equal(config.videoBucket, 'my-videos')
  t.same(config.sse, { algorithm: 'aws:kms', kmsKeyId: 'alias/render' })
  t.equal(config.s3Endpoint, undefined)
  t.equal(loadConfig({ AWS_S3_VIDEO_BUCKET: 'a-videos', AWS_S3_CODE_BUCKET: 'a-code', AWS_ENDPOINT_URL_S3: 'http://localhost:9000' }).s3Endpoint, 'http://localhost:9000')
})

t.test('a bad value is one clear line naming the variable', async (t) => {
  t.throws(() => loadConfig({ PORT: 'abc' }), new ConfigError('Invalid configuration: PORT="abc" must be an integer from 0 to 65535 (listening port)'))
  t.throws(() => loadConfig({ UPLOAD_PART_SIZE: '1024' }), { message: /UPLOAD_PART_SIZE="1024" must be an integer from 5242880/ })
  t.throws(() => loadConfig({ LOG_LEVEL: 'loud' }), { message: /LOG_LEVEL="loud"/ })
  t.throws(() => loadConfig({ AWS_S3_VIDEO_BUCKET: 'Bad_Bucket!', AWS_S3_CODE_BUCKET: 'ok-code' }), { message: /AWS_S3_VIDEO_BUCKET="Bad_Bucket!" must be text matching/ })
  t.throws(() => loadConfig({ S3_SSE: 'bogus' }), new ConfigError('Invalid configuration: S3_SSE="bogus" must be one of AES256, aws:kms, none'))
  t.throws(() => loadConfig({ LOG_LEVEL: 'loud' }), new ConfigError('Invalid configuration: LOG_LEVEL="loud" must be one of fatal, error, warn, info, debug, trace, silent'))
  t.throws(() => loadConfig({ ALLOW_ANONYMOUS: 'maybe' }), { message: /ALLOW_ANONYMOUS="maybe" must be true or false/ })
  t.throws(() => loadConfig({ PORT: '3.5' }), { message: /PORT="3.5" must be an integer/ }, 'a fraction is refused, not truncated')
  t.throws(() => loadConfig({ AWS_S3_VIDEO_BUCKET: 'only-videos' }), { message: /AWS_S3_CODE_BUCKET must both be set/ })
  t.throws(() => loadConfig({ S3_SSE: 'aws:kms' }), { message: /AWS_KMS_KEY_ID must be set/ })
})

t.test('booleans as environments spell them: true/false in any case, 1/0', async (t) => {
  for (const [spelled, value] of [['true', true], ['TRUE', true], ['True', true], ['1', true], ['false', false], ['FALSE', false], ['0', false]] as const) {
    t.equal(loadConfig({ ALLOW_ANONYMOUS: spelled, METRICS_OPEN_DETAIL: spelled }).allowAnonymous, value, `ALLOW_ANONYMOUS=${spelled}`)
  }
  t.equal(loadConfig({}).allowAnonymous, false, 'unset: the default')
})

t.test('MAX_VIDEO_BYTES goes up to 5 TiB (the largest S3 object: nothing is copied into place any more), not beyond', async (t) => {
  t.equal(loadConfig({}).maxVideoBytes, 5 * 1024 ** 3, 'default 5 GiB')
  t.equal(loadConfig({ MAX_VIDEO_BYTES: String(5 * 1024 ** 3 + 1) }).maxVideoBytes, 5 * 1024 ** 3 + 1, 'past the old CopyObject cap')
  t.equal(loadConfig({ MAX_VIDEO_BYTES: String(5 * 1024 ** 4) }).maxVideoBytes, 5 * 1024 ** 4)
  t.throws(() => loadConfig({ MAX_VIDEO_BYTES: String(5 * 1024 ** 4 + 1) }), { message: /MAX_VIDEO_BYTES="5497558138881" must be an integer from 1 to 5497558138880/ })
  t.throws(() => loadConfig({ MAX_VIDEO_BYTES: '0' }), { message: /MAX_VIDEO_BYTES="0"/ })
})

t.test('lease, complete-wait and commit-deadline settings: defaults and bounds', async (t) => {
  const config = loadConfig({})
  t.equal(config.uploadLeaseMs, 30000)
  t.equal(config.idempotencyLeaseMs, 30000)
  t.equal(config.completeWaitMs, 10000)
  t.equal(config.commitDeadlineMs, 15000)
  const set = loadConfig({ UPLOAD_LEASE_MS: '1000', IDEMPOTENCY_LEASE_MS: '600000', COMPLETE_WAIT_MS: '0', COMMIT_DEADLINE_MS: '100' })
  t.match(set, { uploadLeaseMs: 1000, idempotencyLeaseMs: 600000, completeWaitMs: 0, commitDeadlineMs: 100 }, 'the bounds themselves are accepted')
  t.throws(() => loadConfig({ UPLOAD_LEASE_MS: '999' }), { message: /UPLOAD_LEASE_MS="999"/ })
  t.throws(() => loadConfig({ IDEMPOTENCY_LEASE_MS: '600001' }), { message: /IDEMPOTENCY_LEASE_MS="600001"/ })
  t.throws(() => loadConfig({ COMPLETE_WAIT_MS: '-1' }), { message: /COMPLETE_WAIT_MS="-1"/ })
  t.throws(() => loadConfig({ COMPLETE_WAIT_MS: '50001' }), { message: /COMPLETE_WAIT_MS="50001"/ })
  t.throws(() => loadConfig({ COMMIT_DEADLINE_MS: '99' }), { message: /COMMIT_DEADLINE_MS="99"/ })
})

t.test('the server refuses to start on a bad value with that line and exit code 78', async (t) => {
  const result = spawnSync(process.execPath, [...process.execArgv, new URL('../src/server.ts', import.meta.url).pathname], {
    env: { ...process.env, PORT: 'not-a-port' }, encoding: 'utf8', timeout: 120_000
  })
  t.equal(result.status, 78)
  t.match(result.stderr, /render-store: Invalid configuration: PORT="not-a-port" must be an integer/)
})

t.test('the README documents every configuration variable', async (t) => {
  const { readFileSync } = await import('node:fs')
  const { EnvSchema } = await import('../src/config.js')
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const configuration = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('## Pointing it at real AWS'))
  for (const variable of Object.keys(EnvSchema.properties)) t.match(configuration, `\`${variable}\``, `${variable} is in the README's configuration table`)
})

t.test('the API keys file check names what is wrong, an unknown field included', async (t) => {
  const check = schemaCheck(ApiKeysFile)
  const entry = { id: 'ci', sha256: 'a'.repeat(64), projects: ['p'], scopes: ['read'] }
  t.equal(check([entry]), undefined, 'a good file passes')
  t.same(check([{ ...entry, role: 'admin' }]), { instancePath: '/0', message: 'must NOT have additional properties ("role")' })
  t.match(check([{ ...entry, sha256: 'xyz' }]), { instancePath: '/0/sha256', message: /must match pattern/ })
})
