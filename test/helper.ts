// One helper for every test: embedded S3 and DynamoDB on loopback (real wire protocol), the app built on them.
// With RENDER_STORE_TEST_BACKEND=strict (npm run test:strict) the same calls give each test file its own buckets and
// table on the strict backends (Ceph RGW + DynamoDB Local) that scripts/strict/start.sh started once for the run.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { loadConfig, type Config } from '../src/config.js'
import { startEmbeddedAws, type EmbeddedAws } from '../src/local/embedded.js'
import { startStrictAws, strictBackend } from './support/strict-backend.js'
import { createAwsClients } from '../src/aws/clients.js'
import { provisionStorage } from '../src/ops/provision.js'
import { buildServer } from '../src/app.js'

// The machines run Node 20 (CI also runs part of the suite on 24): the SDK's notice about its future Node support is
// noise in test output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'

type Test = { teardown: (fn: () => unknown) => void }

export interface TestAws {
  embedded: EmbeddedAws
  config: Config
  dataDir: string
}

const quietLog = { info: () => {}, warn: () => {} }

/** True when this run uses the strict backends (real SigV4, Object Lock, If-None-Match, ...): see test/support/strict-backend.ts. */
export const onStrictBackend = (): boolean => strictBackend() !== undefined

/**
 * Starts the embedded emulators in a fresh temp directory, provisions buckets and table, and stops them at teardown.
 * On the strict tier: fresh buckets (the code bucket with Object Lock when `codeObjectLock`) and table on the shared
 * strict backends, removed at teardown; `embedded` then names their endpoints and cannot stop or restart them.
 */
export async function startTestAws (t: Test, environment: Record<string, string> = {}, options: { codeObjectLock?: boolean } = {}): Promise<TestAws> {
  const strict = strictBackend()
  if (strict !== undefined) return await startStrictAws(t, strict, environment, options)
  const dataDir = mkdtempSync(join(tmpdir(), 'render-store-test-'))
  const base = loadConfig({ LOG_LEVEL: 'silent', DATA_DIR: dataDir, ...environment })
  // startEmbeddedAws stops whichever emulator did start when the other fails; once both run, teardown owns them, even
  // when provisioning below throws (the file then fails instead of hanging on two live child processes).
  const embedded = await startEmbeddedAws({ dataDir, buckets: [base.videoBucket, base.codeBucket] }).catch((error: unknown) => {
    rmSync(dataDir, { recursive: true, force: true })
    throw error
  })
  t.teardown(async () => {
    await embedded.close()
    rmSync(dataDir, { recursive: true, force: true })
  })
  // Overload shedding is off by default here: several test files share two cores, and the limits tests turn it on.
  const config: Config = { ...base, s3Endpoint: embedded.s3.endpoint, dynamodbEndpoint: embedded.dynamodb.endpoint, healthCacheMs: 0, overload: { maxEventLoopDelayMs: 0, maxHeapBytes: 0 } }
  const aws = createAwsClients(config)
  await provisionStorage(aws, config, quietLog)
  aws.destroy()
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
