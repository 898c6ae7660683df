import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'
// @ts-expect-error: a plain ESM script without type declarations
import { buildCollection, COLLECTION_PATH } from '../../scripts/postman.mjs'

const root = new URL('../..', import.meta.url).pathname
const openapiText = readFileSync(join(root, 'openapi.yaml'), 'utf8')
const committed = JSON.parse(readFileSync(COLLECTION_PATH, 'utf8'))

interface Request { method: string, url: string | { raw: string, path?: string[] }, auth?: { type: string }, header?: Array<{ key: string, value: string }>, body?: { mode: string, raw?: string } }
interface Item { name: string, item?: Item[], request?: Request, event?: Array<{ listen: string, script: { exec: string[] } }> }
const items = (list: Item[]): Item[] => list.flatMap((item) => item.item !== undefined ? items(item.item) : [item])
const all = items(committed.item)
const api = all.filter((item) => typeof item.request?.url === 'object' && item.request.url.raw.startsWith('{{baseUrl}}'))

t.test('the committed Postman collection is what openapi.yaml generates (else: npm run postman)', async (t) => {
  t.same(committed, buildCollection(openapiText), 'postman/render-store.postman_collection.json is stale: run `npm run postman` (npm run openapi does it too)')
})

t.test('every operation in openapi.yaml is a request in the collection, with baseUrl and one auth variable', async (t) => {
  const document = parse(openapiText) as { paths: Record<string, Record<string, unknown>> }
  const inCollection = new Set(api.map((item) => { const url = item.request!.url as { path: string[] }; return `${item.request!.method} /${url.path.join('/')}` }))
  const operations = Object.entries(document.paths).flatMap(([path, methods]) => Object.keys(methods)
    .map((method) => `${method.toUpperCase()} ${path.replace(/\{([^}]+)\}/g, ':$1')}`))
  t.ok(operations.length >= 20)
  t.same(operations.filter((operation) => !inCollection.has(operation)), [], 'no operation is missing')
  t.same([...inCollection].filter((request) => !operations.includes(request)), [], 'and no request the API does not have')
  t.same(committed.variable.map((variable: { key: string }) => variable.key).sort(), ['apiKey', 'baseUrl', 'projectId', 'videoId'])
  t.same(committed.auth, { type: 'bearer', bearer: [{ key: 'token', value: '{{apiKey}}', type: 'string' }] }, 'auth from apiKey, once')
  t.same(api.filter((item) => item.request!.auth !== undefined).map((item) => item.name), [], 'no API request overrides the auth')
  t.notMatch(JSON.stringify(committed), /bearerToken/, 'no undefined {{bearerToken}}')
  t.equal(committed.info.schema, 'https://schema.getpostman.com/json/collection/v2.1.0/collection.json')
})

t.test('real example values, a status test on every request, the video deleted last', async (t) => {
  const text = JSON.stringify(committed)
  t.notMatch(text, /<(integer|string|number|boolean|dateTime|long)>/, 'no generated placeholders')
  for (const item of all) {
    const tests = item.event?.find((event) => event.listen === 'test')?.script.exec.join('\n') ?? ''
    t.match(tests, /pm\.test\(.*pm\.response\.code/, `${item.name} tests its status`)
  }
  const last = all.at(-1)!
  t.equal(last.request!.method, 'DELETE')
  t.match((last.request!.url as { raw: string }).raw, /\/videos\/:videoId$/, 'DELETE video runs last')
  // The variables requests use are defined, set by an earlier request, or the collection's own.
  const defined = new Set<string>(committed.variable.map((variable: { key: string }) => variable.key))
  for (const item of all) {
    for (const [, name] of JSON.stringify(item.request).matchAll(/\{\{([A-Za-z]+)\}\}/g)) t.ok(defined.has(name), `${item.name}: {{${name}}} is set before`)
    for (const [, name] of (item.event ?? []).flatMap((event) => event.script.exec).join('\n').matchAll(/collectionVariables\.set\('([A-Za-z]+)'/g)) defined.add(name)
  }
})
