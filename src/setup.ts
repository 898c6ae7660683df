// `npm run setup`: creates the buckets and table against whatever the configuration points at.
import pino from 'pino'
import { ConfigError, loadConfig } from './config.js'
import { createAwsClients } from './aws/clients.js'
import { provisionStorage } from './provision.js'
import { startEmbeddedAws } from './local/embedded.js'

const log = pino({ level: 'info' })
try {
  let config = loadConfig()
  const embedded = config.mode === 'embedded' ? await startEmbeddedAws({ dataDir: config.dataDir, buckets: [] }) : undefined
  if (embedded !== undefined) config = { ...config, s3Endpoint: embedded.s3.endpoint, dynamodbEndpoint: embedded.dynamodb.endpoint }
  const aws = createAwsClients(config)
  try {
    await provisionStorage(aws, config, log)
  } finally {
    aws.destroy()
    await embedded?.close()
  }
  log.info('storage is ready')
} catch (error) {
  if (error instanceof ConfigError) log.fatal(error.message)
  else log.fatal({ err: error }, 'setup failed')
  process.exitCode = 1
}
