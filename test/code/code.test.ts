import t from 'tap'
import type { InjectOptions } from 'fastify'
import { HeadObjectCommand } from '@aws-sdk/client-s3'
import { GetCommand } from '@aws-sdk/lib-dynamodb'
import { createHash } from 'node:crypto'
import { versionSortKey, videoKey } from '../../src/table/video-item.js'
import { build } from '../helper.js'
import { codeUrl, postCode, steady, storedFor } from '../support/code.js'

const sha = (text: string | Buffer): string => createHash('sha256').update(text).digest('hex')

t.test('code versions against the embedded servers', async (t) => {
  const app = await build(t, { config: { ...steady, maxCodeBytes: 4096 } })

  t.test('POST JSON creates version 1, stored in S3 and DynamoDB as described', async (t) => {
    const content = 'from manim import *\n\nclass Intro(Scene):\n    pass\n'
    const response = await postCode(app, 'intro', { content, message: 'first draft' })
    t.equal(response.statusCode, 201)
    const body = response.json()
    t.match(body, { version: 1, filename: 'intro.py', key: /^code\/p1\/intro\/[^/]+\/intro\.py$/, sha256: sha(content), sizeBytes: Buffer.byteLength(content), message: 'first draft', language: 'python', locked: false })
    t.equal(body.commitToken, undefined, 'the commit token stays inside')
    t.equal(response.headers.location, `${codeUrl('intro')}/versions/1`)
    const head = await app.aws.s3.send(new HeadObjectCommand({ Bucket: app.config.codeBucket, Key: body.key }))
    t.equal(head.ContentType, 'text/x-python; charset=utf-8')
    t.same(head.Metadata, { sha256: sha(content), project: 'p1', video: 'intro' }, 'no version number: the key belongs to the write, not to a version')
    const version = (await app.aws.ddb.send(new GetCommand({ TableName: app.config.table, Key: { pk: videoKey('p1', 'intro').pk, sk: versionSortKey('CODE', 1) }, ConsistentRead: true }))).Item
    t.match(version, { version: 1, key: body.key, sha256: sha(content), commitToken: /\S/ }, 'the version item exists and carries its writer\'s token')
    t.equal(body.key, `code/p1/intro/${String(version?.commitToken)}/intro.py`, 'the object lives under that token')
    const { Item } = await app.aws.ddb.send(new GetCommand({ TableName: app.config.table, Key: videoKey('p1', 'intro') }))
    t.match(Item, { latestCodeVersion: 1, latestCodeSha256: sha(content), latestCodeKey: body.key, status: 'code_ready' })
    t.equal(Item?.codeClaim, undefined, 'no claim: the version item is the commit')
  })

  t.test('GET latest as JSON, raw, and 304 on If-None-Match; the download URL serves the bytes', async (t) => {
    const content = 'print("héllo")\n'
    const created = (await postCode(app, 'latest', { content })).json()
    const json = await app.inject({ method: 'GET', url: codeUrl('latest') })
    t.equal(json.statusCode, 200)
    t.match(json.headers['content-type'], /^application\/json/)
    t.equal(json.headers.etag, `"${sha(content)}"`)
    t.match(json.json(), { version: created.version, content, sha256: sha(content), filename: 'latest.py' })
    const downloaded = await fetch(json.json().downloadUrl)
    t.equal(await downloaded.text(), content, 'presigned URL gives the bytes')
    t.ok(Date.parse(json.json().expiresAt) > Date.now())

    const raw = await app.inject({ method: 'GET', url: codeUrl('latest'), headers: { accept: 'text/plain' } })
    t.equal(raw.statusCode, 200)
    t.equal(raw.headers['content-type'], 'text/plain; charset=utf-8')
    t.equal(raw.body, content)
    t.equal(raw.headers.vary, 'accept', 'caches keep JSON and raw apart')

    const cached = await app.inject({ method: 'GET', url: codeUrl('latest'), headers: { 'if-none-match': json.headers.etag as string } })
    t.equal(cached.statusCode, 304)
    t.equal(cached.body, '')
    const other = await app.inject({ method: 'GET', url: codeUrl('latest'), headers: { 'if-none-match': '"0000"' } })
    t.equal(other.statusCode, 200)
  })

  t.test('raw text bodies with X-Filename and X-Base-Version; resending the latest content gives 200 and no new version', async (t) => {
    const first = await app.inject({ method: 'POST', url: codeUrl('raw'), headers: { 'content-type': 'text/x-python' }, payload: 'a = 1\n' })
    t.equal(first.statusCode, 201)
    const second = await app.inject({ method: 'POST', url: codeUrl('raw'), headers: { 'content-type': 'text/plain; charset=utf-8', 'x-filename': 'raw.js', 'x-base-version': '1' }, payload: 'let a = 2\n' })
    t.equal(second.statusCode, 201)
    t.match(second.json(), { version: 2, filename: 'raw.js', key: /^code\/p1\/raw\/[^/]+\/raw\.js$/, language: 'javascript' })
    t.not(second.json().key.split('/')[3], first.json().key.split('/')[3], 'each write has its own key')
    const again = await app.inject({ method: 'POST', url: codeUrl('raw'), headers: { 'content-type': 'text/plain', 'x-filename': 'raw.js' }, payload: 'let a = 2\n' })
    t.equal(again.statusCode, 200)
    t.equal(again.json().version, 2)
    const stale = await app.inject({ method: 'POST', url: codeUrl('raw'), headers: { 'content-type': 'text/plain', 'x-base-version': '1' }, payload: 'a = 3\n' })
    t.equal(stale.statusCode, 409)
    t.equal(stale.headers['content-type'], 'application/problem+json; charset=utf-8')
    t.equal(stale.json().latestVersion, 2)
    const staleButSame = await app.inject({ method: 'POST', url: codeUrl('raw'), headers: { 'content-type': 'text/plain', 'x-filename': 'raw.js', 'x-base-version': '1' }, payload: 'let a = 2\n' })
    t.equal(staleButSame.statusCode, 409, 'an edit on a stale base is a conflict even when it ends where the latest is')
    t.equal((await storedFor(app, 'raw')).keys.length, 2, 'only two objects were written')
  })

  t.test('by version, latest, unknown version and unknown video', async (t) => {
    await postCode(app, 'byver', { content: 'one\n' })
    await postCode(app, 'byver', { content: 'two\n', sceneNumber: 3 })
    const one = await app.inject({ method: 'GET', url: codeUrl('byver', '/versions/1') })
    t.equal(one.statusCode, 200)
    t.match(one.json(), { version: 1, content: 'one\n' })
    const latest = await app.inject({ method: 'GET', url: codeUrl('byver', '/versions/latest'), headers: { accept: 'text/plain, application/json' } })
    t.equal(latest.body, 'two\n')
    t.equal(latest.headers['x-code-version'], '2')
    const scene = await app.inject({ method: 'GET', url: codeUrl('byver', '/versions/2') })
    t.match(scene.json(), { filename: 'byver_scene3.py', sceneNumber: 3, key: /^code\/p1\/byver\/[^/]+\/byver_scene3\.py$/ })
    t.equal((await app.inject({ method: 'GET', url: codeUrl('byver', '/versions/3') })).statusCode, 404)
    const unknown = await app.inject({ method: 'GET', url: codeUrl('nosuchvideo') })
    t.equal(unknown.statusCode, 404)
    t.equal(unknown.headers['content-type'], 'application/problem+json; charset=utf-8')
    t.equal((await app.inject({ method: 'GET', url: codeUrl('nosuchvideo', '/versions') })).statusCode, 404)
  })

  t.test('list: newest first, paged with an opaque cursor, no content', async (t) => {
    for (let index = 1; index <= 5; index++) await postCode(app, 'listed', { content: `v = ${index}\n` })
    const seen: number[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      const query: string = cursor === null ? '?limit=2' : `?limit=2&cursor=${cursor}`
      const page = await app.inject({ method: 'GET', url: codeUrl('listed', `/versions${query}`) })
      t.equal(page.statusCode, 200)
      const body = page.json()
      t.ok(body.items.every((item: Record<string, unknown>) => item.content === undefined), 'no content in the list')
      seen.push(...body.items.map((item: { version: number }) => item.version))
      cursor = body.nextCursor
      pages++
    } while (cursor !== null && pages < 10)
    t.same(seen, [5, 4, 3, 2, 1])
    t.equal(pages, 3, 'no empty page at the end')
    t.equal((await app.inject({ method: 'GET', url: codeUrl('listed', '/versions?limit=5') })).json().nextCursor, null, 'an exactly full last page has no cursor')
    const foreign = Buffer.from(JSON.stringify({ pk: 'VIDEO#p1#other', sk: 'CODE#000000001' })).toString('base64url')
    t.equal((await app.inject({ method: 'GET', url: codeUrl('listed', `/versions?cursor=${foreign}`) })).statusCode, 400)
    t.equal((await app.inject({ method: 'GET', url: codeUrl('listed', '/versions?cursor=!!!') })).statusCode, 400)
  })

  t.test('diff between two versions is a unified diff', async (t) => {
    await postCode(app, 'diffed', { content: 'a = 1\nb = 2\n' })
    await postCode(app, 'diffed', { content: 'a = 1\nb = 3\n' })
    const diff = await app.inject({ method: 'GET', url: codeUrl('diffed', '/versions/2/diff?from=1') })
    t.equal(diff.statusCode, 200)
    t.equal(diff.headers['content-type'], 'text/x-diff; charset=utf-8')
    t.match(diff.body, /^--- a\/diffed\.py\tv1\n\+\+\+ b\/diffed\.py\tv2\n@@ -1,2 \+1,2 @@\n a = 1\n-b = 2\n\+b = 3\n/m)
    t.equal((await app.inject({ method: 'GET', url: codeUrl('diffed', '/versions/latest/diff?from=9') })).statusCode, 404)
    t.equal((await app.inject({ method: 'GET', url: codeUrl('diffed', '/versions/2/diff') })).statusCode, 400)
  })

  t.test('Object Lock: local S3 has none, so locking is a 409 and nothing changes', async (t) => {
    await postCode(app, 'locked', { content: 'keep me\n' })
    const before = await storedFor(app, 'locked')
    const retention = await app.inject({ method: 'PUT', url: codeUrl('locked', '/versions/1/lock'), payload: { mode: 'GOVERNANCE', retainUntil: new Date(Date.now() + 86_400_000).toISOString() } })
    t.equal(retention.statusCode, 409)
    t.match(retention.json().detail, /Object Lock/)
    const hold = await app.inject({ method: 'PUT', url: codeUrl('locked', '/versions/1/lock'), payload: { legalHold: true } })
    t.equal(hold.statusCode, 409)
    const onCreate = await postCode(app, 'locked', { content: 'new\n', lock: { legalHold: true } })
    t.equal(onCreate.statusCode, 409)
    t.same(await storedFor(app, 'locked'), before, 'no object or item changed')
    t.equal((await app.inject({ method: 'PUT', url: codeUrl('locked', '/versions/1/lock'), payload: { mode: 'GOVERNANCE', retainUntil: '2001-01-01T00:00:00Z' } })).statusCode, 400, 'a past date is refused')
    t.equal((await app.inject({ method: 'PUT', url: codeUrl('locked', '/versions/1/lock'), payload: { mode: 'FOREVER', retainUntil: '2999-01-01T00:00:00Z' } })).statusCode, 400)
    t.equal((await app.inject({ method: 'PUT', url: codeUrl('locked', '/versions/7/lock'), payload: { legalHold: true } })).statusCode, 404)
  })

  t.test('bad input is a clear 4xx that writes nothing', async (t) => {
    const cases: Array<{ name: string, status: number, request: InjectOptions }> = [
      { name: 'non-UTF-8 bytes', status: 400, request: { method: 'POST', url: codeUrl('bad'), headers: { 'content-type': 'text/x-python' }, payload: Buffer.from([0x61, 0xff, 0xfe, 0x0a]) } },
      { name: 'truncated UTF-8 sequence', status: 400, request: { method: 'POST', url: codeUrl('bad'), headers: { 'content-type': 'text/plain' }, payload: Buffer.from([0x61, 0xe2, 0x82]) } },
      { name: 'empty raw body', status: 400, request: { method: 'POST', url: codeUrl('bad'), headers: { 'content-type': 'text/plain' }, payload: '' } },
      { name: 'empty JSON content', status: 400, request: { method: 'POST', url: codeUrl('bad'), payload: { content: '' } } },
      { name: 'lone surrogate in JSON', status: 400, request: { method: 'POST', url: codeUrl('bad'), headers: { 'content-type': 'application/json' }, payload: '{"content":"a\\ud800b"}' } },
      { name: 'oversized raw body', status: 413, request: { method: 'POST', url: codeUrl('bad'), headers: { 'content-type': 'text/plain' }, payload: 'x'.repeat(4097) } },
      { name: 'oversized JSON content', status: 413, request: { method: 'POST', url: codeUrl('bad'), payload: { content: 'x'.repeat(4097) } } },
      { name: 'filename with a folder', status: 400, request: { method: 'POST', url: codeUrl('bad'), payload: { content: 'x', filename: '../evil.py' } } },
      { name: 'filename in X-Filename with ..', status: 400, request: { method: 'POST', url: codeUrl('bad'), headers: { 'content-type': 'text/plain', 'x-filename': 'a..py' }, payload: 'x' } },
      { name: 'unknown field', status: 400, request: { method: 'POST', url: codeUrl('bad'), payload: { content: 'x', owner: 'me' } } },
      { name: 'binary content type', status: 415, request: { method: 'POST', url: codeUrl('bad'), headers: { 'content-type': 'application/octet-stream' }, payload: Buffer.from('x') } },
      { name: 'multipart body', status: 415, request: { method: 'POST', url: codeUrl('bad'), headers: { 'content-type': 'multipart/form-data; boundary=x' }, payload: '--x\r\nContent-Disposition: form-data; name="content"\r\n\r\nprint(1)\r\n--x--\r\n' } },
      { name: 'a charset other than UTF-8', status: 415, request: { method: 'POST', url: codeUrl('bad'), headers: { 'content-type': 'text/plain; charset=iso-8859-1' }, payload: Buffer.from([0x61, 0xe9]) } },
      { name: 'no body', status: 400, request: { method: 'POST', url: codeUrl('bad') } },
      ...['0', '-1', 'abc', '1000000000000', '1.5'].map((version) => ({ name: `version ${version}`, status: 400, request: { method: 'GET' as const, url: codeUrl('bad', `/versions/${version}`) } })),
      { name: 'diff from 0', status: 400, request: { method: 'GET', url: codeUrl('bad', '/versions/1/diff?from=0') } },
      { name: 'lock version 0', status: 400, request: { method: 'PUT', url: codeUrl('bad', '/versions/0/lock'), payload: { legalHold: true } } },
      { name: 'bad video id', status: 400, request: { method: 'POST', url: '/v1/projects/p1/videos/-x/code', payload: { content: 'x' } } }
    ]
    for (const { name, status, request } of cases) {
      const response = await app.inject(request)
      t.equal(response.statusCode, status, name)
      t.match(response.headers['content-type'], /^application\/problem\+json/, `${name}: problem+json`)
      t.ok(response.json().detail, `${name}: says why`)
    }
    t.same(await storedFor(app, 'bad'), { keys: [], items: [] }, 'nothing in S3 or DynamoDB')
  })
})
