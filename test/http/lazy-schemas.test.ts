import t from 'tap'
import Fastify from 'fastify'
import { lazySchemas } from '../../src/http/lazy-schemas.js'
import { serverOptions } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { build } from '../helper.js'

/** A server with the app's compilers (strict bodies, coerced query), made lazy, and three small routes. */
async function small () {
  const schemas = lazySchemas()
  const { schemaController } = serverOptions(loadConfig({ LOG_LEVEL: 'silent' }), schemas)
  const app = Fastify({ schemaController, ajv: { customOptions: { coerceTypes: 'array', useDefaults: true, allErrors: true } } })
  app.post('/items', {
    schema: {
      body: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: { type: 'string', minLength: 1 }, size: { type: 'integer', default: 1 } } },
      response: { 200: { type: 'object', properties: { name: { type: 'string' }, size: { type: 'integer' } } } }
    }
  }, async (request) => ({ ...(request.body as object), secret: 'not in the response schema' }))
  app.get('/numbers', { schema: { querystring: { type: 'object', properties: { n: { type: 'integer' }, tags: { type: 'array', items: { type: 'string' } } } } } },
    async (request) => request.query)
  app.get('/never', { schema: { querystring: { type: 'object', properties: { q: { type: 'string' } } } } }, async () => 'never called')
  await app.ready()
  return { app, schemas }
}

t.test('nothing compiles before it is needed; each route compiles on its first request and validates as before', async (t) => {
  const { app, schemas } = await small()
  t.teardown(async () => { await app.close() })
  const before = schemas.pending
  t.ok(before >= 3, `every route schema is still waiting after ready (${before})`)

  const bad = await app.inject({ method: 'POST', url: '/items', payload: { size: 2 } })
  t.equal(bad.statusCode, 400, 'a missing field is refused')
  t.match(bad.json().message, /must have required property 'name'/, 'with the validator\'s own error')
  const wrongType = await app.inject({ method: 'POST', url: '/items', payload: { name: 'a', size: '2' } })
  t.equal(wrongType.statusCode, 400, 'bodies are not coerced (the strict body compiler is the one wrapped)')

  const good = await app.inject({ method: 'POST', url: '/items', payload: { name: 'a' } })
  t.equal(good.statusCode, 200)
  t.same(good.json(), { name: 'a', size: 1 }, 'defaults applied; the response serializer drops what its schema does not name')

  const query = await app.inject({ method: 'GET', url: '/numbers?n=7&tags=x' })
  t.same(query.json(), { n: 7, tags: ['x'] }, 'query strings are coerced, a lone value into an array')
  t.ok(schemas.pending < before, 'the routes used have compiled')
  t.ok(schemas.pending > 0, 'the route never called has not')
})

t.test('warm() compiles what is still waiting, a schema per event-loop turn, and requests are served in between', async (t) => {
  const { app, schemas } = await small()
  t.teardown(async () => { await app.close() })
  const waiting = schemas.pending
  const warming = schemas.warm()
  t.equal(schemas.pending, waiting, 'warm() compiles nothing synchronously')
  await new Promise(resolve => setImmediate(resolve))
  t.equal(schemas.pending, waiting - 1, 'one schema in the first turn of the event loop')
  await warming
  t.equal(schemas.pending, 0, 'nothing left to compile')
  const bad = await app.inject({ method: 'GET', url: '/never?q=1&q=2' })
  t.equal(bad.statusCode, 400, 'a warmed validator still refuses bad input')
})

t.test('a schema that does not compile: the server still starts, the route answers 500, warm() reports it once and compiles the rest', async (t) => {
  const schemas = lazySchemas()
  const { schemaController } = serverOptions(loadConfig({ LOG_LEVEL: 'silent' }), schemas)
  const app = Fastify({ schemaController })
  t.teardown(async () => { await app.close() })
  app.get('/broken', { schema: { querystring: { type: 'object', properties: { q: { type: 'no-such-type' } } } } }, async () => 'never')
  app.get('/fine', { schema: { querystring: { type: 'object', properties: { n: { type: 'integer' } } } } }, async (request) => request.query)
  await app.ready()
  const errors: Array<{ error: unknown, route: Record<string, unknown> }> = []
  await schemas.warm((error, route) => { errors.push({ error, route }) })
  // Fastify gives GET /broken a HEAD route with the same schema: one failure each.
  t.same(errors.map((error) => `${String(error.route.method)} ${String(error.route.url)} ${String(error.route.httpPart)}`).sort(), ['GET /broken querystring', 'HEAD /broken querystring'], 'reported with its routes')
  t.equal(schemas.pending, 0, 'and the others compiled')
  t.equal((await app.inject({ method: 'GET', url: '/broken' })).statusCode, 500)
  t.equal((await app.inject({ method: 'GET', url: '/broken' })).statusCode, 500, 'every time')
  t.same((await app.inject({ method: 'GET', url: '/fine?n=2' })).json(), { n: 2 })
})

t.test('every schema of the whole app compiles', async (t) => {
  const app = await build(t)
  const errors: Array<{ error: unknown, route: Record<string, unknown> }> = []
  t.ok(app.routeSchemas.pending > 50, `${app.routeSchemas.pending} schemas waiting after ready`)
  await app.routeSchemas.warm((error, route) => { errors.push({ error, route }) })
  t.same(errors, [], 'none failed')
  t.equal(app.routeSchemas.pending, 0)
})
