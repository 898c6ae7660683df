import t from 'tap'
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { request as httpRequest, type ClientRequest } from 'node:http'
import { GetCommand } from '@aws-sdk/lib-dynamodb'
import { listen, startTestAws } from '../helper.js'
import { clients, drainedOrClosed, mp4Bytes, objectDigest, objectKeys, sha256, tableItems } from '../support/render-fixtures.js'
import { videoKey } from '../../src/table/video-item.js'

const MiB = 1024 * 1024

/** A raw upload whose body the test writes when it chooses, so two uploads can overlap as the test arranges. */
function rawUpload (baseUrl: string, path: string, size: number): { request: ClientRequest, outcome: Promise<{ status: number, body: string }> } {
  const url = new URL(path, baseUrl)
  const request = httpRequest({ host: url.hostname, port: url.port, method: 'POST', path: url.pathname, headers: { 'content-type': 'video/mp4', 'content-length': String(size) } })
  const outcome = new Promise<{ status: number, body: string }>((resolve, reject) => {
    request.on('response', (response) => {
      let body = ''
      response.on('data', (chunk) => { body += String(chunk) })
      response.on('end', () => { resolve({ status: response.statusCode ?? 0, body }) })
      response.on('error', reject)
    })
    request.on('error', reject)
  })
  return { request, outcome }
}

async function writeAll (request: ClientRequest, bytes: Buffer, pieceSize = 256 * 1024): Promise<void> {
  for (let offset = 0; offset < bytes.length && !request.destroyed; offset += pieceSize) {
    if (!request.write(bytes.subarray(offset, offset + pieceSize))) await drainedOrClosed(request)
  }
}

t.test('raw, curl -T and multipart uploads each create the next render version, byte-identical in S3', async (t) => {
  const testAws = await startTestAws(t)
  const { baseUrl } = await listen(t, { aws: testAws })
  const aws = clients(t, testAws)
  const { videoBucket, table } = testAws.config
  const url = `${baseUrl}/v1/projects/p1/videos/intro/renders`

  const raw = mp4Bytes(12 * MiB)
  const first = await fetch(url, { method: 'POST', headers: { 'content-type': 'video/mp4', 'x-title': 'Intro' }, body: raw })
  t.equal(first.status, 201)
  const created = await first.json() as Record<string, unknown>
  t.match(created, { version: 1, bucket: videoBucket, sizeBytes: raw.length, sha256: sha256(raw), contentType: 'video/mp4', status: 'uploaded' })
  t.type(created.uploadId, 'string')
  t.equal(created.key, `videos/p1/intro/uploads/${created.uploadId as string}/intro.mp4`, 'stored under a key unique to the upload')
  t.ok(Date.parse(created.expiresAt as string) > Date.now())
  t.same(await objectDigest(aws, videoBucket, created.key as string), { sha256: sha256(raw), size: raw.length }, 'stored bytes are the bytes sent')
  const downloaded = Buffer.from(await (await fetch(created.downloadUrl as string)).arrayBuffer())
  t.equal(sha256(downloaded), sha256(raw), 'the presigned downloadUrl serves the bytes')

  const file = join(testAws.dataDir, 'clip.mp4')
  const small = mp4Bytes(300 * 1024)
  writeFileSync(file, small)
  const curlOutput = await new Promise<string>((resolve, reject) => {
    const curl = spawn('curl', ['-sS', '-T', file, '-H', 'content-type: video/mp4', '-X', 'POST', url])
    let out = ''
    curl.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
    curl.on('error', reject)
    curl.on('close', (code) => { code === 0 ? resolve(out) : reject(new Error(`curl exited ${code}`)) })
  })
  t.match(JSON.parse(curlOutput), { version: 2, sizeBytes: small.length, sha256: sha256(small) }, 'curl -T upload')

  const form = new FormData()
  form.append('title', 'Intro, final cut')
  form.append('durationSeconds', '42.5')
  form.append('resolution', '1920x1080')
  form.append('metadata', JSON.stringify({ renderer: 'manim' }))
  const webm = Buffer.concat([Buffer.from([0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x82, 0x84]), Buffer.from('webm'), mp4Bytes(2 * MiB).subarray(12)])
  form.append('file', new Blob([webm]), 'intro.webm')
  const multipart = await fetch(url, { method: 'POST', body: form })
  t.equal(multipart.status, 201)
  const third = await multipart.json() as Record<string, unknown>
  t.match(third, { version: 3, contentType: 'video/webm', sizeBytes: webm.length, sha256: sha256(webm) })
  t.equal(third.key, `videos/p1/intro/uploads/${third.uploadId as string}/intro.webm`)
  t.same(await objectDigest(aws, videoBucket, third.key as string), { sha256: sha256(webm), size: webm.length })

  const { Item: video } = await aws.ddb.send(new GetCommand({ TableName: table, Key: videoKey('p1', 'intro') }))
  t.match(video, { status: 'uploaded', latestRenderVersion: 3, durationSeconds: 42.5, resolution: '1920x1080', sizeBytes: webm.length, sceneCount: 0, currentVersionId: 'v3' })
  t.equal(video?.title, undefined, "a render's title is the render's, not the video's")
  t.match(await (await fetch(`${url}/3`)).json(), { title: 'Intro, final cut' }, 'it is on the render')
  t.equal(video?.renderClaim, undefined, 'no claim attribute')
  const versionItems = (await tableItems(aws, table)).filter((item) => String(item.sk).startsWith('RENDER#'))
  t.same(versionItems.map((item) => item.sk), ['RENDER#000000001', 'RENDER#000000002', 'RENDER#000000003'], 'one item per version, nothing else under RENDER#')
  t.equal(new Set(versionItems.map((item) => item.commitToken)).size, 3, 'each written by its own commit')
  t.same((await objectKeys(aws, videoBucket)).sort(), versionItems.map((item) => item.key as string).sort(), 'every object is a version\'s, nothing left over')

  const list = await (await fetch(`${url}?limit=2`)).json() as { items: Array<{ version: number, downloadUrl: string }>, nextCursor: string }
  t.same(list.items.map((item) => item.version), [3, 2], 'newest first')
  t.type(list.items[0].downloadUrl, 'string')
  const rest = await (await fetch(`${url}?limit=2&cursor=${list.nextCursor}`)).json() as { items: Array<{ version: number }>, nextCursor: string | null }
  t.same(rest.items.map((item) => item.version), [1])
  t.equal(rest.nextCursor, null)
  t.equal((await fetch(`${url}?cursor=bogus`)).status, 400, 'a forged cursor is a 400')

  const one = await (await fetch(`${url}/3`)).json() as Record<string, unknown>
  t.match(one, { version: 3, title: 'Intro, final cut', metadata: { renderer: 'manim' }, uploadId: third.uploadId, scenes: [] })
  const latest = await (await fetch(`${url}/latest`)).json() as Record<string, unknown>
  t.equal(latest.version, 3)
  const redirect = await fetch(`${url}/1/content`, { redirect: 'manual' })
  t.equal(redirect.status, 302)
  t.match(redirect.headers.get('location'), new RegExp(`intro/uploads/${created.uploadId as string}/intro\\.mp4\\?.*X-Amz-Signature=`))
  t.equal((await fetch(`${url}/9`)).status, 404)
  t.equal((await fetch(`${baseUrl}/v1/projects/p1/videos/none/renders/latest`)).status, 404)
})

t.test('scene clips attach to an existing render version and re-putting one replaces it', async (t) => {
  const testAws = await startTestAws(t)
  const { baseUrl } = await listen(t, { aws: testAws })
  const aws = clients(t, testAws)
  const url = `${baseUrl}/v1/projects/p1/videos/sc/renders`
  t.equal((await fetch(`${url}/1/scenes/1`, { method: 'PUT', headers: { 'content-type': 'video/mp4' }, body: mp4Bytes(1024) })).status, 404, 'no render version yet')
  t.equal((await fetch(url, { method: 'POST', headers: { 'content-type': 'video/mp4' }, body: mp4Bytes(4096) })).status, 201)

  const clip = mp4Bytes(64 * 1024)
  const put = await fetch(`${url}/1/scenes/2`, { method: 'PUT', headers: { 'content-type': 'video/mp4' }, body: clip })
  t.equal(put.status, 201)
  const placed = await put.json() as { key: string }
  t.match(placed, { version: 1, sceneNumber: 2, key: /^videos\/p1\/sc\/scenes\/v1\/2\/[0-9a-f-]{36}\.mp4$/, sha256: sha256(clip), sizeBytes: clip.length })
  const replacement = mp4Bytes(32 * 1024)
  const form = new FormData()
  form.append('file', new Blob([replacement]), 'scene.mp4')
  const replaced = await fetch(`${url}/latest/scenes/2`, { method: 'PUT', body: form })
  t.equal(replaced.status, 201, 'multipart scene, version latest')
  const replacing = await replaced.json() as { key: string }
  t.not(replacing.key, placed.key, 'the replacement has its own key')
  t.same(await objectDigest(aws, testAws.config.videoBucket, replacing.key), { sha256: sha256(replacement), size: replacement.length }, 'replaced')
  const sceneItems = (await tableItems(aws, testAws.config.table)).filter((item) => String(item.sk).startsWith('SCENE#'))
  t.same(sceneItems.map((item) => [item.sk, item.key]), [['SCENE#000000001#00002', replacing.key]], 'one scene item, naming the replacement')
  t.notOk((await objectKeys(aws, testAws.config.videoBucket)).includes(placed.key), 'the replaced clip\'s object is deleted')

  const render = await (await fetch(`${url}/1`)).json() as { sceneCount: number, scenes: Array<{ sceneNumber: number, sha256: string, downloadUrl: string }> }
  t.equal(render.sceneCount, 1)
  t.same(render.scenes.map((scene) => [scene.sceneNumber, scene.sha256]), [[2, sha256(replacement)]])
  t.notOk((await objectKeys(aws, testAws.config.videoBucket)).some((key) => key.startsWith('staging/')), 'no staging object left')
  t.equal((await fetch(`${url}/1/scenes/3`, { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: 'not a video' })).status, 415)
  t.equal((await fetch(`${url}/1/scenes/0`, { method: 'PUT', headers: { 'content-type': 'video/mp4' }, body: clip })).status, 400)
})

t.test('415 and 413 leave nothing in S3 or DynamoDB', async (t) => {
  const testAws = await startTestAws(t)
  const { baseUrl } = await listen(t, { aws: testAws, config: { maxVideoBytes: 6 * MiB } })
  const aws = clients(t, testAws)
  const url = `${baseUrl}/v1/projects/p1/videos/bad/renders`
  const assertNothing = async (what: string): Promise<void> => {
    t.same(await objectKeys(aws, testAws.config.videoBucket), [], `${what}: no object`)
    t.same(await tableItems(aws, testAws.config.table), [], `${what}: no item`)
  }

  const notVideo = await fetch(url, { method: 'POST', headers: { 'content-type': 'video/mp4' }, body: Buffer.alloc(4096, 'x') })
  t.equal(notVideo.status, 415)
  t.equal(notVideo.headers.get('content-type'), 'application/problem+json; charset=utf-8')
  await assertNothing('415 raw')
  const form = new FormData()
  form.append('file', new Blob([Buffer.from('%PDF-1.7 not a video at all, really not')]), 'doc.pdf')
  t.equal((await fetch(url, { method: 'POST', body: form })).status, 415)
  await assertNothing('415 multipart')
  t.equal((await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status, 415)

  const declared = await fetch(url, { method: 'POST', headers: { 'content-type': 'video/mp4' }, body: mp4Bytes(7 * MiB) })
  t.equal(declared.status, 413)
  await assertNothing('413 declared')

  const big = mp4Bytes(7 * MiB)
  const chunked = new ReadableStream({
    start (controller) {
      for (let offset = 0; offset < big.length; offset += MiB) controller.enqueue(big.subarray(offset, offset + MiB))
      controller.close()
    }
  })
  const unknownLength = await fetch(url, { method: 'POST', headers: { 'content-type': 'video/mp4' }, body: chunked, duplex: 'half' } as RequestInit)
  t.equal(unknownLength.status, 413, 'unknown length stopped at the limit')
  await assertNothing('413 chunked')

  const bigForm = new FormData()
  bigForm.append('file', new Blob([big]), 'big.mp4')
  t.equal((await fetch(url, { method: 'POST', body: bigForm })).status, 413, 'multipart over the limit')
  await assertNothing('413 multipart')
})

t.test('two concurrent uploads get versions 1 and 2 without either waiting for the other', async (t) => {
  const testAws = await startTestAws(t)
  const { baseUrl } = await listen(t, { aws: testAws })
  const aws = clients(t, testAws)
  const path = '/v1/projects/p1/videos/race/renders'
  const slow = mp4Bytes(6 * MiB)
  const fast = mp4Bytes(2 * MiB)
  // The first upload starts and stops half way; the second one is sent whole while the first is still open.
  const first = rawUpload(baseUrl, path, slow.length)
  let firstSettled = false
  void first.outcome.then(() => { firstSettled = true })
  await writeAll(first.request, slow.subarray(0, 3 * MiB))
  let progress: { status?: string } = {}
  for (const deadline = Date.now() + 20_000; progress.status !== 'uploading' && Date.now() < deadline;) {
    const answer = await fetch(`${baseUrl}/v1/projects/p1/videos/race/progress`)
    progress = answer.status === 200 ? await answer.json() as { status: string } : {}
    if (progress.status !== 'uploading') await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.match(progress, { status: 'uploading' }, 'the first upload is under way')

  const second = rawUpload(baseUrl, path, fast.length)
  await writeAll(second.request, fast)
  second.request.end()
  const secondAnswer = await second.outcome
  t.equal(secondAnswer.status, 201, 'the second upload is answered while the first is still sending')
  t.notOk(firstSettled, 'the first one is indeed still open')
  const secondRender = JSON.parse(secondAnswer.body) as { version: number, sha256: string, key: string }
  t.equal(secondRender.version, 1, 'it committed first, so it is version 1')

  await writeAll(first.request, slow.subarray(3 * MiB))
  first.request.end()
  const firstAnswer = await first.outcome
  t.equal(firstAnswer.status, 201)
  const firstRender = JSON.parse(firstAnswer.body) as { version: number, sha256: string, key: string }
  t.equal(firstRender.version, 2, 'the upload that started first and finished last is version 2')

  for (const [render, body] of [[firstRender, slow], [secondRender, fast]] as const) {
    t.equal(render.sha256, sha256(body))
    t.same(await objectDigest(aws, testAws.config.videoBucket, render.key), { sha256: sha256(body), size: body.length })
  }
  t.same((await objectKeys(aws, testAws.config.videoBucket)).sort(), [firstRender.key, secondRender.key].sort(), 'each upload has its own object, nothing else')
  const versionItems = (await tableItems(aws, testAws.config.table)).filter((item) => String(item.sk).startsWith('RENDER#'))
  t.same(versionItems.map((item) => [item.sk, item.key]), [['RENDER#000000001', secondRender.key], ['RENDER#000000002', firstRender.key]])
  const latest = await (await fetch(`${baseUrl}${path}/latest`)).json() as { version: number }
  t.equal(latest.version, 2)
})

t.test('bad form fields are a 400 before anything is stored', async (t) => {
  const testAws = await startTestAws(t)
  const { baseUrl } = await listen(t, { aws: testAws })
  const aws = clients(t, testAws)
  const url = `${baseUrl}/v1/projects/p1/videos/form/renders`
  const cases: Array<[string, (form: FormData) => void, RegExp]> = [
    ['durationSeconds', (form) => { form.append('durationSeconds', 'soon') }, /durationSeconds/],
    ['resolution', (form) => { form.append('resolution', 'huge') }, /resolution/],
    ['metadata', (form) => { form.append('metadata', '[1, 2]') }, /metadata/],
    ['metadata JSON', (form) => { form.append('metadata', '{nope') }, /metadata/]
  ]
  for (const [name, addField, detail] of cases) {
    const form = new FormData()
    addField(form)
    form.append('file', new Blob([mp4Bytes(1024)]), 'v.mp4')
    const response = await fetch(url, { method: 'POST', body: form })
    t.equal(response.status, 400, name)
    t.match(await response.json(), { detail })
  }
  const misnamed = new FormData()
  misnamed.append('video', new Blob([mp4Bytes(1024)]), 'v.mp4')
  t.equal((await fetch(url, { method: 'POST', body: misnamed })).status, 400, 'the file part must be "file"')
  const noFile = new FormData()
  noFile.append('title', 'nothing')
  t.equal((await fetch(url, { method: 'POST', body: noFile })).status, 400, 'a form without a file')
  t.equal((await fetch(url, { method: 'POST', headers: { 'content-type': 'video/mp4', 'x-duration-seconds': 'soon' }, body: mp4Bytes(1024) })).status, 400, 'a bad X-Duration-Seconds')
  t.equal((await fetch(`${baseUrl}/v1/projects/bad%20id/videos/form/renders`, { method: 'POST', headers: { 'content-type': 'video/mp4' }, body: mp4Bytes(1024) })).status, 400, 'a bad project id')
  t.same(await objectKeys(aws, testAws.config.videoBucket), [])
  t.same(await tableItems(aws, testAws.config.table), [])

  const raw = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'x-title': 'Raw', 'x-duration-seconds': '3.5', 'x-resolution': '1280x720' }, body: mp4Bytes(2048) })
  t.equal(raw.status, 201, 'octet-stream is accepted and sniffed')
  t.match(await (await fetch(`${url}/1`)).json(), { title: 'Raw', durationSeconds: 3.5, resolution: '1280x720', contentType: 'video/mp4' })
})

t.test('DynamoDB down: uploads, reads and progress answer 503 with Retry-After and store nothing', async (t) => {
  const testAws = await startTestAws(t)
  const { baseUrl } = await listen(t, { aws: testAws })
  const aws = clients(t, testAws)
  const url = `${baseUrl}/v1/projects/p1/videos/nodb/renders`
  await testAws.embedded.dynamodb.stop()
  const upload = await fetch(url, { method: 'POST', headers: { 'content-type': 'video/mp4' }, body: mp4Bytes(64 * 1024) })
  t.equal(upload.status, 503)
  t.equal(upload.headers.get('retry-after'), '5')
  t.equal((await fetch(url)).status, 503, 'list')
  t.equal((await fetch(`${baseUrl}/v1/projects/p1/videos/nodb/progress`)).status, 503, 'progress')
  t.same(await objectKeys(aws, testAws.config.videoBucket), [], 'nothing in S3')
  await testAws.embedded.dynamodb.restart()
  t.same(await tableItems(aws, testAws.config.table), [], 'nothing in DynamoDB')
})
