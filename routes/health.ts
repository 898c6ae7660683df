import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Liveness, Readiness } from '../schemas/health.js'
import { SERVICE_VERSION } from '../src/version.js'

const started = Date.now()

const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/health', {
    config: { public: true },
    schema: { tags: ['health'], summary: 'Liveness: answers without touching any dependency', response: { 200: Liveness } }
  }, async () => ({ status: 'ok' as const, version: SERVICE_VERSION, uptimeSeconds: Math.round((Date.now() - started) / 1000) }))

  app.get('/health/ready', {
    config: { public: true },
    schema: {
      tags: ['health'],
      summary: 'Readiness of the video bucket, code bucket and table; 503 only when unhealthy',
      response: { 200: Readiness, 503: Readiness }
    }
  }, async (_request, reply) => {
    const readiness = await app.health.readiness()
    if (readiness.overallStatus === 'unhealthy') reply.code(503).header('retry-after', '5')
    return readiness
  })
}

export default healthRoutes
