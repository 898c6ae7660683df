import t from 'tap'
import { build } from '../helper.js'
import { codeUrl, postCode, steady, storedFor } from '../support/code.js'

t.test('50 concurrent POSTs with distinct contents get versions exactly 1..50, each with its own content', async (t) => {
  // Correctness, not speed: the 50th writer loses up to 49 races, which on a loaded 2-core machine took longer than
  // the 15 s default commit deadline (34 of 50 answered 503 + Retry-After, a valid answer but not what this checks).
  // Throughput under contention is measured in bench/code.ts.
  const app = await build(t, { config: { ...steady, commitDeadlineMs: 50_000 } })
  const contents = Array.from({ length: 50 }, (_, index) => `# writer ${index}\nvalue = ${index}\n`)
  const responses = await Promise.all(contents.map(async (content) => await postCode(app, 'race', { content })))
  t.same(responses.map((response) => response.statusCode), contents.map(() => 201))
  const versionOf = new Map(responses.map((response, index) => [response.json().version as number, contents[index]]))
  t.same([...versionOf.keys()].sort((a, b) => a - b), Array.from({ length: 50 }, (_, index) => index + 1), 'no duplicates, no gaps')
  for (const [version, content] of versionOf) {
    const raw = await app.inject({ method: 'GET', url: codeUrl('race', `/versions/${version}`), headers: { accept: 'text/plain' } })
    t.equal(raw.body, content, `version ${version} holds what its writer sent`)
  }
  const latest = await app.inject({ method: 'GET', url: codeUrl('race') })
  t.equal(latest.json().version, 50)
  const stored = await storedFor(app, 'race')
  t.equal(stored.keys.length, 50, 'one object per version')
  t.equal(stored.items.length, 51, 'the video record and one item per version')
})

t.test('20 concurrent edits on baseVersion 1: exactly one 201, nineteen 409 naming the latest', async (t) => {
  const app = await build(t, { config: steady })
  t.equal((await postCode(app, 'edits', { content: 'base\n' })).statusCode, 201)
  const responses = await Promise.all(Array.from({ length: 20 }, async (_, index) => await postCode(app, 'edits', { content: `edit ${index}\n`, baseVersion: 1 })))
  const statuses = responses.map((response) => response.statusCode)
  t.equal(statuses.filter((status) => status === 201).length, 1)
  t.equal(statuses.filter((status) => status === 409).length, 19)
  for (const response of responses.filter((response) => response.statusCode === 409)) {
    t.equal(response.json().latestVersion, 2)
  }
  const winner = responses.find((response) => response.statusCode === 201)
  t.equal(winner?.json().version, 2)
  t.equal((await storedFor(app, 'edits')).keys.length, 2, 'the losers wrote nothing')
})

t.test('concurrent POSTs of the same content make one version; the rest answer 200 with it', async (t) => {
  const app = await build(t, { config: steady })
  const responses = await Promise.all(Array.from({ length: 6 }, async () => await postCode(app, 'same', { content: 'identical\n' })))
  t.same(responses.map((response) => response.statusCode).sort(), [200, 200, 200, 200, 200, 201])
  t.same(new Set(responses.map((response) => response.json().version)), new Set([1]))
  t.equal((await storedFor(app, 'same')).keys.length, 1)
})
