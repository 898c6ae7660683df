import fp from 'fastify-plugin'
import { createHash, timingSafeEqual } from 'node:crypto'
import { HttpProblem } from '../errors.js'
import type { InitializeHandler, InitializeHandlerArguments, InitializeHandlerOutput, MetadataBearer, MiddlewareStack } from '@smithy/types'
import { awsCallErrors, awsCallRetries, awsCalls, httpRequestDuration, httpRequests, registry } from './metrics.js'

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

/**
 * What an anonymous scraper sees: no series of refused requests by route (401, 403) and no storage error names
 * (which tell an attacker what failed and where); request totals, latency, process and upload metrics stay.
 */
export function anonymousView (text: string): string {
  return text.split('\n').filter((line) => !/status_code="40[13]"/.test(line) &&
    !/render_store_aws_call_errors_total/.test(line) &&
    !/outcome="(?!ok")[^"]*"/.test(line.startsWith('render_store_aws_calls_total') ? line : '')).join('\n')
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

  const token = app.config.metrics?.token
  const digest = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest()
  const tokenDigest = token === undefined ? undefined : digest(token)
  app.get('/metrics', { config: { public: true }, schema: { hide: true } }, async (request, reply) => {
    let full = app.config.metrics?.openDetail === true
    if (tokenDigest !== undefined) {
      const presented = /^Bearer (.+)$/i.exec(request.headers.authorization ?? '')?.[1]
      if (presented === undefined || !timingSafeEqual(digest(presented), tokenDigest)) {
        throw new HttpProblem(401, 'Unauthorized', 'GET /metrics needs Authorization: Bearer <METRICS_TOKEN>.', { headers: { 'www-authenticate': 'Bearer realm="render-store-metrics"' } })
      }
      full = true
    }
    reply.type(registry.contentType)
    const text = await registry.metrics()
    return full ? text : anonymousView(text)
  })
}, { name: 'metrics', dependencies: ['aws'] })
