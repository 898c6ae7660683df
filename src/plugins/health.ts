import fp from 'fastify-plugin'
import { createHealthChecker, type HealthChecker } from '../health.js'

declare module 'fastify' {
  interface FastifyInstance {
    health: HealthChecker
  }
}

export default fp(async function healthPlugin (app) {
  app.decorate('health', createHealthChecker({ aws: app.aws, config: app.config }))
}, { name: 'health', dependencies: ['aws'] })
