import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'
// @ts-expect-error: a plain ESM script without type declarations
import { buildCollection, COLLECTION_PATH } from '../scripts/postman.mjs'

const root = new URL('..', import.meta.url).pathname
const openapiText = readFileSync(join(root, 'openapi.yaml'), 'utf8')
const committed = JSON.parse(readFileSync(COLLECTION_PATH, 'utf8'))

interface Item { name: string, item?: Item[], request?: { method: string, url: { path: string[] } } }
const requests = (items: Item[]): Array<NonNullable<Item['request']>> => items.flatMap((item) => item.item !== undefined ? requests(item.item) : item.request !== undefined ? [item.request] : [])

t.test('the committed Postman collection is what openapi.yaml generates (else: npm run postman)', async (t) => {
  const fresh = await buildCollection(openapiText)
  t.same(committed, fresh, 'postman/render-store.postman_collection.json is stale: run `npm run postman` (npm run openapi does it too)')
})

t.test('every operation in openapi.yaml is a request in the collection, with baseUrl and bearer auth variables', async (t) => {
  const document = parse(openapiText) as { paths: Record<string, Record<string, unknown>> }
  const inCollection = new Set(requests(committed.item).map((request) => `${request.method} /${request.url.path.join('/')}`))
  const operations = Object.entries(document.paths).flatMap(([path, methods]) => Object.keys(methods)
    .filter((method) => ['get', 'put', 'post', 'patch', 'delete', 'head', 'options'].includes(method))
    .map((method) => `${method.toUpperCase()} ${path.replace(/\{([^}]+)\}/g, ':$1')}`))
  t.ok(operations.length >= 2)
  t.same(operations.filter((operation) => !inCollection.has(operation)), [], 'no operation is missing')
  t.equal(inCollection.size, operations.length, 'and nothing extra')
  t.same(committed.variable.map((variable: { key: string }) => variable.key).sort(), ['apiKey', 'baseUrl'])
  t.equal(committed.auth.type, 'bearer')
  t.equal(committed.info.schema, 'https://schema.getpostman.com/json/collection/v2.1.0/collection.json')
})
