import t from 'tap'
import { existsSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { listen } from './helper.js'
import { CHROMIUM, launchBrowser, playableMp4, slowUpload, splitDateTimes } from './support/ui.js'

const SCREENSHOT = process.env.UI_SCREENSHOT ?? join(tmpdir(), 'render-store-ui.png')

/** Narrows the page from 1200 to 360 px in 40 px steps; the date-times split over two lines at any of them. */
async function datesOnOneLine (page: Page): Promise<{ widths: number, found: number, split: string[] }> {
  const split = new Set<string>()
  let found = 0
  let widths = 0
  for (let width = 1200; width >= 360; width -= 40, widths++) {
    await page.setViewportSize({ width, height: 900 })
    const seen = await page.evaluate(splitDateTimes)
    found = Math.max(found, seen.found)
    for (const text of seen.split) split.add(`${text} at ${width} px`)
  }
  await page.setViewportSize({ width: 1200, height: 900 })
  if (found === 0) split.add('no date-time found on the page: nothing was checked')
  return { widths, found, split: [...split] }
}

t.test('GET /ui serves the page and its modules with a strict content security policy; unknown assets are 404', async (t) => {
  const { app } = await listen(t)
  const page = await app.inject({ method: 'GET', url: '/ui' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.headers['content-security-policy'], /script-src 'self'/)
  t.match(page.body, /<script type="module" src="\/ui\/app\.js">/)
  const script = await app.inject({ method: 'GET', url: '/ui/app.js' })
  t.equal(script.statusCode, 200)
  t.match(script.headers['content-type'], /^text\/javascript/)
  t.equal((await app.inject({ method: 'GET', url: '/ui/p/demo/v/intro' })).headers['content-type'], 'text/html; charset=utf-8', 'deep links land on the page')
  t.equal((await app.inject({ method: 'GET', url: '/ui/missing.js' })).statusCode, 404)
  t.equal((await app.inject({ method: 'GET', url: '/ui/..%2Fpackage.json' })).statusCode, 404, 'nothing outside ui/')
})

t.test('GET /ui/favicon.svg is an SVG the page links; the tus client is served from node_modules as script', async (t) => {
  const { app } = await listen(t)
  const page = await app.inject({ method: 'GET', url: '/ui' })
  t.match(page.body, /<link rel="icon" href="\/ui\/favicon\.svg" type="image\/svg\+xml">/)
  const icon = await app.inject({ method: 'GET', url: '/ui/favicon.svg' })
  t.equal(icon.statusCode, 200)
  t.equal(icon.headers['content-type'], 'image/svg+xml')
  t.match(icon.body, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/)
  const tus = await app.inject({ method: 'GET', url: '/ui/vendor/tus.min.js' })
  t.equal(tus.statusCode, 200)
  t.match(tus.headers['content-type'], /^text\/javascript/)
  t.match(tus.headers['content-security-policy'], /script-src 'self';/, 'the same strict policy: no CDN, no inline script')
  t.ok(tus.body.length > 50000, `tus-js-client's browser build (${tus.body.length} bytes)`)
  t.equal((await app.inject({ method: 'GET', url: '/ui/vendor/other.js' })).statusCode, 404, 'only the listed vendor files')
})

t.test('in headless Chromium: projects, a render playing through its presigned URL, its scene clips, a code diff, live upload progress, a screenshot', async (t) => {
  t.ok(existsSync(CHROMIUM), `${CHROMIUM} is installed (.ci/run installs Debian's chromium)`)
  const { baseUrl } = await listen(t)
  const video = `${baseUrl}/v1/projects/demo/videos/intro`
  const outro = `${baseUrl}/v1/projects/demo/videos/outro`
  t.equal((await fetch(outro, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ title: 'Outro' }) })).status, 201, 'created before intro')
  const put = await fetch(video, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ title: 'Intro scene', tags: ['ui-test'] }) })
  t.equal(put.status, 201)
  const render = await fetch(`${video}/renders`, { method: 'POST', headers: { 'content-type': 'video/mp4' }, body: playableMp4() })
  t.equal(render.status, 201, await render.clone().text())
  for (const scene of [2, 1]) {
    const clip = await fetch(`${video}/renders/1/scenes/${scene}`, { method: 'PUT', headers: { 'content-type': 'video/mp4' }, body: playableMp4(9000 + scene * 1024) })
    t.equal(clip.status, 201, `scene ${scene}: ${await clip.clone().text()}`)
  }
  for (const content of ['from manim import *\n\nclass Intro(Scene):\n    def construct(self):\n        self.play(Write(Text("Hello")))\n',
    'from manim import *\n\nclass Intro(Scene):\n    def construct(self):\n        self.play(Write(Text("Hello, world")))\n        self.wait(1)\n']) {
    const code = await fetch(`${video}/code`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ content, message: 'ui test' }) })
    t.equal(code.status, 201)
  }

  // outro: created first, updated last. Under the "Updated" heading it comes first (by creation it would be second).
  t.equal((await fetch(outro, { method: 'PATCH', headers: { 'content-type': 'application/json', 'if-match': '*' }, body: JSON.stringify({ description: 'updated last' }) })).status, 200)

  const context = await launchBrowser(t)
  const page = await context.newPage()
  const pageErrors: string[] = []
  page.on('pageerror', (error) => pageErrors.push(error.message))
  const failed: string[] = []
  page.on('response', (response) => { if (response.status() >= 400) failed.push(`${response.status()} ${response.url()}`) })
  page.on('requestfailed', (request) => { if (request.failure()?.errorText !== 'net::ERR_ABORTED') failed.push(`${request.failure()?.errorText} ${request.url()}`) })
  page.on('console', (message) => { if (message.type() === 'error') failed.push(`console: ${message.text()}`) })
  await page.goto(`${baseUrl}/ui`)
  const icon = await page.evaluate(async () => {
    const link = document.querySelector<HTMLLinkElement>('link[rel="icon"]')
    if (link === null) return null
    const answer = await fetch(link.href)
    return { href: link.getAttribute('href'), status: answer.status, type: answer.headers.get('content-type') }
  })
  t.same(icon, { href: '/ui/favicon.svg', status: 200, type: 'image/svg+xml' }, 'the page links a favicon the service serves')
  await page.fill('#project-input', 'demo')
  await page.click('#open-project')
  await page.waitForSelector('#videos a.video-link')
  t.same(await page.$$eval('#videos a.video-link', (links) => links.map((link) => link.textContent)), ['outro', 'intro'], 'most recently updated first, as the Updated column says')
  t.match(await page.textContent('#videos'), /Intro scene/)
  const projectWidths = await datesOnOneLine(page)
  t.same(projectWidths.split, [], `no date-time split over two lines at any of ${projectWidths.widths} widths (project table, ${projectWidths.found} shown)`)

  await page.click('#videos a.video-link:text-is("intro")')
  await page.waitForSelector('#renders video')
  t.match(await page.getAttribute('#renders video', 'src'), /X-Amz-Signature=/, 'the video plays from a presigned URL')
  await page.evaluate(async () => { await document.querySelector<HTMLVideoElement>('#renders video')!.play() })
  await page.waitForFunction(() => {
    const element = document.querySelector<HTMLVideoElement>('#renders video')
    return element !== null && element.readyState >= 2 && element.currentTime > 0
  }, undefined, { timeout: 20000 })
  const playback = await page.evaluate(() => {
    const element = document.querySelector<HTMLVideoElement>('#renders video')!
    return { readyState: element.readyState, width: element.videoWidth, height: element.videoHeight, duration: element.duration }
  })
  t.ok(playback.readyState >= 2, `readyState ${playback.readyState}`)
  t.same([playback.width, playback.height], [160, 120], 'the decoder saw the fixture frames')

  const scenes = await page.$$eval('#renders .render[data-version="1"] .scene', (items) => items.map((item) => ({
    scene: item.getAttribute('data-scene'), label: item.querySelector('strong')?.textContent, src: item.querySelector('video')?.getAttribute('src') ?? ''
  })))
  t.same(scenes.map(({ scene, label }) => [scene, label]), [['1', 'scene 1'], ['2', 'scene 2']], 'both scene clips of v1, in scene order')
  t.ok(scenes.every(({ src }) => /scenes.*X-Amz-Signature=/.test(src)), 'each clip plays from its own presigned URL')
  await page.waitForFunction(() => [...document.querySelectorAll<HTMLVideoElement>('.scene video')].every((clip) => clip.readyState >= 1 && clip.videoWidth === 160), undefined, { timeout: 20000 })
  t.match(await page.textContent('#renders .render[data-version="1"] figcaption'), /2 scenes/)

  await page.waitForSelector('#diff span.add')
  t.same(await page.$$eval('#diff span.add', (spans) => spans.map((span) => span.textContent)), ['+        self.play(Write(Text("Hello, world")))', '+        self.wait(1)'])
  t.same(await page.$$eval('#diff span.del', (spans) => spans.map((span) => span.textContent)), ['-        self.play(Write(Text("Hello")))'])
  t.equal(await page.inputValue('#diff-from'), '1')
  t.equal(await page.inputValue('#diff-to'), '2')
  await page.waitForSelector('#progress[data-status="completed"]')

  await page.waitForFunction(() => document.querySelector<HTMLVideoElement>('#renders video')!.currentTime > 0.5, undefined, { timeout: 20000 })
  await page.evaluate(() => { document.querySelector<HTMLVideoElement>('#renders video')!.pause() })
  const png = await page.screenshot({ fullPage: true })
  writeFileSync(SCREENSHOT, png)
  t.ok(png.length > 20000, `screenshot is ${png.length} bytes (${SCREENSHOT})`)
  const colours = await page.evaluate(async (dataUrl) => {
    const image = new Image()
    image.src = dataUrl
    await image.decode()
    const canvas = document.createElement('canvas')
    canvas.width = image.width
    canvas.height = image.height
    const context = canvas.getContext('2d')!
    context.drawImage(image, 0, 0)
    const pixels = context.getImageData(0, 0, image.width, image.height).data
    const distinct = new Set<number>()
    for (let i = 0; i < pixels.length; i += 4) distinct.add((pixels[i] << 16) | (pixels[i + 1] << 8) | pixels[i + 2])
    return { distinct: distinct.size, width: image.width, height: image.height }
  }, `data:image/png;base64,${png.toString('base64')}`)
  t.ok(colours.distinct > 200, `${colours.distinct} distinct colours: text, diff colours and a video frame, not a blank page`)
  t.ok(colours.width >= 1200 && colours.height >= 900)
  const videoWidths = await datesOnOneLine(page)
  t.same(videoWidths.split, [], `no date-time split over two lines at any of ${videoWidths.widths} widths (video page, ${videoWidths.found} shown)`)
  t.same(pageErrors, [], 'no script errors on the page')
  t.same(failed, [], 'no failed request, 4xx/5xx answer or console error (favicon included)')
})

t.test('in headless Chromium: the video page follows an upload live over Server-Sent Events', async (t) => {
  const { baseUrl } = await listen(t)
  const video = `${baseUrl}/v1/projects/demo/videos/live`
  const body = playableMp4(2 * 1024 * 1024)
  const upload = slowUpload(`${video}/renders`, body, 512 * 1024)
  let progress: { status: string, bytesUploaded: number } | undefined
  for (let attempt = 0; attempt < 100 && (progress === undefined || progress.bytesUploaded === 0); attempt++) {
    const answer = await fetch(`${video}/progress`)
    if (answer.status === 200) progress = await answer.json() as { status: string, bytesUploaded: number }
    else await new Promise((resolve) => setTimeout(resolve, 100))
    if (progress?.bytesUploaded === 0) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.equal(progress?.status, 'uploading', 'the upload is under way before the page opens')

  const context = await launchBrowser(t)
  const page = await context.newPage()
  await page.goto(`${baseUrl}/ui#/p/demo/v/live`)
  await page.waitForSelector('#progress[data-status="uploading"]')
  const during = await page.evaluate(() => document.querySelector<HTMLProgressElement>('#progress progress')!.value)
  t.ok(during > 0 && during < 100, `the bar shows part of the upload (${during}%)`)
  upload.finish()
  const answer = await upload.done
  t.equal(answer.status, 201, answer.text)
  await page.waitForSelector('#progress[data-status="completed"]', { timeout: 20000 })
  t.equal(await page.evaluate(() => document.querySelector<HTMLProgressElement>('#progress progress')!.value), 100)
  t.match(await page.textContent('#progress-text'), /completed: 2\.0 MiB of 2\.0 MiB \(100%\)/)
})
