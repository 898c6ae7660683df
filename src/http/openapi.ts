import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { SERVICE_VERSION } from '../version.js'
import { IdempotencyKeyHeader, problemResponses } from '../../schemas/common.js'
import { finishDocument, markRouteSchema } from '../ops/openapi-document.js'

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/** A route's header schema with Idempotency-Key added (a new object schema where the route had none). */
function withIdempotencyKey (headers: { properties?: Record<string, unknown> } | undefined): object {
  if (headers === undefined) return { type: 'object', properties: { 'idempotency-key': IdempotencyKeyHeader } }
  return { ...headers, properties: { ...headers.properties, 'idempotency-key': IdempotencyKeyHeader } }
}

/** The OpenAPI document is produced from the route schemas; openapi.yaml is this, written by `npm run openapi`. */
export default fp(async function openapiPlugin (app) {
  await app.register(swagger, {
    // Named components, operationIds, raw bodies and optional auth: src/ops/openapi-document.ts.
    transform: markRouteSchema,
    transformObject: finishDocument as never,
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'render-store',
        version: SERVICE_VERSION,
        description: 'Storage for AI video pipelines: rendered videos and scene clips in S3, versioned generated code, upload progress and health.'
      },
      components: {
        securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'an API key configured in API_KEYS_FILE' } }
      },
      tags: [
        { name: 'health', description: 'liveness, readiness and this document' },
        { name: 'videos', description: 'video records' },
        { name: 'renders', description: 'rendered videos, scene clips, direct uploads and progress' },
        { name: 'code', description: 'versioned generated code' }
      ]
    }
  })
  // Every API route takes the bearer key and may answer 401, 403 and 429; public ones (health, …) need nothing.
  app.addHook('onRoute', (route) => {
    const schema = route.schema as { hide?: boolean, security?: unknown, response?: Record<string, unknown>, headers?: { properties?: Record<string, unknown> } } | undefined
    if (schema === undefined || schema.hide === true) return
    if ((route.config as { public?: boolean } | undefined)?.public === true) {
      schema.security = []
      return
    }
    schema.security = [{ apiKey: [] }]
    schema.response = { ...problemResponses(401, 403, 429), ...schema.response }
    // Every write under /v1 takes an Idempotency-Key: 409 while the first request with it runs, 422 for another request.
    if ([route.method].flat().some((method) => WRITES.has(method)) && route.url.startsWith('/v1/')) {
      schema.headers = withIdempotencyKey(schema.headers) as typeof schema.headers
      schema.response = { ...problemResponses(409, 422), ...schema.response }
    }
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
  app.get('/openapi.yaml', { schema: { hide: true } }, async (_request, reply) => reply.type('application/yaml').send(app.swagger({ yaml: true })))
}, { name: 'openapi' })
