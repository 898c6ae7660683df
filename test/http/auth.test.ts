import t from 'tap'
import { writeFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { Writable } from 'node:stream'
import { ScanCommand } from '@aws-sdk/lib-dynamodb'
import { createApiKeyVerifier, hashApiKey, loadApiKeys } from '../../src/http/api-keys.js'
import { createAwsClients } from '../../src/aws/clients.js'
import { buildServer } from '../../src/app.js'
import { ConfigError } from '../../src/config.js'
import { build, listen, startTestAws } from '../helper.js'
import { KEYS, bearer, writeKeysFile } from '../support/auth.js'

type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
interface RouteCase { method: Method, path: string, url: (projectId: string) => string }

const SAMPLE_PARAMS: Record<string, string> = { videoId: 'v1', version: '1', uploadId: '00000000-0000-4000-8000-000000000000', sceneNumber: '1' }

/** Every documented route, from the OpenAPI document, so a route added later is in the matrix without editing this file. */
function documentedRoutes (document: { paths?: Record<string, Record<string, unknown>> }): RouteCase[] {
  const cases: RouteCase[] = []
  for (const [path, operations] of Object.entries(document.paths ?? {})) {
    for (const method of Object.keys(operations)) {
      if (!['get', 'head', 'post', 'put', 'patch', 'delete'].includes(method)) continue
      cases.push({
        method: method.toUpperCase() as Method,
        path,
        url: (projectId) => path.replace(/\{(\w+)\}/g, (_match, name: string) => name === 'projectId' ? projectId : SAMPLE_PARAMS[name] ?? '1')
      })
    }
  }
  return cases
}

t.test('the keys file is validated with one clear line per fault', async (t) => {
  const file = writeKeysFile(t)
  t.equal(loadApiKeys(file).length, 3)
  writeFileSync(file, '{ not json')
  t.throws(() => loadApiKeys(file), { name: 'ConfigError', message: /API_KEYS_FILE=".*keys.json" cannot be read as JSON/ })
  writeFileSync(file, JSON.stringify([{ id: 'a', sha256: 'abc', projects: ['*'], scopes: ['read'] }]))
  t.throws(() => loadApiKeys(file), { message: /at \/0\/sha256/ })
  writeFileSync(file, JSON.stringify([{ id: 'a', sha256: hashApiKey('x'), projects: ['*'], scopes: ['admin'] }]))
  t.throws(() => loadApiKeys(file), { message: /at \/0\/scopes\/0/ })
  writeFileSync(file, JSON.stringify([{ id: 'a', sha256: hashApiKey('x'), projects: ['*'], scopes: ['read'], key: 'plaintext' }]))
  t.throws(() => loadApiKeys(file), ConfigError, 'unknown fields (a plaintext key) are refused')
  const entry = { id: 'a', sha256: hashApiKey('x'), projects: ['*'], scopes: ['read'] }
  writeFileSync(file, JSON.stringify([entry, entry]))
  t.throws(() => loadApiKeys(file), { message: /repeats the key id "a"/ })
  t.throws(() => loadApiKeys('/nonexistent/keys.json'), { message: /cannot be read/ })
})

t.test('the verifier compares every hash and finds the matching key', async (t) => {
  const verifier = createApiKeyVerifier([
    { id: 'one', sha256: hashApiKey('k1'), projects: ['p1'], scopes: ['read'] },
    { id: 'two', sha256: hashApiKey('k2').toUpperCase(), projects: ['*'], scopes: ['read', 'write'] }
  ])
  t.equal(verifier.identify('k1')?.id, 'one')
  t.equal(verifier.identify('k2')?.id, 'two', 'upper-case hex in the file works')
  t.equal(verifier.identify('k3'), undefined)
  t.equal(verifier.identify(hashApiKey('k1')), undefined, 'the hash itself is not a key')
})

t.test('a bad keys file or no keys against AWS stops start-up; ALLOW_ANONYMOUS=true runs open on purpose', async (t) => {
  const aws = await startTestAws(t)
  const file = writeKeysFile(t)
  writeFileSync(file, '[]x')
  await t.rejects(buildServer({ config: { ...aws.config, apiKeysFile: file } }), { name: 'ConfigError' })
  await t.rejects(buildServer({ config: { ...aws.config, mode: 'aws' } }), { name: 'ConfigError', message: /API_KEYS_FILE must name at least one key when using AWS.*ALLOW_ANONYMOUS=true/ })
  const open = await build(t, { aws, config: { mode: 'aws', allowAnonymous: true } })
  t.not((await open.inject({ method: 'GET', url: '/v1/projects/p1/videos' })).statusCode, 401)
})

t.test('the server process refuses an unreadable keys file with one line and exit code 78', async (t) => {
  const { spawnSync } = await import('node:child_process')
  const file = writeKeysFile(t)
  writeFileSync(file, JSON.stringify([{ id: 'a' }]))
  const result = spawnSync(process.execPath, [...process.execArgv, new URL('../../src/server.ts', import.meta.url).pathname], {
    env: { ...process.env, API_KEYS_FILE: file, AWS_S3_VIDEO_BUCKET: 'bucket-v', AWS_S3_CODE_BUCKET: 'bucket-c', LOG_LEVEL: 'silent' }, encoding: 'utf8', timeout: 120_000
  })
  t.equal(result.status, 78)
  const ours = result.stderr.split('\n').filter((line) => line.startsWith('render-store:'))
  t.equal(ours.length, 1)
  t.match(ours[0], /^render-store: Invalid configuration: API_KEYS_FILE=.* at \/0 /)
  t.notMatch(result.stderr, /\n\s+at /, 'no stack trace')
})

t.test('with no keys in local mode the service is open and says so loudly, once', async (t) => {
  const aws = await startTestAws(t)
  const lines: Array<{ level: number, msg: string }> = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(JSON.parse(String(chunk))); done() } })
  const app = await buildServer({ config: aws.config }, { logger: { level: 'info', stream } })
  t.teardown(async () => { await app.close() })
  await app.ready()
  t.equal((await app.inject({ method: 'GET', url: '/v1/projects/p1/videos' })).statusCode, 200)
  await app.inject({ method: 'GET', url: '/v1/projects/p1/videos' })
  const warnings = lines.filter((line) => line.level === 40 && /NO API KEYS CONFIGURED/.test(line.msg))
  t.equal(warnings.length, 1)
})

t.test('open routes need no key: health, readiness, the OpenAPI document and Swagger UI', async (t) => {
  const app = await build(t, { config: { apiKeysFile: writeKeysFile(t) } })
  for (const url of ['/health', '/health/ready', '/openapi.json', '/openapi.yaml']) {
    t.equal((await app.inject({ method: 'GET', url })).statusCode, 200, url)
  }
  t.not((await app.inject({ method: 'GET', url: '/docs' })).statusCode, 401, '/docs')
  t.not((await app.inject({ method: 'GET', url: '/docs/static/index.html' })).statusCode, 401, '/docs/static')
  const traversal = await app.inject({ method: 'GET', url: '/docs/../v1/projects/p1/videos' })
  t.not(traversal.statusCode, 200, 'a /docs prefix in the raw URL does not open another route')
})

t.test('auth matrix over every documented route (no key, wrong key, other project, read key writing, right key)', async (t) => {
  const aws = await startTestAws(t)
  const app = await build(t, { aws, config: { apiKeysFile: writeKeysFile(t), rateLimit: { max: 0, windowMs: 60000 } } })
  const routes = documentedRoutes(app.swagger() as { paths?: Record<string, Record<string, unknown>> })
  const paths = new Set(routes.map((route) => route.path))
  for (const family of ['/health', '/v1/projects/{projectId}/videos', '/code', '/renders', '/uploads', '/progress', '/status']) {
    t.ok([...paths].some((path) => path.includes(family)), `the route family ${family} is in the matrix`)
  }
  const awsClients = createAwsClients(aws.config)
  t.teardown(() => { awsClients.destroy() })
  const scan = async (): Promise<number> => (await awsClients.ddb.send(new ScanCommand({ TableName: aws.config.table }))).Items?.length ?? 0
  const itemsBefore = await scan()

  const open = (path: string): boolean => path.startsWith('/health')
  for (const route of routes) {
    const name = `${route.method} ${route.path}`
    const send = async (headers: Record<string, string>, projectId = 'p1') =>
      await app.inject({ method: route.method, url: route.url(projectId), headers: { ...headers, 'content-type': 'application/json' }, payload: route.method === 'GET' || route.method === 'HEAD' ? undefined : '{}' })
    if (open(route.path)) {
      t.equal((await send({})).statusCode === 401, false, `${name} is open`)
      continue
    }
    const noKey = await send({})
    t.equal(noKey.statusCode, 401, `${name}: no key`)
    t.match(noKey.headers['www-authenticate'], /^Bearer/, `${name}: WWW-Authenticate`)
    t.match(noKey.headers['content-type'], /application\/problem\+json/)
    t.equal((await send(bearer('rs_not_a_key'))).statusCode, 401, `${name}: wrong key`)
    t.equal((await send({ authorization: `Basic ${Buffer.from('a:b').toString('base64')}` })).statusCode, 401, `${name}: not a bearer`)
    t.equal((await send(bearer(KEYS.writer), 'p2')).statusCode, 403, `${name}: key of p1 on p2`)
    const readKey = await send(bearer(KEYS.reader))
    const writes = route.method !== 'GET' && route.method !== 'HEAD'
    if (writes) t.equal(readKey.statusCode, 403, `${name}: read key writing`)
    else t.notOk([401, 403].includes(readKey.statusCode), `${name}: read key reading (${readKey.statusCode})`)
    for (const key of [KEYS.writer, KEYS.admin]) {
      const allowed = await send(bearer(key))
      t.notOk([401, 403].includes(allowed.statusCode), `${name}: right key passes (${allowed.statusCode})`)
      t.ok(allowed.statusCode < 500, `${name}: right key with an empty body is no 5xx (${allowed.statusCode})`)
    }
  }
  t.ok(routes.length >= 10, `${routes.length} routes checked`)
  t.ok(await scan() >= itemsBefore, 'the table is readable after the matrix')
})

t.test('refused requests change nothing in the table', async (t) => {
  const aws = await startTestAws(t)
  const app = await build(t, { aws, config: { apiKeysFile: writeKeysFile(t) } })
  const awsClients = createAwsClients(aws.config)
  t.teardown(() => { awsClients.destroy() })
  const scan = async (): Promise<unknown[]> => (await awsClients.ddb.send(new ScanCommand({ TableName: aws.config.table }))).Items ?? []
  const before = await scan()
  for (const headers of [{}, bearer('nope'), bearer(KEYS.reader)]) {
    await app.inject({ method: 'PUT', url: '/v1/projects/p1/videos/v1', headers, payload: { title: 'x' } })
    await app.inject({ method: 'POST', url: '/v1/projects/p1/videos/v1/code', headers, payload: { content: 'print(1)\n' } })
  }
  await app.inject({ method: 'POST', url: '/v1/projects/p2/videos/v1/code', headers: bearer(KEYS.writer), payload: { content: 'print(1)\n' } })
  t.same(await scan(), before)
  const allowed = await app.inject({ method: 'PUT', url: '/v1/projects/p1/videos/v1', headers: bearer(KEYS.writer), payload: { title: 'x' } })
  t.equal(allowed.statusCode, 201, 'the right key does write')
  t.equal((await scan()).length, before.length + 1)
})

t.test('a refused upload is answered before its body is sent, and the key id (never the key) is logged', async (t) => {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
  const aws = await startTestAws(t)
  const app = await buildServer({ config: { ...aws.config, apiKeysFile: writeKeysFile(t) } }, { logger: { level: 'info', stream } })
  t.teardown(async () => { await app.close() })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as import('node:net').AddressInfo).port
  const status = await new Promise<number>((resolve, reject) => {
    const request = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/v1/projects/p1/videos/v1/renders', headers: { 'content-type': 'video/mp4', 'content-length': String(500 * 1024 * 1024) } })
    request.on('response', (response) => { response.resume(); resolve(response.statusCode ?? 0); request.destroy() })
    request.on('error', reject)
    request.flushHeaders() // headers only: 500 MB promised, not one byte sent
  })
  t.equal(status, 401)

  const reader = await fetch(`http://127.0.0.1:${port}/v1/projects/p1/videos`, { headers: bearer(KEYS.reader) })
  t.equal(reader.status, 200)
  const log = lines.join('')
  t.match(log, /"apiKeyId":"reader"/)
  t.notMatch(log, new RegExp(Object.values(KEYS).join('|')), 'no key appears in the log')
})

t.test('listen helper still works with keys configured (real socket, 401 problem)', async (t) => {
  const { baseUrl } = await listen(t, { config: { apiKeysFile: writeKeysFile(t) } })
  const response = await fetch(`${baseUrl}/v1/projects/p1/videos`)
  t.equal(response.status, 401)
  t.equal((await response.json()).status, 401)
})

t.test('the Bearer scheme name is case-insensitive', async (t) => {
  const { baseUrl } = await listen(t, { config: { apiKeysFile: writeKeysFile(t) } })
  const lower = await fetch(`${baseUrl}/v1/projects/p1/videos`, { headers: { authorization: `bearer ${KEYS.admin}` } })
  t.equal(lower.status, 200)
})

t.test('a 403 does not echo a malformed project id (NUL bytes, markup); a well-formed one is named', async (t) => {
  const app = await build(t, { config: { apiKeysFile: writeKeysFile(t) } })
  const hostile = await app.inject({ method: 'GET', url: '/v1/projects/%00%3Cscript%3Ex/videos', headers: bearer(KEYS.writer) })
  t.equal(hostile.statusCode, 403)
  t.notMatch(hostile.body, /\\u0000|<script>|\u0000/) // eslint-disable-line no-control-regex -- a NUL byte echoed raw is what this looks for
  t.match(hostile.json().detail, /may not access this project/)
  const plain = await app.inject({ method: 'GET', url: '/v1/projects/p2/videos', headers: bearer(KEYS.writer) })
  t.equal(plain.statusCode, 403)
  t.match(plain.json().detail, /may not access project "p2"/)
})
