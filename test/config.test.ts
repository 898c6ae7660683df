import t from 'tap'
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
  t.throws(() => loadConfig({ AWS_S3_VIDEO_BUCKET: 'Bad_Bucket!', AWS_S3_CODE_BUCKET: 'ok-code' }), { message: /AWS_S3_VIDEO_BUCKET="Bad_Bucket!" must be matching/ })
  t.throws(() => loadConfig({ AWS_S3_VIDEO_BUCKET: 'only-videos' }), { message: /AWS_S3_CODE_BUCKET must both be set/ })
  t.throws(() => loadConfig({ S3_SSE: 'aws:kms' }), { message: /AWS_KMS_KEY_ID must be set/ })
})

t.test('the server refuses to start on a bad value with that line and exit code 78', async (t) => {
  const result = spawnSync(process.execPath, [...process.execArgv, new URL('../src/server.ts', import.meta.url).pathname], {
    env: { ...process.env, PORT: 'not-a-port' }, encoding: 'utf8', timeout: 30000
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
