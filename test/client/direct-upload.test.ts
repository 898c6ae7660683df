// Direct-to-S3 uploads through the client against the real service on loopback: one presigned PUT, and multipart parts.
import t from 'tap'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { listen } from '../helper.js'
import { RenderStoreClient, RenderStoreError } from '../../src/client/index.js'
import { fixtureVideoPath } from '../../src/agents/index.js'

function videoFile (t: { teardown: (fn: () => unknown) => void }, bytes: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'direct-upload-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const clip = readFileSync(fixtureVideoPath())
  const padding = Math.max(8, bytes - clip.length)
  const free = Buffer.alloc(padding, 0x61)
  free.writeUInt32BE(padding, 0)
  free.write('free', 4, 'latin1')
  const path = join(dir, 'video.mp4')
  writeFileSync(path, Buffer.concat([clip, free]))
  return path
}

const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex')

t.test('direct uploads', async (t) => {
  const MiB = 1024 * 1024
  const { baseUrl } = await listen(t, { config: { directMultipartThreshold: 5 * MiB, partSize: 5 * MiB } })
  const client = new RenderStoreClient({ baseUrl, retry: { initialDelayMs: 5, maxDelayMs: 20 }, uploadChunkBytes: 256 * 1024 })

  t.test('one presigned PUT, verified and versioned, progress to 100', async (t) => {
    const path = videoFile(t, 300 * 1024)
    const seen: number[] = []
    const render = await client.uploadRenderDirect('direct', 'small', path, { onProgress: (_bytes, _total, percentage) => seen.push(percentage) })
    t.equal(render.version, 1)
    t.equal(render.sha256, sha256(path))
    t.equal(seen.at(-1), 100)
    const stored = Buffer.from(await (await fetch(await client.renderContentUrl('direct', 'small', 1))).arrayBuffer())
    t.equal(createHash('sha256').update(stored).digest('hex'), sha256(path))
  })

  t.test('multipart parts, in order, verified', async (t) => {
    const path = videoFile(t, 6 * MiB)
    const seen: number[] = []
    const render = await client.uploadRenderDirect('direct', 'large', path, { onProgress: (bytes) => seen.push(bytes) })
    t.equal(render.sizeBytes, 6 * MiB)
    t.equal(render.sha256, sha256(path))
    t.ok(seen.every((bytes, i) => i === 0 || bytes > seen[i - 1]), 'progress rises across parts')
    t.equal(seen.at(-1), 6 * MiB)
  })

  t.test('a wrong SHA-256 is refused and the session aborted', async (t) => {
    const path = videoFile(t, 100 * 1024)
    const error = await client.uploadRenderDirect('direct', 'wrong', path, { sha256: 'a'.repeat(64) }).catch((e: unknown) => e) as RenderStoreError
    t.type(error, RenderStoreError)
    t.ok(error.status >= 400 && error.status < 500, `a 4xx (${error.status})`)
    const renders = await client.listRenders('direct', 'wrong').catch(() => ({ items: [] }))
    t.same(renders.items, [], 'no render version')
  })

  t.test('uploadRenderDirect twice with one idempotencyKey (a run after a crash): one render version, the second answered from the first', async (t) => {
    const path = videoFile(t, 200 * 1024)
    const first = await client.uploadRenderDirect('direct', 'keyed', path, { idempotencyKey: 'direct-run-1' })
    const again = await client.uploadRenderDirect('direct', 'keyed', path, { idempotencyKey: 'direct-run-1' })
    t.equal(again.version, first.version)
    t.equal(again.replayed, true)
    const renders = await client.listRenders('direct', 'keyed')
    t.same(renders.items.map((render) => render.version), [first.version], 'one version')
  })

  t.test('uploadRender (proxied) twice with one idempotencyKey: one version, the second replayed', async (t) => {
    const path = videoFile(t, 100 * 1024)
    const first = await client.uploadRender('direct', 'proxied-keyed', path, { idempotencyKey: 'proxied-run-1' })
    const again = await client.uploadRender('direct', 'proxied-keyed', path, { idempotencyKey: 'proxied-run-1' })
    t.equal(first.replayed, false)
    t.equal(again.replayed, true)
    t.equal(again.version, first.version)
    t.same((await client.listRenders('direct', 'proxied-keyed')).items.map((render) => render.version), [first.version])
  })
})

t.test('parallel parts, cut by an abort signal at about half, resumed by a new client from the session file', async (t) => {
  const MiB = 1024 * 1024
  const { baseUrl } = await listen(t, { config: { directMultipartThreshold: 5 * MiB, partSize: 5 * MiB } })
  const stateDir = mkdtempSync(join(tmpdir(), 'direct-state-'))
  t.teardown(() => { rmSync(stateDir, { recursive: true, force: true }) })
  const path = videoFile(t, 31 * MiB)
  const cutClient = new RenderStoreClient({ baseUrl, retry: { retries: 0 }, directUpload: { stateDir, concurrency: 3 } })
  const controller = new AbortController()
  const first = await cutClient.uploadRenderDirect('direct', 'resumed', path, {
    signal: controller.signal,
    onProgress: (bytes, total) => { if (bytes > total / 2) controller.abort() }
  }).catch((error: unknown) => error)
  t.ok(first instanceof Error, 'the first run was cut')
  const saved = readdirSync(stateDir).filter((name) => name.endsWith('.json'))
  t.equal(saved.length, 1, `its session file stays (${readdirSync(stateDir).join(', ')})`)
  const uploadId = (JSON.parse(readFileSync(join(stateDir, saved[0]), 'utf8')) as { uploadId: string }).uploadId
  t.match(await cutClient.getUploadSession('direct', 'resumed', uploadId), { status: 'pending' }, 'not aborted')

  const client = new RenderStoreClient({ baseUrl, directUpload: { stateDir, concurrency: 4 } })
  let info: { resumed: boolean, partsStored: number, partCount: number } | undefined
  const render = await client.uploadRenderDirect('direct', 'resumed', path, { onSession: (session) => { info = session } })
  t.equal(info?.resumed, true)
  t.ok((info?.partsStored ?? 0) >= 1 && (info?.partsStored ?? 0) < (info?.partCount ?? 0), `${info?.partsStored} of ${info?.partCount} parts kept`)
  t.equal(render.uploadId, uploadId, 'the same session completed')
  t.equal(render.sha256, sha256(path))
  t.same(readdirSync(stateDir), [], 'session file removed')
})

t.test('uploadRender takes the direct path from directUpload.thresholdBytes', async (t) => {
  const MiB = 1024 * 1024
  const { baseUrl } = await listen(t, { config: { directMultipartThreshold: 5 * MiB, partSize: 5 * MiB } })
  const stateDir = mkdtempSync(join(tmpdir(), 'direct-state-'))
  t.teardown(() => { rmSync(stateDir, { recursive: true, force: true }) })
  const client = new RenderStoreClient({ baseUrl, directUpload: { thresholdBytes: 6 * MiB, stateDir } })
  const large = await client.uploadRender('direct', 'threshold', videoFile(t, 7 * MiB), { title: 'big one' })
  const small = await client.uploadRender('direct', 'threshold', videoFile(t, MiB))
  t.match(await client.getUploadSession('direct', 'threshold', large.uploadId as string), { mode: 'direct', method: 'MULTIPART' }, 'above: direct multipart')
  t.match(await client.getUploadSession('direct', 'threshold', small.uploadId as string), { mode: 'proxied' }, 'below: through the service')
  t.equal((await client.getRender('direct', 'threshold', large.version)).title, 'big one', 'the title goes with the direct path too')
})
