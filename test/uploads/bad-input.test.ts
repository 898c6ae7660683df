// Forged direct-upload completes: each is a 4xx problem+json, no render version appears, and reconcile finds nothing.
import t from 'tap'
import { createAwsClients } from '../../src/aws/clients.js'
import { isClean, reconcile } from '../../src/ops/reconcile.js'
import { listen, onStrictBackend, startTestAws } from '../helper.js'
import { mp4Bytes } from '../support/render-fixtures.js'

const MiB = 1024 * 1024

interface Plan { uploadId: string, url?: string, parts?: Array<{ partNumber: number, url: string, sizeBytes: number }>, partSize?: number, headers: Record<string, string> }

t.test('forged complete calls: wrong ETags, parts of another upload, sizes that do not match, unknown ids', async (t) => {
  const testAws = await startTestAws(t)
  const { app, baseUrl } = await listen(t, { aws: testAws, config: { directMultipartThreshold: 6 * MiB, partSize: 5 * MiB, overload: { maxEventLoopDelayMs: 0, maxHeapBytes: 0 } } })
  const aws = createAwsClients(app.config)
  t.teardown(() => { aws.destroy() })
  const uploads = `${baseUrl}/v1/projects/p1/videos/forged/uploads`
  const call = async (method: string, url: string, body?: unknown) => {
    const response = await fetch(url, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
    return { status: response.status, type: response.headers.get('content-type') ?? '', json: await response.json().catch(() => undefined) as Record<string, unknown> | undefined }
  }
  const open = async (sizeBytes: number): Promise<Plan> => {
    const created = await call('POST', uploads, { sizeBytes, contentType: 'video/mp4' })
    t.equal(created.status, 201)
    const plan = created.json as unknown as Plan & { method?: string, uploadId: string, partCount?: number }
    if (plan.method !== 'MULTIPART') return plan
    // Multipart part URLs are signed on demand (POST .../parts), not at creation.
    const signed = await call('POST', `${uploads}/${plan.uploadId}/parts`, { partNumbers: Array.from({ length: plan.partCount ?? 0 }, (_, index) => index + 1) })
    return { ...plan, parts: (signed.json as { parts: Plan['parts'] }).parts }
  }
  const putParts = async (plan: Plan, bytes: Buffer) => await Promise.all((plan.parts ?? []).map(async (part) => {
    const start = (part.partNumber - 1) * (plan.partSize ?? 0)
    const response = await fetch(part.url, { method: 'PUT', headers: plan.headers, body: bytes.subarray(start, start + part.sizeBytes) })
    return { partNumber: part.partNumber, etag: response.headers.get('etag') ?? '' }
  }))
  const refused = async (name: string, uploadId: string, body: unknown) => {
    const answer = await call('POST', `${uploads}/${uploadId}/complete`, body)
    t.ok(answer.status >= 400 && answer.status < 500, `${name}: 4xx (${answer.status})`)
    t.match(answer.type, /^application\/problem\+json/, `${name}: problem+json`)
  }

  const bytesA = mp4Bytes(6 * MiB + 7)
  const bytesB = mp4Bytes(6 * MiB + 7)
  const planA = await open(bytesA.length)
  const planB = await open(bytesB.length)
  const partsA = await putParts(planA, bytesA)
  const partsB = await putParts(planB, bytesB)
  await refused('wrong part ETags', planA.uploadId, { parts: partsA.map((part) => ({ ...part, etag: `"${'f'.repeat(32)}"` })) })
  const planC = await open(bytesA.length)
  await putParts(planC, bytesA)
  await refused('parts of another upload', planC.uploadId, { parts: partsB })
  await refused('parts numbered beyond the upload', planB.uploadId, { parts: [...partsB, { partNumber: 3, etag: partsB[0].etag }] })

  const short = await open(4096)
  const shortPut = await fetch(short.url ?? '', { method: 'PUT', headers: short.headers, body: mp4Bytes(1000) })
  // Real S3 (the strict tier) refuses the PUT at the signature, which covers the declared length, and complete finds
  // nothing uploaded; s3rver (embedded) checks no signature and stores it, and complete's own size check refuses it.
  t.equal(shortPut.status, onStrictBackend() ? 403 : 200, onStrictBackend() ? 'real S3 refuses a body shorter than signed' : 'the embedded S3 takes a body shorter than signed')
  await refused('a size that does not match', short.uploadId, {})
  await refused('an upload id nobody issued', '00000000-0000-4000-8000-000000000000', {})
  await refused('an upload id that is not one', '..%2f..%2fetc', {})
  await refused('unknown fields in complete', planB.uploadId, { parts: partsB, sizeBytes: 1 })

  const renders = await call('GET', `${baseUrl}/v1/projects/p1/videos/forged/renders`)
  t.same(renders.json?.items ?? [], [], 'no render version was created')
  const report = await reconcile({ aws, config: app.config }, { graceMs: 0 })
  t.ok(isClean(report), `reconcile finds nothing: ${JSON.stringify(report).slice(0, 400)}`)
  t.equal(report.records, 0)

  const honest = await call('POST', `${uploads}/${planB.uploadId}/complete`, { parts: partsB })
  t.equal(honest.status, 201, 'the untouched upload still completes with its own parts')
})
