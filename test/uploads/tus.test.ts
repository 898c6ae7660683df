// tus 1.0.0 protocol: every status the protocol fixes, against a listening service on the embedded S3 + DynamoDB.
import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { listen } from '../helper.js'
import { clients, mp4Bytes, objectDigest, objectKeys, sha256 } from '../support/render-fixtures.js'

const MiB = 1024 * 1024
const PART = 5 * MiB
const TUS = { 'tus-resumable': '1.0.0' }
const b64 = (text: string): string => Buffer.from(text).toString('base64')
const digest = (algorithm: string, bytes: Buffer): string => createHash(algorithm).update(bytes).digest('base64')

t.test('tus protocol', async (t) => {
  const { app, baseUrl } = await listen(t, { config: { partSize: PART } })
  const aws = clients(t, app.testAws)
  const config = app.testAws.config
  let videoCounter = 0
  const collection = (): string => `${baseUrl}/v1/projects/tusp/videos/v${++videoCounter}/tus`

  async function create (url: string, length: number, headers: Record<string, string> = {}): Promise<string> {
    const response = await fetch(url, { method: 'POST', headers: { ...TUS, 'upload-length': String(length), ...headers } })
    t.equal(response.status, 201, 'created')
    const location = response.headers.get('location') ?? ''
    t.match(location, /^\/v1\/projects\/tusp\/videos\/v\d+\/tus\/[0-9a-f-]{36}$/)
    return `${baseUrl}${location}`
  }
  const patch = async (url: string, offset: number, body: Buffer, headers: Record<string, string> = {}): Promise<Response> =>
    await fetch(url, { method: 'PATCH', headers: { ...TUS, 'content-type': 'application/offset+octet-stream', 'upload-offset': String(offset), ...headers }, body: body as Uint8Array<ArrayBuffer> })
  const head = async (url: string): Promise<Response> => await fetch(url, { method: 'HEAD', headers: TUS })
  const problem = async (t: Test, response: Response, status: number): Promise<void> => {
    t.equal(response.status, status, `answers ${status}`)
    t.match(response.headers.get('content-type') ?? '', /application\/problem\+json/)
    t.equal(response.headers.get('tus-resumable'), '1.0.0')
    const text = await response.text()
    // HEAD answers carry no body
    if (text !== '') t.equal((JSON.parse(text) as { status: number }).status, status)
  }

  t.test('OPTIONS names version, extensions, maximum size and checksum algorithms', async (t) => {
    const response = await fetch(collection(), { method: 'OPTIONS' })
    t.equal(response.status, 204)
    t.equal(response.headers.get('tus-resumable'), '1.0.0')
    t.equal(response.headers.get('tus-version'), '1.0.0')
    t.same(response.headers.get('tus-extension')?.split(','), ['creation', 'creation-with-upload', 'termination', 'expiration', 'checksum'])
    t.equal(response.headers.get('tus-max-size'), String(config.maxVideoBytes))
    t.same(response.headers.get('tus-checksum-algorithm')?.split(','), ['sha1', 'sha256', 'md5'])
  })

  t.test('Tus-Resumable: missing or another version is 412 with Tus-Version, nothing created', async (t) => {
    const url = collection()
    for (const headers of [{}, { 'tus-resumable': '0.2.2' }]) {
      const response = await fetch(url, { method: 'POST', headers: { ...headers, 'upload-length': '100' } })
      t.equal(response.headers.get('tus-version'), '1.0.0')
      await problem(t, response, 412)
    }
    const progress = await fetch(`${url.replace(/\/tus$/, '')}/progress`)
    t.equal(progress.status, 404, 'no upload was opened')
  })

  t.test('creation refuses bad input with problem+json', async (t) => {
    const url = collection()
    await problem(t, await fetch(url, { method: 'POST', headers: TUS }), 400)
    await problem(t, await fetch(url, { method: 'POST', headers: { ...TUS, 'upload-length': 'ten' } }), 400)
    await problem(t, await fetch(url, { method: 'POST', headers: { ...TUS, 'upload-length': '0' } }), 400)
    await problem(t, await fetch(url, { method: 'POST', headers: { ...TUS, 'upload-length': '100', 'upload-defer-length': '1' } }), 400)
    await problem(t, await fetch(url, { method: 'POST', headers: { ...TUS, 'upload-length': String(config.maxVideoBytes + 1) } }), 413)
    await problem(t, await fetch(url, { method: 'POST', headers: { ...TUS, 'upload-length': '100', 'upload-metadata': 'title not*base64' } }), 400)
    await problem(t, await fetch(url, { method: 'POST', headers: { ...TUS, 'upload-length': '100', 'upload-metadata': `resolution ${b64('big')}` } }), 400)
    await problem(t, await fetch(url, { method: 'POST', headers: { ...TUS, 'upload-length': '100', 'upload-metadata': `filetype ${b64('text/plain')}` } }), 415)
    const progress = await fetch(`${url.replace(/\/tus$/, '')}/progress`)
    t.equal(progress.status, 404, 'no upload was opened')
  })

  t.test('an upload in several PATCHes (held part below the S3 minimum, then whole parts) becomes a render version with its bytes', async (t) => {
    const bytes = mp4Bytes(PART * 2 + 123_457)
    const videoUrl = collection()
    const url = await create(videoUrl, bytes.length, { 'upload-metadata': `filename ${b64('clip.mp4')},filetype ${b64('video/mp4')},title ${b64('Take ✓')},durationSeconds ${b64('12.5')},resolution ${b64('1920x1080')}` })
    let response = await head(url)
    t.equal(response.status, 200)
    t.equal(response.headers.get('upload-offset'), '0')
    t.equal(response.headers.get('upload-length'), String(bytes.length))
    t.equal(response.headers.get('cache-control'), 'no-store')
    t.ok(Date.parse(response.headers.get('upload-expires') ?? '') > Date.now(), 'Upload-Expires is in the future')
    t.match(response.headers.get('upload-metadata') ?? '', `title ${b64('Take ✓')}`)

    const cuts = [0, 1000, 3 * MiB, PART + 10, PART * 2 + 5, bytes.length]
    for (let index = 0; index < cuts.length - 1; index++) {
      response = await patch(url, cuts[index], bytes.subarray(cuts[index], cuts[index + 1]))
      t.equal(response.status, 204, `PATCH ${index}`)
      t.equal(response.headers.get('upload-offset'), String(cuts[index + 1]))
      t.equal(response.headers.get('tus-resumable'), '1.0.0')
      if (index < cuts.length - 2) {
        t.notOk(response.headers.get('x-render-version'))
        const progress = await (await fetch(`${videoUrl.replace(/\/tus$/, '')}/progress`)).json() as { status: string, bytesUploaded: number, totalBytes: number }
        t.match(progress, { status: 'uploading', bytesUploaded: cuts[index + 1], totalBytes: bytes.length }, 'progress shows the stored bytes')
      }
    }
    t.equal(response.headers.get('x-render-version'), '1')
    const render = await (await fetch(`${videoUrl.replace(/\/tus$/, '')}/renders/1`)).json() as { sha256: string, sizeBytes: number, key: string, title: string, durationSeconds: number, resolution: string, contentType: string, metadata: unknown }
    t.match(render, { sha256: sha256(bytes), sizeBytes: bytes.length, title: 'Take ✓', durationSeconds: 12.5, resolution: '1920x1080', contentType: 'video/mp4', metadata: { filename: 'clip.mp4' } })
    t.same(await objectDigest(aws, config.videoBucket, render.key), { sha256: sha256(bytes), size: bytes.length }, 'the stored bytes are the uploaded ones')
    const keys = await objectKeys(aws, config.videoBucket)
    t.notOk(keys.some((key) => key.includes('tus-incomplete-part')), 'no held part is left')
    const progress = await (await fetch(`${videoUrl.replace(/\/tus$/, '')}/progress`)).json() as { status: string }
    t.equal(progress.status, 'completed')

    // Finished: HEAD says so, a repeat of the last PATCH changes nothing, termination is refused.
    response = await head(url)
    t.equal(response.headers.get('upload-offset'), String(bytes.length))
    t.equal(response.headers.get('x-render-version'), '1')
    response = await patch(url, bytes.length, Buffer.alloc(0))
    t.equal(response.status, 204)
    await problem(t, await patch(url, 5, Buffer.from('x')), 409)
    await problem(t, await fetch(url, { method: 'DELETE', headers: TUS }), 409)
    const list = await (await fetch(`${videoUrl.replace(/\/tus$/, '')}/renders`)).json() as { items: unknown[] }
    t.equal(list.items.length, 1, 'one render version')
  })

  t.test('PATCH: wrong content type 415, wrong offset 409, missing offset 400, unknown upload 404; nothing stored', async (t) => {
    const bytes = mp4Bytes(4000)
    const url = await create(collection(), bytes.length)
    await problem(t, await fetch(url, { method: 'PATCH', headers: { ...TUS, 'content-type': 'application/octet-stream', 'upload-offset': '0' }, body: bytes }), 415)
    await problem(t, await fetch(url, { method: 'PATCH', headers: { ...TUS, 'upload-offset': '0' } }), 415)
    await problem(t, await patch(url, 10, bytes.subarray(10)), 409)
    await problem(t, await fetch(url, { method: 'PATCH', headers: { ...TUS, 'content-type': 'application/offset+octet-stream' }, body: bytes }), 400)
    await problem(t, await patch(url.replace(/[0-9a-f-]{36}$/, '00000000-0000-0000-0000-000000000000'), 0, bytes), 404)
    await problem(t, await patch(url, 0, Buffer.concat([bytes, Buffer.from('extra')])), 413)
    const response = await head(url)
    t.equal(response.headers.get('upload-offset'), '0', 'nothing was stored')
    t.equal((await patch(url, 0, bytes)).status, 204, 'the right PATCH still works')
  })

  t.test('checksum: sha1, sha256 and md5 per PATCH; a mismatch is 460 and keeps nothing; an unknown algorithm is 400', async (t) => {
    const bytes = mp4Bytes(PART + 5000)
    const url = await create(collection(), bytes.length)
    const first = bytes.subarray(0, 3000)
    let response = await patch(url, 0, first, { 'upload-checksum': `sha1 ${digest('sha1', first)}` })
    t.equal(response.status, 204)
    const second = bytes.subarray(3000, PART + 10)
    await problem(t, await patch(url, 3000, second, { 'upload-checksum': `sha256 ${digest('sha256', Buffer.from('other'))}` }), 460)
    t.equal((await head(url)).headers.get('upload-offset'), '3000', 'the mismatched body was not kept')
    await problem(t, await patch(url, 3000, second, { 'upload-checksum': `crc32 ${digest('md5', second)}` }), 400)
    response = await patch(url, 3000, second, { 'upload-checksum': `sha256 ${digest('sha256', second)}` })
    t.equal(response.status, 204)
    const last = bytes.subarray(PART + 10)
    response = await patch(url, PART + 10, last, { 'upload-checksum': `md5 ${digest('md5', last)}` })
    t.equal(response.status, 204)
    t.equal(response.headers.get('x-render-version'), '1')
    const render = await (await fetch(`${url.replace(/\/tus\/.*$/, '')}/renders/1`)).json() as { sha256: string }
    t.equal(render.sha256, sha256(bytes), 'the SHA-256 covers exactly the kept bytes')
  })

  t.test('a body that is no video is 415 and the upload is gone (410)', async (t) => {
    const url = await create(collection(), 10_000)
    await problem(t, await patch(url, 0, Buffer.alloc(10_000, 1)), 415)
    await problem(t, await head(url), 410)
  })

  t.test('termination: 204, then HEAD and PATCH are 410 and no bytes are left', async (t) => {
    const bytes = mp4Bytes(PART + 100)
    const url = await create(collection(), bytes.length + 10)
    t.equal((await patch(url, 0, bytes)).status, 204)
    const uploadId = url.split('/').pop() ?? ''
    t.ok((await objectKeys(aws, config.videoBucket)).some((key) => key.includes(uploadId)), 'the held part is stored')
    const response = await fetch(url, { method: 'DELETE', headers: TUS })
    t.equal(response.status, 204)
    t.equal(response.headers.get('tus-resumable'), '1.0.0')
    await problem(t, await head(url), 410)
    await problem(t, await patch(url, bytes.length, Buffer.from('x')), 410)
    await problem(t, await fetch(url, { method: 'DELETE', headers: TUS }), 410)
    t.notOk((await objectKeys(aws, config.videoBucket)).some((key) => key.includes(uploadId)), 'nothing of it is left')
  })

  t.test('creation-with-upload stores the first bytes; an Idempotency-Key repeats the same Location', async (t) => {
    const bytes = mp4Bytes(20_000)
    const url = collection()
    const response = await fetch(url, { method: 'POST', headers: { ...TUS, 'upload-length': String(bytes.length), 'content-type': 'application/offset+octet-stream' }, body: bytes.subarray(0, 7000) })
    t.equal(response.status, 201)
    t.equal(response.headers.get('upload-offset'), '7000')
    const location = `${baseUrl}${response.headers.get('location') ?? ''}`
    t.equal((await patch(location, 7000, bytes.subarray(7000))).status, 204)

    const keyed = { ...TUS, 'upload-length': '5000', 'idempotency-key': 'tus-create-1' }
    const one = await fetch(url, { method: 'POST', headers: keyed })
    const two = await fetch(url, { method: 'POST', headers: keyed })
    t.equal(two.status, 201)
    t.equal(two.headers.get('idempotent-replayed'), 'true')
    t.equal(two.headers.get('location'), one.headers.get('location'), 'the same upload')

    // A repeated creation-with-upload answers the upload's offset as it is now, as a first answer would.
    const video = mp4Bytes(5000)
    const withBody = { ...TUS, 'upload-length': String(video.length), 'content-type': 'application/offset+octet-stream', 'idempotency-key': 'tus-create-2' }
    const first = await fetch(url, { method: 'POST', headers: withBody, body: video.subarray(0, 3000) })
    t.equal(first.status, 201)
    t.equal(first.headers.get('upload-offset'), '3000')
    const again = await fetch(url, { method: 'POST', headers: withBody, body: video.subarray(0, 3000) })
    t.equal(again.status, 201)
    t.equal(again.headers.get('idempotent-replayed'), 'true')
    t.equal(again.headers.get('location'), first.headers.get('location'), 'the same upload')
    t.equal(again.headers.get('upload-offset'), '3000', 'the replay says how much is stored')
    t.ok(again.headers.get('upload-expires'), 'and until when')
    const created = `${baseUrl}${first.headers.get('location') ?? ''}`
    t.equal((await patch(created, 3000, video.subarray(3000))).status, 204)
    const late = await fetch(url, { method: 'POST', headers: withBody, body: video.subarray(0, 3000) })
    t.equal(late.headers.get('upload-offset'), '5000', 'a replay after the upload completed says it is complete')
  })

  t.test('two PATCHes at once: the second is 423 with Retry-After; the first completes', async (t) => {
    const bytes = mp4Bytes(50_000)
    const url = await create(collection(), bytes.length)
    const target = new URL(url)
    // A PATCH that sends its first half and then waits, holding the upload.
    let finishFirst: () => void = () => {}
    const first = new Promise<number>((resolve, reject) => {
      const request = httpRequest({ host: target.hostname, port: target.port, path: target.pathname, method: 'PATCH', headers: { ...TUS, 'content-type': 'application/offset+octet-stream', 'upload-offset': '0', 'content-length': String(bytes.length) } }, (response) => {
        response.resume()
        resolve(response.statusCode ?? 0)
      })
      request.on('error', reject)
      request.write(bytes.subarray(0, 25_000))
      finishFirst = () => { request.end(bytes.subarray(25_000)) }
    })
    // Wait until the first holds the lease (its progress shows).
    for (let i = 0; i < 100; i++) {
      const progress = await (await fetch(`${url.replace(/\/tus\/.*$/, '')}/progress`)).json() as { status: string }
      if (progress.status === 'uploading') break
      await sleep(50)
    }
    const second = await patch(url, 0, bytes)
    t.ok(second.headers.get('retry-after'), 'Retry-After')
    await problem(t, second, 423)
    finishFirst()
    t.equal(await first, 204, 'the first PATCH completes the upload')
    const render = await (await fetch(`${url.replace(/\/tus\/.*$/, '')}/renders/1`)).json() as { sha256: string }
    t.equal(render.sha256, sha256(bytes))
  })

  t.test('a connection cut mid-PATCH keeps what arrived; the upload resumes from there', async (t) => {
    const bytes = mp4Bytes(PART * 2 + 777)
    const url = await create(collection(), bytes.length)
    const target = new URL(url)
    const cutAt = PART + 4321
    await new Promise<void>((resolve) => {
      const request = httpRequest({ host: target.hostname, port: target.port, path: target.pathname, method: 'PATCH', headers: { ...TUS, 'content-type': 'application/offset+octet-stream', 'upload-offset': '0', 'content-length': String(bytes.length) } })
      request.on('error', () => { resolve() })
      request.write(bytes.subarray(0, cutAt), () => { setTimeout(() => { request.destroy(); resolve() }, 300) })
    })
    let offset = 0
    for (let i = 0; i < 50 && offset !== cutAt; i++) {
      offset = Number((await head(url)).headers.get('upload-offset'))
      if (offset !== cutAt) await sleep(100)
    }
    t.equal(offset, cutAt, 'every byte that arrived was kept')
    const response = await patch(url, offset, bytes.subarray(offset))
    t.equal(response.status, 204)
    const render = await (await fetch(`${url.replace(/\/tus\/.*$/, '')}/renders/1`)).json() as { sha256: string, key: string }
    t.equal(render.sha256, sha256(bytes))
    t.same(await objectDigest(aws, config.videoBucket, render.key), { sha256: sha256(bytes), size: bytes.length })
  })
})

t.test('expiration: an upload with no PATCH for TUS_EXPIRES_SECONDS is 410 and its bytes go', async (t) => {
  const { app, baseUrl } = await listen(t, { config: { partSize: PART, tusExpiresSeconds: 1 } })
  const aws = clients(t, app.testAws)
  const created = await fetch(`${baseUrl}/v1/projects/tusp/videos/expiring/tus`, { method: 'POST', headers: { ...TUS, 'upload-length': '100000' } })
  const url = `${baseUrl}${created.headers.get('location') ?? ''}`
  const patched = await fetch(url, { method: 'PATCH', headers: { ...TUS, 'content-type': 'application/offset+octet-stream', 'upload-offset': '0' }, body: mp4Bytes(1000) })
  t.equal(patched.status, 204)
  t.ok(Date.parse(patched.headers.get('upload-expires') ?? '') <= Date.now() + 2000)
  await sleep(2200)
  const response = await fetch(url, { method: 'HEAD', headers: TUS })
  t.equal(response.status, 410)
  const uploadId = url.split('/').pop() ?? ''
  t.notOk((await objectKeys(aws, app.testAws.config.videoBucket)).some((key) => key.includes(uploadId)), 'its held part is gone')
  const progress = await (await fetch(`${baseUrl}/v1/projects/tusp/videos/expiring/progress`)).json() as { status: string }
  t.equal(progress.status, 'expired')
})
