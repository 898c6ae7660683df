// Entry point: `npm start`. Loads configuration, starts the embedded AWS emulators when nothing else is configured,
// provisions buckets and table for them, and serves the API until SIGTERM or SIGINT.
// Start-up time: the emulators (child processes) are forked before the app's modules load, which is most of the
// start, so on a machine with a free core the two overlap; the app's modules are imported dynamically for that.
import closeWithGrace from 'close-with-grace'
import { ConfigError, loadConfig, type Config } from './config.js'
import { missingEmulatorPackages, startEmbeddedAws, type EmbeddedAws } from './local/embedded.js'
import { superviseEmulators } from './local/supervisor.js'
import type { FastifyBaseLogger } from 'fastify'

let config: Config
try {
  config = loadConfig()
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`render-store: ${error.message}\n`)
    process.exit(78) // EX_CONFIG
  }
  throw error
}

let embedded: EmbeddedAws | undefined
let log: FastifyBaseLogger | undefined
// A local emulator that dies is brought back on its port and data, so the service heals as it would against AWS:
// at most EMBEDDED_RESTART_MAX restarts per EMBEDDED_RESTART_WINDOW_MS, then again once the window has room.
const onUnexpectedExit = superviseEmulators({ log: () => log })
if (config.mode === 'embedded') {
  // The emulators are optional dependencies, left out of an AWS-mode install: say so in one line, not a stack trace.
  const missing = missingEmulatorPackages()
  if (missing.length > 0) {
    process.stderr.write(`render-store: the embedded mode (no AWS_S3_VIDEO_BUCKET/AWS_S3_CODE_BUCKET set) needs ${missing.join(' and ')}, which this install left out (--omit=optional); install them with \`npm ci\`, or configure AWS\n`)
    process.exit(78) // EX_CONFIG
  }
}
const starting = config.mode === 'embedded'
  ? startEmbeddedAws({ dataDir: config.dataDir, buckets: [config.videoBucket, config.codeBucket], onUnexpectedExit })
  : undefined
starting?.catch(() => {}) // a failure is reported below, once the imports are done; not an unhandled rejection meanwhile
const [{ buildServer }, { createAwsClients }, { provisionStorage }] = await Promise.all([import('./app.js'), import('./aws/clients.js'), import('./ops/provision.js')])
if (starting !== undefined) {
  embedded = await starting.catch((error: unknown) => {
    // Which emulator, on which port, and why (see startEmbeddedAws); whichever did start is stopped already.
    process.stderr.write(`render-store: could not start the embedded S3 and DynamoDB: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(69) // EX_UNAVAILABLE
  })
  config = { ...config, s3Endpoint: embedded.s3.endpoint, dynamodbEndpoint: embedded.dynamodb.endpoint }
}

const aws = createAwsClients(config)
const server = await buildServer({ config, aws }).catch((error: unknown) => {
  if (!(error instanceof ConfigError)) throw error
  process.stderr.write(`render-store: ${error.message}\n`)
  process.exit(78)
})
log = server.log
if (embedded !== undefined) {
  const emulators = embedded
  server.addHook('onClose', async () => { await emulators.close() })
  server.log.info({ s3: config.s3Endpoint, dynamodb: config.dynamodbEndpoint, dataDir: config.dataDir, emulatorPids: [emulators.s3.pid, emulators.dynamodb.pid] },
    `embedded local S3 at ${config.s3Endpoint} and DynamoDB at ${config.dynamodbEndpoint}, data in ${config.dataDir}`)
  try {
    await provisionStorage(aws, config, server.log)
  } catch (error) {
    server.log.error({ err: error }, 'could not provision the embedded buckets and table')
  }
} else {
  server.log.info({ region: config.region, videoBucket: config.videoBucket, codeBucket: config.codeBucket, table: config.table }, 'using AWS (run `npm run setup` once to create buckets and table)')
}

closeWithGrace({ delay: config.shutdownGraceMs }, async ({ signal, err }) => {
  if (err !== undefined) server.log.error({ err }, 'shutting down after an error')
  else server.log.info({ signal }, 'shutting down: finishing in-flight requests')
  await server.close()
})

try {
  await server.listen({ host: config.host, port: config.port })
} catch (error) {
  // A port in use or not allowed is the operator's to fix: one line saying which, not a stack trace.
  const code = (error as { code?: string }).code
  const reason = code === 'EADDRINUSE'
    ? `port ${config.port} on ${config.host} is already in use (another render-store or program listens there); stop it or set PORT to a free port`
    : code === 'EACCES'
      ? `not allowed to listen on port ${config.port} on ${config.host}; use a port above 1023 or run with the needed privilege`
      : code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND'
        ? `cannot listen on ${config.host}: no such local address; set HOST to an address of this machine (or 0.0.0.0)`
        : undefined
  if (reason === undefined) throw error
  process.stderr.write(`render-store: ${reason}\n`)
  await server.close().catch(() => {}) // exiting on the line above's reason; a failed close changes nothing
  process.exit(69) // EX_UNAVAILABLE
}
