// How a store is made: named module-level functions that take the store's context first (a reader finds each one by
// name), bound to that context once by the store's factory.

type Bound<C, F> = { [K in keyof F]: F[K] extends (context: C, ...args: infer A) => infer R ? (...args: A) => R : never }

/** The functions with their first argument (the store's context) given. */
export function bindContext<C, F extends Record<string, (context: C, ...args: never[]) => unknown>> (context: C, functions: F): Bound<C, F> {
  return Object.fromEntries(Object.entries(functions).map(([name, fn]) => [name, fn.bind(null, context)])) as Bound<C, F>
}
