// The /ui page's upload button in headless Chromium: tus-js-client's browser build against the service's tus endpoint,
// with a dropped connection (a loopback proxy cuts every connection mid-PATCH and refuses new ones for a while) and a
// page reload between chunks. Each must resume from the server's Upload-Offset and end as a render version whose
// stored bytes hash like the file.
import t from 'tap'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { BrowserContext, Page, Request } from 'playwright-core'
import { listen } from './helper.js'
import { bearer, KEYS, writeKeysFile } from './support/auth.js'
import { startSwitchProxy } from './support/faults/switch-proxy.js'
import { launchBrowser, playableMp4, refusingServer } from './support/ui.js'

const MiB = 1024 * 1024
const CHUNK_BYTES = MiB

type Test = Parameters<Parameters<typeof t.test>[1]>[0]

/** A playable MP4 of `bytes` in a file of its own (a file on disk keeps its mtime, part of tus-js-client's fingerprint). */
function videoFile (t: Test, name: string, bytes: number): { path: string, body: Buffer, sha256: string } {
  const directory = mkdtempSync(join(tmpdir(), 'render-store-ui-upload-'))
  t.teardown(() => { rmSync(directory, { recursive: true, force: true }) })
  const body = playableMp4(bytes)
  const path = join(directory, name)
  writeFileSync(path, body)
  return { path, body, sha256: createHash('sha256').update(body).digest('hex') }
}

/** A page whose uploads go in CHUNK_BYTES PATCHes, with the API key typed in the way a person does (the key box). */
async function uploadPage (context: BrowserContext, url: string, apiKey?: string): Promise<Page> {
  await context.addInitScript((bytes) => { sessionStorage.setItem('render-store.uploadChunkBytes', String(bytes)) }, CHUNK_BYTES)
  const page = await context.newPage()
  await page.goto(url)
  if (apiKey !== undefined) {
    await page.click('#key-box summary')
    await page.fill('#api-key', apiKey)
    await page.press('#api-key', 'Tab')
  }
  await page.waitForSelector('#upload[data-state="idle"]')
  return page
}

type TusRequest = { method: string, offset: number | undefined, phase: string }

/** The tus requests the page sent (and those answered), in order, with their Upload-Offset and the test's phase then. */
function recordTus (page: Page, phase: () => string): { sent: TusRequest[], answered: TusRequest[], location: () => string | undefined } {
  const sent: TusRequest[] = []
  const answered: TusRequest[] = []
  let location: string | undefined
  const tusRequest = (request: Request): TusRequest | undefined => {
    if (!/\/tus(\/|$)/.test(new URL(request.url()).pathname)) return undefined
    const offset = request.headers()['upload-offset']
    return { method: request.method(), offset: offset === undefined ? undefined : Number(offset), phase: phase() }
  }
  page.on('request', (request) => { const entry = tusRequest(request); if (entry !== undefined) sent.push(entry) })
  page.on('requestfinished', (request) => { const entry = tusRequest(request); if (entry !== undefined) answered.push(entry) })
  page.on('response', (response) => {
    if (response.request().method() === 'POST' && response.status() === 201 && /\/tus$/.test(new URL(response.url()).pathname)) location = response.headers().location
  })
  return { sent, answered, location: () => location }
}

/** The server's Upload-Offset, asked directly (not through the page's proxy), once two reads 300 ms apart agree. */
async function settledOffset (baseUrl: string, uploadPath: string, headers: Record<string, string>): Promise<number> {
  let last = -1
  for (let attempt = 0; attempt < 40; attempt++) {
    const answer = await fetch(`${baseUrl}${uploadPath}`, { method: 'HEAD', headers: { 'tus-resumable': '1.0.0', ...headers } })
    if (answer.status !== 200) throw new Error(`HEAD ${uploadPath}: ${answer.status}`)
    const offset = Number(answer.headers.get('upload-offset'))
    if (offset === last) return offset
    last = offset
    await new Promise((resolve) => setTimeout(resolve, 300))
  }
  throw new Error(`the offset of ${uploadPath} never settled (last ${last})`)
}

/** The render version's record and the SHA-256 of the bytes its presigned URL serves. */
async function storedRender (videoUrl: string, version: string, headers: Record<string, string>): Promise<{ sha256: string, sizeBytes: number, downloaded: string }> {
  const answer = await fetch(`${videoUrl}/renders/${version}`, { headers })
  if (answer.status !== 200) throw new Error(`GET render ${version}: ${answer.status} ${await answer.text()}`)
  const render = await answer.json() as { sha256: string, sizeBytes: number, downloadUrl: string }
  const bytes = Buffer.from(await (await fetch(render.downloadUrl)).arrayBuffer())
  return { sha256: render.sha256, sizeBytes: render.sizeBytes, downloaded: createHash('sha256').update(bytes).digest('hex') }
}

t.test('the upload button: the connection drops mid-PATCH, the page retries and resumes from the server offset, with an API key', async (t) => {
  const { baseUrl } = await listen(t, { config: { apiKeysFile: writeKeysFile(t) } })
  const auth = bearer(KEYS.writer)
  const videoUrl = `${baseUrl}/v1/projects/p1/videos/dropped`
  t.equal((await fetch(videoUrl, { method: 'PUT', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ title: 'Dropped' }) })).status, 201)
  const file = videoFile(t, 'dropped.mp4', 8 * MiB)
  const proxy = await startSwitchProxy(baseUrl)
  t.teardown(proxy.close)
  const down = await refusingServer(t)

  const context = await launchBrowser(t)
  let phase = 'before the cut'
  const page = await uploadPage(context, `${proxy.url}/ui#/p/p1/v/dropped`, KEYS.writer)
  const tus = recordTus(page, () => phase)
  await page.setInputFiles('#upload-file', file.path)
  // Cut every connection once 3.5 MiB more went upstream (mid-way through the fourth 1 MiB PATCH), and from then on
  // close each new connection at once: the network is down until the test brings it back.
  const cut = proxy.cutAfter(3.5 * MiB).then(() => { phase = 'network down'; proxy.setTarget(down) })
  await page.click('#upload-start')
  await Promise.race([cut, page.waitForSelector('#upload[data-state="done"], #upload[data-state="failed"]', { timeout: 60000 }).then(async () => {
    throw new Error(`the upload ended before the cut: ${await page.textContent('#upload-text')}`)
  })])
  await page.waitForSelector('#upload[data-state="retrying"]', { timeout: 20000 })
  t.match(await page.textContent('#upload-text'), /the connection failed; resuming from the server's offset/)

  const uploadPath = tus.location()
  t.match(uploadPath, /^\/v1\/projects\/p1\/videos\/dropped\/tus\/[^/]+$/, 'the creation answered a Location')
  const offset = await settledOffset(baseUrl, uploadPath!, auth)
  t.ok(offset >= 3 * CHUNK_BYTES && offset < file.body.length, `the server kept ${offset} bytes (${(offset / MiB).toFixed(2)} MiB) of ${file.body.length}`)
  // (Playwright may report the fourth PATCH after the cut already happened: its phase is either.)
  const sentBefore = tus.sent.filter((request) => request.method === 'PATCH' && request.phase !== 'resumed')
  t.same(sentBefore.map((request) => request.offset), [0, 1, 2, 3].map((n) => n * CHUNK_BYTES), 'four 1 MiB PATCHes went out before the cut')

  phase = 'resumed'
  const upstreamAtResume = proxy.upstreamBytes()
  proxy.setTarget(baseUrl)
  await page.waitForSelector('#upload[data-state="done"]', { timeout: 90000 })
  const resent = proxy.upstreamBytes() - upstreamAtResume

  const resumed = tus.sent.filter((request) => request.phase === 'resumed')
  t.equal(resumed.filter((request) => request.method === 'POST').length, 0, 'no new upload was created')
  t.equal(resumed[0]?.method, 'HEAD', 'the page asked the server for its offset first')
  const patches = resumed.filter((request) => request.method === 'PATCH')
  t.equal(patches[0]?.offset, offset, `the first PATCH after the drop starts at the server's offset ${offset}, not 0`)
  t.ok(resent >= file.body.length - offset && resent < file.body.length - offset + 256 * 1024,
    `${resent} bytes went upstream after the drop: the ${file.body.length - offset} the server lacked plus requests' heads, not the whole ${file.body.length}`)

  const version = await page.getAttribute('#upload', 'data-version')
  t.equal(version, '1')
  t.match(await page.textContent('#upload-text'), /stored dropped\.mp4 \(8\.0 MiB\) as render v1/)
  const stored = await storedRender(videoUrl, version!, auth)
  t.same(stored, { sha256: file.sha256, sizeBytes: file.body.length, downloaded: file.sha256 }, 'the render version holds the file\'s bytes')
  await page.waitForSelector('#renders .render[data-version="1"]')
  t.equal(await page.getAttribute('#renders .render[data-version="1"]', 'data-version'), '1', 'the page lists the new render version')
  t.same(await page.evaluate(() => Object.keys(localStorage).filter((key) => key.startsWith('tus::'))), [], 'the stored upload URL is gone once done')
})

t.test('the upload button: a reload between chunks, then the same file again resumes the stored upload at the server offset', async (t) => {
  const { baseUrl } = await listen(t)
  const videoUrl = `${baseUrl}/v1/projects/demo/videos/reloaded`
  t.equal((await fetch(videoUrl, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ title: 'Reloaded' }) })).status, 201)
  const file = videoFile(t, 'reloaded.mp4', 6 * MiB)

  const context = await launchBrowser(t)
  let phase = 'first page'
  const page = await uploadPage(context, `${baseUrl}/ui#/p/demo/v/reloaded`)
  const tus = recordTus(page, () => phase)
  // From the fourth PATCH on, every PATCH fails as a dropped connection would (HEADs pass): three 1 MiB chunks are on
  // the server, the page keeps retrying, and then it is reloaded.
  let patches = 0
  let blocking: () => void = () => {}
  const blocked = new Promise<void>((resolve) => { blocking = resolve })
  await page.route('**/tus/*', async (route) => {
    if (route.request().method() === 'PATCH' && ++patches >= 4) {
      await route.abort('connectionreset')
      return blocking()
    }
    await route.continue()
  })
  await page.setInputFiles('#upload-file', file.path)
  await page.click('#upload-start')
  await blocked
  await page.waitForSelector('#upload[data-state="retrying"]')
  t.equal(await settledOffset(baseUrl, tus.location()!, {}), 3 * CHUNK_BYTES, 'three chunks on the server')
  t.equal((await page.evaluate(() => Object.keys(localStorage).filter((key) => key.startsWith('tus::')))).length, 1, 'the page stored the upload URL')

  phase = 'after the reload'
  await page.reload()
  await page.unrouteAll({ behavior: 'wait' })
  await page.waitForSelector('#upload[data-state="idle"]')
  t.equal(await settledOffset(baseUrl, tus.location()!, {}), 3 * CHUNK_BYTES, 'still three chunks on the server')
  await page.setInputFiles('#upload-file', file.path)
  await page.click('#upload-start')
  await page.waitForSelector('#upload[data-state="done"]', { timeout: 60000 })
  t.equal(await page.getAttribute('#upload', 'data-resumed'), 'true', 'the page said it resumed an earlier upload')
  // Answered requests only: the first page's failed PATCHes may be reported late.
  const after = tus.answered.filter((request) => request.phase === 'after the reload')
  t.same(after.map((request) => [request.method, request.offset]), [['HEAD', undefined], ...[3, 4, 5].map((n) => ['PATCH', n * CHUNK_BYTES])],
    'no new upload: HEAD, then only the three chunks the server lacked, from its offset')
  const stored = await storedRender(videoUrl, '1', {})
  t.same(stored, { sha256: file.sha256, sizeBytes: file.body.length, downloaded: file.sha256 }, 'the render version holds the file\'s bytes')
})

t.test('the upload button with a read-only key: the page shows the 403 and nothing is stored', async (t) => {
  const { baseUrl } = await listen(t, { config: { apiKeysFile: writeKeysFile(t) } })
  const videoUrl = `${baseUrl}/v1/projects/p1/videos/refused`
  t.equal((await fetch(videoUrl, { method: 'PUT', headers: { ...bearer(KEYS.writer), 'content-type': 'application/json' }, body: JSON.stringify({ title: 'Refused' }) })).status, 201)
  const file = videoFile(t, 'refused.mp4', MiB)
  const context = await launchBrowser(t)
  const page = await uploadPage(context, `${baseUrl}/ui#/p/p1/v/refused`, KEYS.reader)
  const tus = recordTus(page, () => 'refused')
  await page.setInputFiles('#upload-file', file.path)
  await page.click('#upload-start')
  await page.waitForSelector('#upload[data-state="failed"]', { timeout: 30000 })
  t.match(await page.textContent('#upload-text'), /^upload refused at 0 B of 1\.0 MiB \(0%\): 403: The API key "reader" does not have the write scope\.$/, 'the problem detail, not a stack')
  t.same(tus.sent.map((request) => request.method), ['POST'], 'a refusal is not retried')
  t.equal(await page.textContent('#upload-start'), 'Resume')
  const renders = await fetch(`${videoUrl}/renders`, { headers: bearer(KEYS.writer) })
  t.same((await renders.json() as { items: unknown[] }).items, [], 'no render version')
})

t.test('the upload button: Pause stops sending, Resume continues from the server offset', async (t) => {
  const { baseUrl } = await listen(t)
  const videoUrl = `${baseUrl}/v1/projects/demo/videos/paused`
  t.equal((await fetch(videoUrl, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ title: 'Paused' }) })).status, 201)
  const file = videoFile(t, 'paused.mp4', 4 * MiB)
  const context = await launchBrowser(t)
  let phase = 'before the pause'
  const page = await uploadPage(context, `${baseUrl}/ui#/p/demo/v/paused`)
  const tus = recordTus(page, () => phase)
  // The third PATCH waits at the gate: two chunks are on the server when the person clicks Pause.
  let patches = 0
  let arrived: () => void = () => {}
  const third = new Promise<void>((resolve) => { arrived = resolve })
  let open: () => void = () => {}
  const gate = new Promise<void>((resolve) => { open = resolve })
  await page.route('**/tus/*', async (route) => {
    if (route.request().method() === 'PATCH' && ++patches === 3) {
      arrived()
      await gate
      return await route.abort('connectionreset').catch(() => {})
    }
    await route.continue()
  })
  await page.setInputFiles('#upload-file', file.path)
  await page.click('#upload-start')
  await third
  await page.click('#upload-pause')
  t.equal(await page.getAttribute('#upload', 'data-state'), 'paused')
  t.match(await page.textContent('#upload-text'), /^paused at 2\.0 MiB of 4\.0 MiB \(50%\)$/)
  t.equal(await page.textContent('#upload-start'), 'Resume')
  open()
  await page.unrouteAll({ behavior: 'wait' })
  phase = 'paused'
  await new Promise((resolve) => setTimeout(resolve, 1500))
  t.same(tus.sent.filter((request) => request.phase === 'paused'), [], 'nothing sent while paused')
  t.equal(await settledOffset(baseUrl, tus.location()!, {}), 2 * CHUNK_BYTES, 'two chunks on the server')

  phase = 'resumed'
  await page.click('#upload-start')
  await page.waitForSelector('#upload[data-state="done"]', { timeout: 60000 })
  const resumed = tus.answered.filter((request) => request.phase === 'resumed')
  t.same(resumed.map((request) => [request.method, request.offset]), [['HEAD', undefined], ['PATCH', 2 * CHUNK_BYTES], ['PATCH', 3 * CHUNK_BYTES]],
    'Resume asks the offset and sends only the two chunks the server lacked')
  const stored = await storedRender(videoUrl, '1', {})
  t.same(stored, { sha256: file.sha256, sizeBytes: file.body.length, downloaded: file.sha256 }, 'the render version holds the file\'s bytes')
})
