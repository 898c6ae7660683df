// One-off validation of a value against a TypeBox schema, outside any route: the environment (src/config.ts) and the
// API keys file (src/http/api-keys.ts). It uses the Ajv that Fastify's validator compiler brings anyway, not
// typebox/value, whose 300-odd modules the server would otherwise load at every start just for these two checks.
import { AjvCompiler } from '@fastify/ajv-compiler'
import type { TSchema } from 'typebox'

export interface SchemaError {
  /** JSON pointer to the value at fault ('' for the whole value) */
  instancePath: string
  message: string
}

export interface SchemaCheck {
  /** Checks `value` in place: with `coerce`, strings become the numbers and booleans the schema asks for and
   * missing properties take their defaults. Answers the first error, or undefined. */
  (value: unknown): SchemaError | undefined
}

export function schemaCheck (schema: TSchema, options: { coerce?: boolean } = {}): SchemaCheck {
  const compile = AjvCompiler()({}, {
    customOptions: {
      coerceTypes: options.coerce === true,
      useDefaults: options.coerce === true,
      removeAdditional: false,
      allErrors: false,
      // The schemas are our own, typed by TypeBox: checking them against the meta-schema first only costs start time.
      validateSchema: false
    }
  } as never)
  const validate = compile({ schema, method: 'GET', url: '/', httpPart: 'body' } as never) as ((data: unknown) => boolean) & { errors?: Array<{ instancePath: string, message?: string, params?: { additionalProperty?: string } }> | null }
  return (value) => {
    if (validate(value)) return undefined
    const [error] = validate.errors ?? []
    if (error === undefined) return { instancePath: '', message: 'is not valid' }
    const extra = error.params?.additionalProperty
    return { instancePath: error.instancePath, message: `${error.message ?? 'is not valid'}${extra === undefined ? '' : ` (${JSON.stringify(extra)})`}` }
  }
}
