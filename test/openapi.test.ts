import t from 'tap'
import { readFileSync } from 'node:fs'
import { parse } from 'yaml'
import { generateOpenapi } from '../src/openapi.js'
import { build } from './helper.js'

t.test('the committed openapi.yaml is what the route schemas produce (run `npm run openapi` when this fails)', async (t) => {
  const committed = readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8')
  t.equal(committed, await generateOpenapi())
})

t.test('the service serves the same document as JSON and YAML, and Swagger UI', async (t) => {
  const app = await build(t)
  const committed = parse(readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8'))
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
  const document = parse(readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8')) as { paths: Record<string, Record<string, { tags?: string[], summary?: string, responses: Record<string, unknown> }>> }
  for (const [path, operations] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      t.ok(operation.tags?.length, `${method} ${path} has tags`)
      t.ok(operation.summary, `${method} ${path} has a summary`)
      if (path.startsWith('/v1/')) t.ok(Object.keys(operation.responses).some((status) => status.startsWith('4')), `${method} ${path} documents its 4xx`)
    }
  }
})

t.test('every API operation asks for the bearer key and documents 401, 403 and 429; health needs none', async (t) => {
  const document = parse(readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8')) as { paths: Record<string, Record<string, { security?: unknown[], responses: Record<string, unknown> }>> }
  for (const [path, operations] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      if (path.startsWith('/v1/')) {
        t.same(operation.security, [{ apiKey: [] }], `${method} ${path} takes the key`)
        t.ok(['401', '403', '429'].every((status) => status in operation.responses), `${method} ${path} documents 401, 403, 429`)
      } else if (path.startsWith('/health')) {
        t.same(operation.security, [], `${method} ${path} is open`)
      }
    }
  }
})
