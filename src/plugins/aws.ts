import fp from 'fastify-plugin'
import { createAwsClients, type AwsClients } from '../aws/clients.js'
import type { Config } from '../config.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
    aws: AwsClients
  }
}

/** The SDK clients, built once from the configuration and closed with the app. */
export default fp<{ config: Config, aws?: AwsClients }>(async function awsPlugin (app, options) {
  const aws = options.aws ?? createAwsClients(options.config)
  app.decorate('config', options.config)
  app.decorate('aws', aws)
  app.addHook('onClose', async () => { aws.destroy() })
}, { name: 'aws' })
