import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import multipart from '@fastify/multipart'
import fp from 'fastify-plugin'
import { AjvCompiler, type BuildCompilerFromPool, type RouteDefinition } from '@fastify/ajv-compiler'
import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { AwsClients } from './aws/clients.js'
import type { Config } from './config.js'
import authPlugin from './http/auth.js'
import awsPlugin from './aws/clients.js'
import codeStorePlugin from './code/store.js'
import errorsPlugin, { frameworkErrorHandler } from './http/error-handler.js'
import healthPlugin from './health/checks.js'
import idempotencyPlugin from './idempotency/plugin.js'
import limitsPlugin, { limitServerOptions } from './http/limits.js'
import metricsPlugin from './http/metrics-plugin.js'
import openapiPlugin from './http/openapi.js'
import renderStorePlugin from './renders/plugin.js'
import videoStorePlugin from './videos/store.js'
import directUploadsPlugin from './uploads/direct.js'
import healthRoutes from '../routes/health.js'
import progressRoutes from '../routes/uploads/progress.js'
import renderRoutes from '../routes/renders.js'
import videoRoutes from '../routes/videos.js'
import directUploadRoutes from '../routes/uploads/direct.js'
import codeRoutes from '../routes/code.js'
import uiRoutes from '../routes/ui.js'
import { lazySchemas, type LazySchemas } from './http/lazy-schemas.js'
import checkpointRoutes from '../routes/checkpoints.js'
import tusRoutes from '../routes/uploads/tus.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** the route schemas still waiting to compile (src/http/lazy-schemas.ts) */
    routeSchemas: LazySchemas
  }
}

export interface AppOptions {
  config: Config
  /** pre-built clients (tests that inject faults); otherwise built from config */
  aws?: AwsClients
}

/** The whole application, top to bottom: external plugins, our plugins, then routes. */
export async function app (instance: FastifyInstance, options: AppOptions): Promise<void> {
  await instance.register(errorsPlugin)
  await instance.register(openapiPlugin)
  await instance.register(multipart, { limits: { fileSize: options.config.maxVideoBytes, files: 1, fields: 20, fieldSize: 64 * 1024, parts: 25 } })

  await instance.register(awsPlugin, { config: options.config, aws: options.aws })
  await instance.register(limitsPlugin)
  await instance.register(authPlugin)
  await instance.register(metricsPlugin)
  await instance.register(idempotencyPlugin)
  await instance.register(healthPlugin)
  await instance.register(renderStorePlugin)
  await instance.register(videoStorePlugin)
  await instance.register(directUploadsPlugin)
  await instance.register(codeStorePlugin)

  await instance.register(healthRoutes)
  await instance.register(renderRoutes)
  await instance.register(progressRoutes)
  await instance.register(videoRoutes)
  await instance.register(directUploadRoutes)
  await instance.register(codeRoutes)
  await instance.register(uiRoutes)
  await instance.register(checkpointRoutes)
  await instance.register(tusRoutes)
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

const ajvCompilers = AjvCompiler()

/**
 * Path, query and header values arrive as strings and are coerced to the schema's types; JSON bodies are not:
 * `{"content": 42}` or `{"tags": "a"}` is a 400, not silently "42" or ["a"].
 */
function strictBodyValidator (externalSchemas: Parameters<BuildCompilerFromPool>[0], options?: Parameters<BuildCompilerFromPool>[1]) {
  const ajvOptions = { customOptions: {}, ...options }
  const coercing = ajvCompilers(externalSchemas, ajvOptions)
  const strict = ajvCompilers(externalSchemas, { ...ajvOptions, customOptions: { ...ajvOptions.customOptions, coerceTypes: false } } as typeof ajvOptions)
  return (route: RouteDefinition) => (route.httpPart === 'body' ? strict : coercing)(route)
}

/**
 * Fastify's server options: logging with redaction, request ids, strict validation. Route schemas compile on first
 * use (`schemas`, src/http/lazy-schemas.ts) so the server listens sooner; buildServer warms them once it listens.
 */
export function serverOptions (config: Config, schemas: LazySchemas = lazySchemas()): FastifyServerOptions {
  return {
    logger: {
      level: config.logLevel,
      redact: {
        paths: ['req.headers.authorization', 'req.headers.cookie', 'req.headers["x-amz-security-token"]', '*.secretAccessKey', '*.sessionToken', 'config.credentials'],
        censor: '[redacted]'
      },
      transport: config.prettyLogs ? { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } : undefined
    },
    requestIdHeader: false,
    genReqId: (request: IncomingMessage) => {
      const given = request.headers['x-request-id']
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
    },
    // Unknown fields are refused (400), not silently dropped.
    // verbose: a union's error carries its alternatives, so the 400 can say what it accepts.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: true, verbose: true } },
    frameworkErrors: frameworkErrorHandler,
    schemaController: { compilersFactory: { buildValidator: schemas.validators(strictBodyValidator as never), buildSerializer: schemas.serializers() } },
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    ...limitServerOptions(config)
  }
}

/** A Fastify instance running the app, as the server and the tests use it. */
export async function buildServer (options: AppOptions, overrides: Partial<FastifyServerOptions> = {}): Promise<FastifyInstance> {
  const schemas = lazySchemas()
  const server = Fastify({ ...serverOptions(options.config, schemas), ...overrides }).withTypeProvider<TypeBoxTypeProvider>()
  // Compiled in the background once listening, so the first requests find their schemas ready (inject-only tests
  // compile on first use).
  server.addHook('onListen', async function () {
    void schemas.warm((error, route) => { server.log.error({ err: error, route }, 'a route schema does not compile: the route answers 500') })
      .then(() => { server.log.debug('route schemas compiled') })
  })
  server.addHook('onClose', async () => { schemas.stop() })
  server.decorate('routeSchemas', schemas)
  server.addHook('onRequest', async (request, reply) => { reply.header('x-request-id', request.id) })
  // Registered unencapsulated so the server (and tests) see the app's decorators.
  await server.register(fp(app, { name: 'render-store' }), options)
  return server
}
