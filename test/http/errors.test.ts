import t from 'tap'
import { build } from '../helper.js'

t.test('an unknown route is a 404 problem+json', async (t) => {
  const app = await build(t)
  const response = await app.inject({ method: 'GET', url: '/v1/nowhere?x=1' })
  t.equal(response.statusCode, 404)
  t.match(response.headers['content-type'], /^application\/problem\+json/)
  t.same(response.json(), { type: 'about:blank', title: 'Not Found', status: 404, detail: 'No route GET /v1/nowhere', instance: '/v1/nowhere?x=1' })
})

t.test('a malformed JSON body is a 400 problem+json and no stack trace', async (t) => {
  const app = await build(t, { beforeReady: (app) => { app.post('/echo-for-test', async (request) => request.body) } })
  const response = await app.inject({ method: 'POST', url: '/echo-for-test', headers: { 'content-type': 'application/json' }, payload: '{"a":' })
  t.equal(response.statusCode, 400)
  t.match(response.headers['content-type'], /^application\/problem\+json/)
  const body = response.json()
  t.equal(body.status, 400)
  t.equal(body.title, 'Bad Request')
  t.notMatch(response.body, /at .*\.js:\d+/)
})

t.test('a validation failure lists the failing fields', async (t) => {
  const app = await build(t, {
    beforeReady: (app) => {
      app.post('/validate-for-test', {
        schema: { body: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: { type: 'string' }, size: { type: 'integer' } } } }
      }, async () => ({ ok: true }))
    }
  })
  const response = await app.inject({ method: 'POST', url: '/validate-for-test', payload: { size: 'big', extra: 1 } })
  t.equal(response.statusCode, 400)
  const body = response.json()
  t.match(body.errors, [{ path: 'body.name', message: /required/ }])
  t.ok(body.errors.some((error: { path: string, message: string }) => error.path === 'body.extra' && error.message === 'is not a known field'), 'unknown fields are refused by name, not dropped')
  t.ok(body.errors.some((error: { path: string }) => error.path === 'body.size'))
})

t.test('an unexpected error is a 500 that hides internals', async (t) => {
  const app = await build(t, { beforeReady: (app) => { app.get('/boom-for-test', async () => { throw new Error('secret internals: AKIA1234') }) } })
  const response = await app.inject({ method: 'GET', url: '/boom-for-test' })
  t.equal(response.statusCode, 500)
  t.notMatch(response.body, /AKIA1234|secret internals/)
  t.equal(response.json().title, 'Internal Server Error')
})

t.test('an unavailable dependency is a 503 with Retry-After', async (t) => {
  const app = await build(t, {
    beforeReady: (app) => {
      app.get('/s3-down-for-test', async () => { throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }) })
      app.get('/throttled-for-test', async () => { throw Object.assign(new Error('slow down'), { name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } }) })
    }
  })
  for (const url of ['/s3-down-for-test', '/throttled-for-test']) {
    const response = await app.inject({ method: 'GET', url })
    t.equal(response.statusCode, 503, url)
    t.equal(response.headers['retry-after'], '5')
    t.notMatch(response.body, /ECONNREFUSED|127\.0\.0\.1/)
  }
})

t.test('X-Request-Id is echoed when valid and generated otherwise', async (t) => {
  const app = await build(t)
  const echoed = await app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': 'agent-42.step-7' } })
  t.equal(echoed.headers['x-request-id'], 'agent-42.step-7')
  const generated = await app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': 'bad id\nwith newline' } })
  t.match(generated.headers['x-request-id'], /^[0-9a-f-]{36}$/)
})

t.test('JSON bodies are not coerced (a number is not a string), while query strings are', async (t) => {
  const app = await build(t, {
    beforeReady: (app) => {
      app.post('/strict-for-test', {
        schema: {
          querystring: { type: 'object', properties: { limit: { type: 'integer' } } },
          body: { type: 'object', additionalProperties: false, properties: { content: { type: 'string' }, tags: { type: 'array', items: { type: 'string' } } } }
        }
      }, async (request) => ({ query: request.query, body: request.body }))
    }
  })
  const coercedQuery = await app.inject({ method: 'POST', url: '/strict-for-test?limit=20', payload: { content: 'x', tags: ['a'] } })
  t.equal(coercedQuery.statusCode, 200)
  t.same(coercedQuery.json().query, { limit: 20 }, 'the query string is coerced to the schema')
  const numberAsString = await app.inject({ method: 'POST', url: '/strict-for-test', payload: { content: 42 } })
  t.equal(numberAsString.statusCode, 400)
  t.match(numberAsString.json().errors, [{ path: 'body.content', message: 'must be string' }])
  const stringAsArray = await app.inject({ method: 'POST', url: '/strict-for-test', payload: { tags: 'a,b' } })
  t.equal(stringAsArray.statusCode, 400)
})

t.test('a union is one readable message listing what it accepts', async (t) => {
  const app = await build(t)
  const response = await app.inject({ method: 'GET', url: '/v1/projects/p1/videos/v1/code/versions/0' })
  t.equal(response.statusCode, 400)
  t.same(response.json().errors, [{ path: 'params.version', message: 'must be "latest" or a string matching ^[1-9][0-9]{0,8}$' }])
})

t.test('a trailing slash names the same resource', async (t) => {
  const app = await build(t)
  const response = await app.inject({ method: 'GET', url: '/v1/projects/p1/videos/' })
  t.equal(response.statusCode, 200)
  t.same(response.json(), { items: [], nextCursor: null })
})

t.test('a union of objects is one message naming the fields of each form, with no repeated or nested branch errors', async (t) => {
  const app = await build(t)
  for (const payload of [{ foo: 1 }, { mode: 'X', legalHold: 1 }, {}]) {
    const response = await app.inject({ method: 'PUT', url: '/v1/projects/p1/videos/v1/code/versions/1/lock', payload })
    t.equal(response.statusCode, 400)
    t.same(response.json().errors, [{ path: 'body', message: 'must be { mode, retainUntil } or { legalHold }' }], JSON.stringify(payload))
    t.equal(response.json().detail, 'Invalid body: body must be { mode, retainUntil } or { legalHold }')
  }
  const nested = await app.inject({ method: 'POST', url: '/v1/projects/p1/videos/v1/code', payload: { content: 'x', lock: { a: 1 }, extra: true } })
  t.same(nested.json().errors, [
    { path: 'body.lock', message: 'must be { mode, retainUntil } or { legalHold }' },
    { path: 'body.extra', message: 'is not a known field' }
  ].sort((a, b) => nested.json().errors.findIndex((e: { path: string }) => e.path === a.path) - nested.json().errors.findIndex((e: { path: string }) => e.path === b.path)))
  t.notMatch(nested.body, /must be must|must NOT have additional properties/)
})

t.test('router errors are problem+json: malformed percent-encoding (400) and an over-long path id (414), the URL not echoed', async (t) => {
  const app = await build(t)
  for (const url of ['/v1/projects/p1/videos/%ff', '/v1/projects/p1/videos/%', '/v1/projects/p1/videos/%zz', '/v1/projects/%/videos?limit=%zz', '/v1/projects/p1/videos/%00%ff']) {
    const response = await app.inject({ method: 'GET', url })
    t.equal(response.statusCode, 400, url)
    t.match(response.headers['content-type'], /^application\/problem\+json/, url)
    t.match(response.json(), { type: 'about:blank', title: 'Bad Request', status: 400, detail: /percent-encoded/ }, url)
    t.notMatch(response.body, /FST_ERR|%ff|%zz/, url)
  }
  const long = await app.inject({ method: 'GET', url: `/v1/projects/p1/videos/${'a'.repeat(600)}` })
  t.equal(long.statusCode, 414)
  t.match(long.headers['content-type'], /^application\/problem\+json/)
  t.match(long.json(), { title: 'URI Too Long', status: 414 })
  t.notMatch(long.body, /aaaaaaaaaa|FST_ERR/)
})

t.test('a 304 carries no body, no content-length of "null" and no JSON type (RFC 9110)', async (t) => {
  const app = await build(t)
  await app.inject({ method: 'PUT', url: '/v1/projects/p1/videos/v304', payload: {} })
  const first = await app.inject({ method: 'GET', url: '/v1/projects/p1/videos/v304' })
  const again = await app.inject({ method: 'GET', url: '/v1/projects/p1/videos/v304', headers: { 'if-none-match': String(first.headers.etag) } })
  t.equal(again.statusCode, 304)
  t.equal(again.body, '')
  t.equal(again.headers['content-type'], undefined)
  t.not(again.headers['content-length'], '4')
  t.equal(again.headers.etag, first.headers.etag, 'the ETag is still sent')
})
