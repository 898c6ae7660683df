// Route schemas compile when first needed, not at start. Fastify compiles every route's validators (Ajv) and response
// serializers (fast-json-stringify) before it listens: about a third of the start, for routes most of which nobody
// calls in the first second. Here each compiler hands Fastify a stand-in that compiles on its first call, and
// `warm()` (run once the server listens) compiles whatever is still waiting one schema per turn of the event loop,
// so the first real requests find them compiled and other requests are served in between.
import SerializerSelector from '@fastify/fast-json-stringify-compiler'
import type { FastifyServerOptions } from 'fastify'

type Validate = ((data: unknown, context?: unknown) => unknown) & { errors?: unknown, schemaEnv?: unknown }
type Serialize = (data: unknown) => string
type Factories = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>
type ValidatorFactory = NonNullable<Factories['buildValidator']>
type SerializerFactory = NonNullable<Factories['buildSerializer']>

export interface LazySchemas {
  /** wraps a `schemaController.compilersFactory.buildValidator` */
  validators: (factory: ValidatorFactory) => ValidatorFactory
  /** wraps a `schemaController.compilersFactory.buildSerializer` (fast-json-stringify's by default) */
  serializers: (factory?: SerializerFactory) => SerializerFactory
  /**
   * Compiles what is still waiting, one schema per event-loop turn, until none is left or `stop()`. A schema that does
   * not compile is reported to `onError` and the rest still compile; the route answers 500 when called.
   */
  warm: (onError?: (error: unknown, route: RouteInfo) => void) => Promise<void>
  /** ends a warm() in progress (the server is closing) */
  stop: () => void
  /** how many schemas have not been compiled yet */
  readonly pending: number
}

/** What a compiler is given about the schema's route (method, url, httpPart or status code). */
export type RouteInfo = Record<string, unknown>

/** The route's method, url, part and status, for a log line; not the schema itself. */
function routeInfo (route: RouteInfo): RouteInfo {
  const { method, url, httpPart, httpStatus, contentType } = route
  return { method, url, httpPart, httpStatus, contentType }
}

export function lazySchemas (): LazySchemas {
  const waiting = new Map<() => unknown, RouteInfo>()
  let stopped = false

  /**
   * `compile` runs once, on the first call of the returned getter or when warmed, whichever comes first. A compile
   * that throws is remembered and thrown again at every call (Fastify answers 500), not retried at every request.
   */
  function deferred<T> (route: RouteInfo, compile: () => T): () => T {
    let compiled: { value: T } | { error: unknown } | undefined
    const get = (): T => {
      if (compiled === undefined) {
        try {
          compiled = { value: compile() }
        } catch (error) {
          compiled = { error }
        }
        waiting.delete(get)
      }
      if ('error' in compiled) throw compiled.error
      return compiled.value
    }
    waiting.set(get, route)
    return get
  }

  function lazyValidator (route: RouteInfo, compile: () => Validate): Validate {
    const get = deferred(route, compile)
    const validate: Validate = (data, context) => {
      const fn = get()
      const result = fn(data, context)
      validate.errors = fn.errors
      return result
    }
    // Fastify passes Ajv's parent-data context (so a coerced root value is written back) only to functions that
    // carry `schemaEnv`, as Ajv's own do.
    validate.schemaEnv = true
    return validate
  }

  function lazySerializer (route: RouteInfo, compile: () => Serialize): Serialize {
    const get = deferred(route, compile)
    return (data) => get()(data)
  }

  return {
    validators: (factory) => ((...args: unknown[]) => {
      const compiler = (factory as unknown as (...a: unknown[]) => (route: unknown) => Validate)(...args)
      return (route: RouteInfo) => lazyValidator(routeInfo(route), () => compiler(route))
    }) as never,
    serializers: (factory) => ((...args: unknown[]) => {
      const compiler = ((factory ?? SerializerSelector()) as unknown as (...a: unknown[]) => (route: unknown) => Serialize)(...args)
      return (route: RouteInfo) => lazySerializer(routeInfo(route), () => compiler(route))
    }) as never,
    async warm (onError) {
      // A Map visits what is added while it is walked, and `get` removes itself once compiled.
      for (const [get, route] of waiting) {
        await new Promise(resolve => setImmediate(resolve))
        if (stopped) return
        try {
          get()
        } catch (error) {
          onError?.(error, route)
        }
      }
    },
    stop () { stopped = true },
    get pending () { return waiting.size }
  }
}
