import t from 'tap'
import { existsSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { listen } from './helper.js'
import { CHROMIUM, launchBrowser, playableMp4, slowUpload } from './support/ui.js'

const SCREENSHOT = process.env.UI_SCREENSHOT ?? join(tmpdir(), 'render-store-ui.png')

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

t.test('in headless Chromium: projects, a render playing through its presigned URL, a code diff, live upload progress, a screenshot', async (t) => {
  t.ok(existsSync(CHROMIUM), `${CHROMIUM} is installed (.ci/run installs Debian's chromium)`)
  const { baseUrl } = await listen(t)
  const video = `${baseUrl}/v1/projects/demo/videos/intro`
  const outro = `${baseUrl}/v1/projects/demo/videos/outro`
  t.equal((await fetch(outro, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ title: 'Outro' }) })).status, 201, 'created before intro')
  const put = await fetch(video, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ title: 'Intro scene', tags: ['ui-test'] }) })
  t.equal(put.status, 201)
  const render = await fetch(`${video}/renders`, { method: 'POST', headers: { 'content-type': 'video/mp4' }, body: playableMp4() })
  t.equal(render.status, 201, await render.clone().text())
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
  await page.goto(`${baseUrl}/ui`)
  await page.fill('#project-input', 'demo')
  await page.click('#open-project')
  await page.waitForSelector('#videos a.video-link')
  t.same(await page.$$eval('#videos a.video-link', (links) => links.map((link) => link.textContent)), ['outro', 'intro'], 'most recently updated first, as the Updated column says')
  t.match(await page.textContent('#videos'), /Intro scene/)

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
  t.same(pageErrors, [], 'no script errors on the page')
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
