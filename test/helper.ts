// One helper for every test: embedded S3 and DynamoDB on loopback (real wire protocol), the app built on them.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { loadConfig, type Config } from '../src/config.js'
import { startEmbeddedAws, type EmbeddedAws } from '../src/local/embedded.js'
import { createAwsClients } from '../src/aws/clients.js'
import { provisionStorage } from '../src/provision.js'
import { buildServer } from '../src/app.js'

// Node 20 is this project's fixed runtime: the SDK's notice about its own future Node support is noise in test output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'

type Test = { teardown: (fn: () => unknown) => void }

export interface TestAws {
  embedded: EmbeddedAws
  config: Config
  dataDir: string
}

const quietLog = { info: () => {}, warn: () => {} }

/** Starts the embedded emulators in a fresh temp directory, provisions buckets and table, and stops them at teardown. */
export async function startTestAws (t: Test, environment: Record<string, string> = {}): Promise<TestAws> {
  const dataDir = mkdtempSync(join(tmpdir(), 'render-store-test-'))
  const base = loadConfig({ LOG_LEVEL: 'silent', DATA_DIR: dataDir, ...environment })
  const embedded = await startEmbeddedAws({ dataDir, buckets: [base.videoBucket, base.codeBucket] })
  // Overload shedding is off by default here: several test files share two cores, and the limits tests turn it on.
  const config: Config = { ...base, s3Endpoint: embedded.s3.endpoint, dynamodbEndpoint: embedded.dynamodb.endpoint, healthCacheMs: 0, overload: { maxEventLoopDelayMs: 0, maxHeapBytes: 0 } }
  const aws = createAwsClients(config)
  await provisionStorage(aws, config, quietLog)
  aws.destroy()
  t.teardown(async () => {
    await embedded.close()
    rmSync(dataDir, { recursive: true, force: true })
  })
  return { embedded, config, dataDir }
}

/** Builds the app against the given (or freshly started) embedded AWS; closed at teardown. */
export async function build (t: Test, options: { aws?: TestAws, config?: Partial<Config>, beforeReady?: (app: FastifyInstance) => void } = {}): Promise<FastifyInstance & { testAws: TestAws }> {
  const testAws = options.aws ?? await startTestAws(t)
  const app = await buildServer({ config: { ...testAws.config, ...options.config } })
  t.teardown(async () => { await app.close() })
  options.beforeReady?.(app)
  await app.ready()
  return Object.assign(app, { testAws })
}

/** Builds the app and listens on an ephemeral loopback port; returns its base URL. */
export async function listen (t: Test, options: Parameters<typeof build>[1] = {}): Promise<{ app: FastifyInstance & { testAws: TestAws }, baseUrl: string }> {
  const app = await build(t, options)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  return { app, baseUrl: `http://127.0.0.1:${port}` }
}
