// A seeded fuzz of path ids, query strings, JSON bodies and content types against every route family: no 5xx, and
// every 4xx is problem+json (RFC 9457) that does not echo a control character it was sent.
import t from 'tap'
import { build } from '../helper.js'

/** mulberry32: the same sequence every run, so a failure is reproducible. */
function random (seed: number): () => number {
  let state = seed
  return () => {
    state |= 0; state = (state + 0x6D2B79F5) | 0
    let value = Math.imul(state ^ (state >>> 15), 1 | state)
    value = (value + Math.imul(value ^ (value >>> 7), 61 | value)) ^ value
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296
  }
}

const next = random(14)
const pick = <T>(items: T[]): T => items[Math.floor(next() * items.length)]

const SEGMENTS = ['p1', 'v1', '', '%', '%ff', '%zz', '%00', '%2e%2e', '..', 'a'.repeat(129), 'b'.repeat(600), '%E2%82%AC', 'x%20y', '-', '_', '*', 'latest', '0', '-1', '1e9', '999999999999', '%c0%af', 'con', '\u00e9']
const QUERIES = ['', '?limit=0', '?limit=-1', '?limit=%ff', '?limit=abc', '?limit=1000000', '?cursor=%zz', '?cursor=garbage', '?from=x', '?limit=1&limit=2', '?%=1', '?a[b]=1', `?cursor=${'c'.repeat(5000)}`]
const BODIES = ['', '{', 'null', '[]', '"x"', '1', '{"content":42}', '{"content":"x","extra":1}', '{"mode":"X"}', '{"legalHold":"yes"}', '{"title":' + '"t"'.repeat(3) + '}', '{"__proto__":{"a":1}}', '{"constructor":{"prototype":{}}}', '{"tags":"a"}', '{"sizeBytes":-1,"contentType":"video/mp4"}', '\u0000\u0001', '{"a":' + '['.repeat(2000) + ']'.repeat(2000) + '}']
const TYPES = [undefined, 'application/json', 'application/json; charset=latin1', 'text/plain', 'text/x-python; charset=utf-16', 'video/mp4', 'multipart/form-data', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', 'image/png', '*/*', 'application/json\u0001', 'garbage']
const ROUTES = [
  (a: string, b: string) => `/v1/projects/${a}/videos`,
  (a: string, b: string) => `/v1/projects/${a}/videos/${b}`,
  (a: string, b: string) => `/v1/projects/${a}/videos/${b}/code`,
  (a: string, b: string) => `/v1/projects/${a}/videos/${b}/code/versions/${pick(SEGMENTS)}`,
  (a: string, b: string) => `/v1/projects/${a}/videos/${b}/code/versions/${pick(SEGMENTS)}/lock`,
  (a: string, b: string) => `/v1/projects/${a}/videos/${b}/renders`,
  (a: string, b: string) => `/v1/projects/${a}/videos/${b}/renders/${pick(SEGMENTS)}`,
  (a: string, b: string) => `/v1/projects/${a}/videos/${b}/uploads`,
  (a: string, b: string) => `/v1/projects/${a}/videos/${b}/uploads/${pick(SEGMENTS)}/complete`,
  (a: string, b: string) => `/v1/projects/${a}/videos/${b}/progress`,
  (a: string, b: string) => `/v1/projects/${a}/videos/${b}/status`
]
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD'] as const

t.test('fuzz: 400 requests answer no 5xx and only problem+json errors', async (t) => {
  const app = await build(t)
  const bad: string[] = []
  let errors = 0
  for (let i = 0; i < 400; i++) {
    const method = pick([...METHODS])
    const url = pick(ROUTES)(pick(SEGMENTS), pick(SEGMENTS)) + pick(QUERIES)
    const type = pick(TYPES)
    const body = method === 'GET' || method === 'HEAD' || method === 'DELETE' ? undefined : pick(BODIES)
    const response = await app.inject({ method, url, payload: body, headers: type === undefined ? {} : { 'content-type': type } })
    const label = `${method} ${url.slice(0, 80)} [${type ?? '-'}] ${JSON.stringify(body ?? '').slice(0, 40)} -> ${response.statusCode}`
    if (response.statusCode >= 500) bad.push(`${label} (5xx): ${response.body.slice(0, 200)}`)
    if (response.statusCode >= 400) {
      errors++
      if (method !== 'HEAD' && !/^application\/problem\+json/.test(String(response.headers['content-type']))) bad.push(`${label}: ${String(response.headers['content-type'])} ${response.body.slice(0, 200)}`)
      if (method !== 'HEAD' && /[\u0000-\u0008]/.test(response.body)) bad.push(`${label}: echoes control characters`) // eslint-disable-line no-control-regex -- control characters are what it looks for
    }
  }
  t.same(bad, [], 'every answer is below 500 and every error is problem+json')
  t.ok(errors > 200, `most fuzzed requests are refused (${errors} of 400)`)
})
