// `npm run setup`: creates the buckets and table against whatever the configuration points at.
import pino from 'pino'
import { ConfigError, loadConfig } from '../config.js'
import { createAwsClients } from '../aws/clients.js'
import { ProvisionError, provisionStorage } from './provision.js'
import { startEmbeddedAws } from '../local/embedded.js'

const log = pino({ level: 'info' })
try {
  let config = loadConfig()
  const embedded = config.mode === 'embedded' ? await startEmbeddedAws({ dataDir: config.dataDir, buckets: [] }) : undefined
  if (embedded !== undefined) config = { ...config, s3Endpoint: embedded.s3.endpoint, dynamodbEndpoint: embedded.dynamodb.endpoint }
  const aws = createAwsClients(config)
  try {
    const { codeBucket } = await provisionStorage(aws, config, log)
    if (codeBucket.objectLock !== 'absent') log.info(`code versions can be locked (PUT .../code/versions/{version}/lock): the code bucket ${codeBucket.bucket} has S3 Object Lock`)
    else log.info(`the code bucket ${codeBucket.bucket} has no S3 Object Lock, so code versions cannot be locked (CODE_OBJECT_LOCK=true at setup creates it with Object Lock)`)
  } finally {
    aws.destroy()
    await embedded?.close()
  }
  log.info('storage is ready')
} catch (error) {
  if (error instanceof ConfigError || error instanceof ProvisionError) log.fatal(error.message)
  else log.fatal({ err: error }, 'setup failed')
  process.exitCode = 1
}
