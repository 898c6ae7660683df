import t from 'tap'
import { readFileSync } from 'node:fs'
import { parse } from 'yaml'
import { generateOpenapi } from '../../src/ops/openapi.js'
import { build } from '../helper.js'

t.test('the committed openapi.yaml is what the route schemas produce (run `npm run openapi` when this fails)', async (t) => {
  const committed = readFileSync(new URL('../../openapi.yaml', import.meta.url), 'utf8')
  t.equal(committed, await generateOpenapi())
})

t.test('the service serves the same document as JSON and YAML, and Swagger UI', async (t) => {
  const app = await build(t)
  const committed = parse(readFileSync(new URL('../../openapi.yaml', import.meta.url), 'utf8'))
  const json = await app.inject({ method: 'GET', url: '/openapi.json' })
  t.equal(json.statusCode, 200)
  t.same(json.json(), committed)
  const yaml = await app.inject({ method: 'GET', url: '/openapi.yaml' })
  t.match(yaml.headers['content-type'], /yaml/)
  t.same(parse(yaml.body), committed)
  const docs = await app.inject({ method: 'GET', url: '/docs/' })
  t.equal(docs.statusCode, 200)
  t.match(docs.body, /swagger-ui/i)
})

t.test('every documented route has tags, a summary and its error responses', async (t) => {
  const document = parse(readFileSync(new URL('../../openapi.yaml', import.meta.url), 'utf8')) as { paths: Record<string, Record<string, { tags?: string[], summary?: string, responses: Record<string, unknown> }>> }
  for (const [path, operations] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      t.ok(operation.tags?.length, `${method} ${path} has tags`)
      t.ok(operation.summary, `${method} ${path} has a summary`)
      if (path.startsWith('/v1/')) t.ok(Object.keys(operation.responses).some((status) => status.startsWith('4')), `${method} ${path} documents its 4xx`)
    }
  }
})

interface Operation { operationId?: string, security?: unknown[], parameters?: Array<{ $ref?: string, name?: string, in?: string, required?: boolean }>, requestBody?: { content: Record<string, unknown> }, responses: Record<string, { $ref?: string, content?: unknown }> }
interface Document { servers?: unknown[], components: { schemas: Record<string, unknown>, parameters: Record<string, { name: string, in: string, required?: boolean }>, responses: Record<string, unknown> }, paths: Record<string, Record<string, Operation>> }
const committedText = readFileSync(new URL('../../openapi.yaml', import.meta.url), 'utf8')
const document = parse(committedText) as Document
const operations = Object.entries(document.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, operation]) => ({ path, method, operation })))

t.test('every API operation takes the bearer key or none (open without API_KEYS_FILE) and documents 401, 403 and 429; health needs none', async (t) => {
  for (const { path, method, operation } of operations) {
    if (path.startsWith('/v1/')) {
      t.same(operation.security, [{ apiKey: [] }, {}], `${method} ${path} takes the key, optionally`)
      t.ok(['401', '403', '429'].every((status) => status in operation.responses), `${method} ${path} documents 401, 403, 429`)
    } else if (path.startsWith('/health')) {
      t.same(operation.security, [], `${method} ${path} is open`)
    }
  }
})

t.test('every operation has its own operationId, and the document names its servers', async (t) => {
  const ids = operations.map(({ operation }) => operation.operationId)
  t.ok(ids.every((id) => typeof id === 'string' && /^[a-z][A-Za-z0-9]+$/.test(id)), 'camelCase ids everywhere')
  t.equal(new Set(ids).size, ids.length, 'no id twice')
  t.ok((document.servers?.length ?? 0) > 0, 'servers is not empty')
  t.equal(document.paths['/v1/projects/{projectId}/videos/{videoId}'].get.operationId, 'getVideo')
})

t.test('schemas with an $id are named components, referenced rather than copied; the file stays small', async (t) => {
  const names = Object.keys(document.components.schemas)
  t.same(names.filter((name) => /^def-\d+$/.test(name)), [], 'no def-N names')
  for (const name of ['Problem', 'Video', 'VideoList', 'CodeVersion', 'CodeVersionWithContent', 'RenderRecord', 'UploadProgress', 'Readiness']) t.ok(names.includes(name), `components.schemas.${name}`)
  // The problem schema's own description appears once: in its component.
  t.equal(committedText.split('RFC 9457 problem details (application/problem+json)').length - 1, 1, 'Problem is defined once')
  for (const { path, method, operation } of operations) {
    for (const [status, response] of Object.entries(operation.responses)) {
      if (status.startsWith('4') || status.startsWith('5')) {
        const problem = response.$ref ?? JSON.stringify(response.content)
        t.match(problem, /#\/components\/(responses\/|schemas\/(Problem|Readiness))/, `${method} ${path} ${status} refers to a shared problem`)
      }
    }
  }
  t.ok(committedText.split('\n').length < 3000, `openapi.yaml has ${committedText.split('\n').length} lines`)
})

t.test('what the service accepts: limit is optional, raw text/* code bodies, a 304 has no body', async (t) => {
  const parameter = (reference: { $ref?: string, name?: string, in?: string, required?: boolean }): { name?: string, in?: string, required?: boolean } =>
    reference.$ref !== undefined ? document.components.parameters[reference.$ref.split('/').at(-1) ?? ''] : reference
  const list = document.paths['/v1/projects/{projectId}/videos'].get
  const limit = list.parameters?.map(parameter).find((candidate) => candidate.name === 'limit')
  t.equal(limit?.in, 'query')
  t.equal(limit?.required, false, 'limit has a default and need not be sent')
  const create = document.paths['/v1/projects/{projectId}/videos/{videoId}/code'].post
  t.ok(create.requestBody?.content['text/*'] !== undefined, 'raw text/* code body declared')
  t.ok(create.requestBody?.content['application/json'] !== undefined, 'JSON code body declared')
  for (const { path, method, operation } of operations) {
    if (operation.responses['304'] !== undefined) t.equal(operation.responses['304'].content, undefined, `${method} ${path} 304 has no body`)
  }
})

t.test('a 304 from the service carries no body and no JSON type', async (t) => {
  const app = await build(t)
  const put = await app.inject({ method: 'PUT', url: '/v1/projects/demo/videos/etag304', payload: { title: 'x' } })
  t.equal(put.statusCode, 201)
  const get = await app.inject({ method: 'GET', url: '/v1/projects/demo/videos/etag304' })
  const etag = get.headers.etag as string
  t.ok(etag)
  const notModified = await app.inject({ method: 'GET', url: '/v1/projects/demo/videos/etag304', headers: { 'if-none-match': etag } })
  t.equal(notModified.statusCode, 304)
  t.equal(notModified.body, '')
  t.notOk(Number(notModified.headers['content-length'] ?? 0) > 0, 'no content-length of a body')
  t.notMatch(String(notModified.headers['content-type'] ?? ''), /json/)
})
