// Strict tier only (npm run test:strict): real SigV4 checks on the presigned URLs of direct uploads. s3rver verifies
// no signature, so there a tampered URL or a wrong header is stored and only the service's own checks see it.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { listen, onStrictBackend, startTestAws } from '../helper.js'

const MIB = 1024 * 1024
const skip = onStrictBackend() ? false : 'needs real SigV4 checks: runs on the strict tier (npm run test:strict)'

interface Plan { uploadId: string, method: string, url?: string, parts?: Array<{ partNumber: number, url: string, sizeBytes: number }>, partSize?: number, headers: Record<string, string> }

function fakeMp4 (size: number): Buffer {
  const bytes = randomBytes(size)
  bytes.writeUInt32BE(24, 0)
  bytes.write('ftypisom', 4, 'latin1')
  return bytes
}

t.test('presigned URLs on real S3', { skip }, async (t) => {
  const testAws = await startTestAws(t)
  const { baseUrl } = await listen(t, { aws: testAws, config: { directMultipartThreshold: 6 * MIB, partSize: 5 * MIB, maxVideoBytes: 64 * MIB } })
  const api = async (method: string, path: string, body?: unknown): Promise<{ status: number, json: any, type: string | null }> => {
    const response = await fetch(`${baseUrl}${path}`, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
    const text = await response.text()
    return { status: response.status, json: text === '' ? undefined : JSON.parse(text), type: response.headers.get('content-type') }
  }
  const uploads = (videoId: string): string => `/v1/projects/p1/videos/${videoId}/uploads`
  const open = async (videoId: string, request: Record<string, unknown>): Promise<Plan> => {
    const created = await api('POST', uploads(videoId), request)
    if (created.status !== 201) throw new Error(`open answered ${created.status}: ${JSON.stringify(created.json)}`)
    const plan = created.json as Plan & { partCount?: number }
    if (plan.method !== 'MULTIPART') return plan
    // Multipart part URLs are signed on demand (POST .../parts), not at creation.
    const signed = await api('POST', `${uploads(videoId)}/${plan.uploadId}/parts`, { partNumbers: Array.from({ length: plan.partCount as number }, (_, index) => index + 1) })
    return { ...plan, parts: signed.json.parts }
  }
  const s3Code = async (response: Response): Promise<string> => /<Code>([^<]+)<\/Code>/.exec(await response.text())?.[1] ?? ''

  t.test('single PUT: tampered URL, unsigned or wrong headers, wrong length are 403; complete says nothing was uploaded', async (t) => {
    const bytes = fakeMp4(MIB + 3)
    const plan = await open('single-refused', { sizeBytes: bytes.length, contentType: 'video/mp4' })
    const url = new URL(plan.url as string)

    const tampered = new URL(url)
    tampered.pathname = tampered.pathname.replace(/\.mp4$/, '.mov')
    const attempts: Array<[string, string, Record<string, string>, Buffer]> = [
      ['a tampered key', tampered.toString(), plan.headers, bytes],
      ['a longer expiry', url.toString().replace(/X-Amz-Expires=\d+/, 'X-Amz-Expires=604800'), plan.headers, bytes],
      ['another content type', url.toString(), { ...plan.headers, 'Content-Type': 'video/webm' }, bytes],
      ['the signed SSE header left out', url.toString(), { 'Content-Type': 'video/mp4' }, bytes],
      ['fewer bytes than signed', url.toString(), plan.headers, bytes.subarray(0, bytes.length - 1)],
      ['more bytes than signed', url.toString(), plan.headers, Buffer.concat([bytes, Buffer.alloc(1)])]
    ]
    for (const [what, target, headers, body] of attempts) {
      const put = await fetch(target, { method: 'PUT', headers, body: new Uint8Array(body) })
      t.equal(put.status, 403, `${what}: refused by S3`)
      t.equal(await s3Code(put), put.status === 403 ? 'SignatureDoesNotMatch' : '', `${what}: refused at the signature`)
    }
    const completed = await api('POST', `${uploads('single-refused')}/${plan.uploadId}/complete`, {})
    t.equal(completed.status, 400, 'complete is a 4xx')
    t.match(completed.type, /^application\/problem\+json/)
    t.match(completed.json.detail, /nothing has been uploaded/, 'and says nothing valid was uploaded')
    const video = await api('GET', '/v1/projects/p1/videos/single-refused')
    t.equal(video.json?.latestRenderVersion ?? null, null, 'no render version')

    const put = await fetch(url, { method: 'PUT', headers: plan.headers, body: new Uint8Array(bytes) })
    t.equal(put.status, 200, 'the URL as given, with the headers as given, still works')
    const after = await api('POST', `${uploads('single-refused')}/${plan.uploadId}/complete`, {})
    t.equal(after.status, 201, 'and then complete commits it')
  })

  t.test('multipart parts: tampered part number or wrong length are 403; complete with no part uploaded is a 4xx', async (t) => {
    const bytes = fakeMp4(6 * MIB + 9)
    const plan = await open('multi-refused', { sizeBytes: bytes.length, contentType: 'video/mp4' })
    t.equal(plan.method, 'MULTIPART')
    const [first, second] = plan.parts ?? []
    const part = bytes.subarray(0, first.sizeBytes)
    const swapped = first.url.replace(/partNumber=1(&|$)/, 'partNumber=2$1')
    t.not(swapped, first.url)
    for (const [what, target, body] of [['another part number', swapped, part], ['fewer bytes than signed', first.url, part.subarray(1)], ['another part\'s bytes', second.url, part]] as const) {
      const put = await fetch(target, { method: 'PUT', body: new Uint8Array(body) })
      t.equal(put.status, 403, `${what}: refused by S3`)
    }
    const completed = await api('POST', `${uploads('multi-refused')}/${plan.uploadId}/complete`, { parts: [{ partNumber: 1, etag: '"0123456789abcdef0123456789abcdef"' }, { partNumber: 2, etag: '"0123456789abcdef0123456789abcdef"' }] })
    t.ok(completed.status >= 400 && completed.status < 500, `complete is a 4xx (${completed.status})`)
    t.match(completed.type, /^application\/problem\+json/)
    t.match(completed.json.detail, /upload|part/i, `it names what is missing: ${completed.json?.detail as string}`)
  })
})
