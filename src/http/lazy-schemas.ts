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
  /** compiles what is still waiting, one schema per event-loop turn; resolves when none is left */
  warm: () => Promise<void>
  /** how many schemas have not been compiled yet */
  readonly pending: number
}

export function lazySchemas (): LazySchemas {
  const waiting = new Set<() => unknown>()

  /** `compile` runs once, on the first call of the returned getter or when warmed, whichever comes first. */
  function deferred<T> (compile: () => T): () => T {
    let compiled: T | undefined
    const get = (): T => {
      if (compiled === undefined) {
        compiled = compile()
        waiting.delete(get)
      }
      return compiled
    }
    waiting.add(get)
    return get
  }

  function lazyValidator (compile: () => Validate): Validate {
    const get = deferred(compile)
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

  function lazySerializer (compile: () => Serialize): Serialize {
    const get = deferred(compile)
    return (data) => get()(data)
  }

  return {
    validators: (factory) => ((...args: unknown[]) => {
      const compiler = (factory as unknown as (...a: unknown[]) => (route: unknown) => Validate)(...args)
      return (route: unknown) => lazyValidator(() => compiler(route))
    }) as never,
    serializers: (factory) => ((...args: unknown[]) => {
      const compiler = ((factory ?? SerializerSelector()) as unknown as (...a: unknown[]) => (route: unknown) => Serialize)(...args)
      return (route: unknown) => lazySerializer(() => compiler(route))
    }) as never,
    async warm () {
      // A Set visits what is added while it is walked, and `get` removes itself once compiled.
      for (const get of waiting) {
        await new Promise(resolve => setImmediate(resolve))
        get()
      }
    },
    get pending () { return waiting.size }
  }
}
