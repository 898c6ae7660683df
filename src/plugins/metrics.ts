import fp from 'fastify-plugin'
import type { InitializeHandler, InitializeHandlerArguments, InitializeHandlerOutput, MetadataBearer, MiddlewareStack } from '@smithy/types'
import { awsCallErrors, awsCallRetries, awsCalls, httpRequestDuration, httpRequests, registry } from '../metrics.js'

declare module 'fastify' {
  interface FastifyRequest {
    metricsStartedAt?: bigint
  }
}

type Stack = MiddlewareStack<any, MetadataBearer>

function attemptsOf (value: unknown): number {
  return (value as { $metadata?: { attempts?: number } } | undefined)?.$metadata?.attempts ?? 1
}

/** Counts every call of one SDK client, its retries and its final errors, at the outermost step so retries are inside it. */
function instrument (stack: Stack, service: 's3' | 'dynamodb'): void {
  stack.add((next: InitializeHandler<any, MetadataBearer>, context) => async (args: InitializeHandlerArguments<any>): Promise<InitializeHandlerOutput<MetadataBearer>> => {
    const command = (context as { commandName?: string }).commandName ?? 'unknown'
    try {
      const result = await next(args)
      const retries = attemptsOf(result.output) - 1
      if (retries > 0) awsCallRetries.inc({ service, command }, retries)
      awsCalls.inc({ service, command, outcome: 'ok' })
      return result
    } catch (error) {
      const name = (error as { name?: string }).name ?? 'Error'
      const retries = attemptsOf(error) - 1
      if (retries > 0) awsCallRetries.inc({ service, command }, retries)
      awsCalls.inc({ service, command, outcome: name })
      awsCallErrors.inc({ service, command, error: name })
      throw error
    }
  }, { step: 'initialize', name: 'renderStoreMetrics', override: true })
}

/** GET /metrics in Prometheus text format; request rate and latency by route template; SDK call counters. */
export default fp(async function metricsPlugin (app) {
  instrument(app.aws.s3.middlewareStack as Stack, 's3')
  instrument(app.aws.dynamodb.middlewareStack as Stack, 'dynamodb')
  // The document client normally shares the plain client's stack; instrument it only if it has its own.
  if (app.aws.ddb.middlewareStack !== app.aws.dynamodb.middlewareStack) instrument(app.aws.ddb.middlewareStack as Stack, 'dynamodb')

  app.addHook('onRequest', async (request) => { request.metricsStartedAt = process.hrtime.bigint() })
  app.addHook('onResponse', async (request, reply) => {
    // The template (/v1/projects/:projectId/...) keeps label cardinality bounded; unmatched URLs share one label.
    const labels = { method: request.method, route: request.routeOptions.url ?? 'unmatched', status_code: String(reply.statusCode) }
    httpRequests.inc(labels)
    if (request.metricsStartedAt !== undefined) httpRequestDuration.observe(labels, Number(process.hrtime.bigint() - request.metricsStartedAt) / 1e9)
  })

  app.get('/metrics', { config: { public: true }, schema: { hide: true } }, async (_request, reply) => {
    reply.type(registry.contentType)
    return await registry.metrics()
  })
}, { name: 'metrics', dependencies: ['aws'] })
