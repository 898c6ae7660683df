import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { Liveness, Readiness } from '../schemas/health.js'
import { SERVICE_VERSION } from '../src/version.js'
import { createApiKeyVerifier, loadApiKeys } from '../src/http/api-keys.js'
import { withoutDetails } from '../src/health/checks.js'

const started = Date.now()
const BEARER = /^Bearer ([\x21-\x7e]{1,512})$/i

const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  // Readiness stays open (probes carry no key), but with API keys configured only a caller with a valid key sees which
  // bucket or table is failing and why, unless HEALTH_DETAILS=public. Without keys (the embedded default) all is open.
  const keys = app.config.apiKeysFile !== undefined ? loadApiKeys(app.config.apiKeysFile) : []
  const verifier = keys.length > 0 && app.config.healthDetails !== 'public' ? createApiKeyVerifier(keys) : undefined
  const showsDetails = (request: FastifyRequest): boolean => {
    if (verifier === undefined) return true
    const token = BEARER.exec(request.headers.authorization ?? '')?.[1]
    return token !== undefined && verifier.identify(token) !== undefined
  }

  app.get('/health', {
    config: { public: true },
    schema: { tags: ['health'], summary: 'Liveness: answers without touching any dependency', response: { 200: Liveness } }
  }, async () => ({ status: 'ok' as const, version: SERVICE_VERSION, uptimeSeconds: Math.round((Date.now() - started) / 1000) }))

  app.get('/health/ready', {
    config: { public: true },
    schema: {
      tags: ['health'],
      summary: 'Readiness of the video bucket, code bucket and table; 503 only when unhealthy',
      description: 'Checks each bucket (HeadBucket) and the table (DescribeTable), and at most every HEALTH_WRITE_CHECK_MS (30 s) writes and ' +
        'deletes a tiny canary object per bucket and a canary item: a refused write (IAM, bucket or key policy) makes the service unhealthy ' +
        '(503) with the reason. With API keys configured, bucket and table names and reasons are shown only to callers sending a valid key ' +
        '(HEALTH_DETAILS=public shows them to all).',
      response: { 200: Readiness, 503: Readiness }
    }
  }, async (request, reply) => {
    const readiness = await app.health.readiness()
    if (readiness.overallStatus === 'unhealthy') reply.code(503).header('retry-after', '5')
    return showsDetails(request) ? readiness : withoutDetails(readiness)
  })
}

export default healthRoutes
