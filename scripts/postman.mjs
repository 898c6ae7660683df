// `npm run postman`: writes postman/render-store.postman_collection.json from openapi.yaml (openapi-to-postmanv2),
// with stable ids so the committed file only changes when the API does; test/postman.test.ts checks it is in step.
import Converter from 'openapi-to-postmanv2'
import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

// The converter's own json-schema-faker instance (a CommonJS singleton), to seed its example values.
const schemaFaker = createRequire(import.meta.url)('openapi-to-postmanv2/assets/json-schema-faker.js')
const root = join(dirname(fileURLToPath(import.meta.url)), '..')
export const COLLECTION_PATH = join(root, 'postman', 'render-store.postman_collection.json')

// Optional query parameters and headers are there to switch on, not sent with placeholder values.
const OPTIONS = { folderStrategy: 'Tags', requestParametersResolution: 'Example', exampleParametersResolution: 'Example', includeAuthInfoInExample: false, enableOptionalParameters: false }

/** A UUID-shaped id from a hash, so a regenerated collection is byte-identical. */
function stableId (seed) {
  const hex = createHash('sha256').update(seed).digest('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`
}

/** mulberry32: a small deterministic generator in [0, 1). */
function seededRandom (seed) {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let value = state
    value = Math.imul(value ^ (value >>> 15), value | 1)
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61)
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296
  }
}

function replaceIds (node, path) {
  if (Array.isArray(node)) return node.map((child, index) => replaceIds(child, `${path}/${index}`))
  if (node === null || typeof node !== 'object') return node
  const copy = {}
  for (const [key, value] of Object.entries(node)) copy[key] = key === 'id' && typeof value === 'string' ? stableId(`${path}/${node.name ?? ''}`) : replaceIds(value, `${path}/${key}`)
  return copy
}

/** The Postman collection (v2.1) for the given OpenAPI text. */
export async function buildCollection (openapiText) {
  // Example values are faked at random; a freshly seeded generator makes them the same on every run.
  schemaFaker.option({ random: seededRandom(0x5eed) })
  const converted = await new Promise((resolve, reject) => {
    Converter.convertV2({ type: 'string', data: openapiText }, OPTIONS, (error, result) => {
      if (error !== null && error !== undefined) reject(error)
      else if (!result.result) reject(new Error(`openapi-to-postmanv2: ${result.reason}`))
      else resolve(result.output[0].data)
    })
  })
  const collection = replaceIds(converted, '')
  collection.info = { ...collection.info, _postman_id: stableId(collection.info.name ?? 'render-store'), name: 'render-store' }
  collection.auth = { type: 'bearer', bearer: [{ key: 'token', value: '{{apiKey}}', type: 'string' }] }
  collection.variable = [
    { key: 'baseUrl', value: 'http://127.0.0.1:3000', type: 'string' },
    { key: 'apiKey', value: '', type: 'string' }
  ]
  // What a JSON file holds (undefined fields dropped), so the test compares like with like.
  return JSON.parse(JSON.stringify(collection))
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const collection = await buildCollection(readFileSync(join(root, 'openapi.yaml'), 'utf8'))
  mkdirSync(dirname(COLLECTION_PATH), { recursive: true })
  writeFileSync(COLLECTION_PATH, `${JSON.stringify(collection, null, 2)}\n`)
  process.stdout.write(`wrote ${COLLECTION_PATH}\n`)
}
