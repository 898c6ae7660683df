// Headless Chromium for the web page tests: Debian's chromium driven by playwright-core, a fresh profile each time.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'

type Test = { teardown: (fn: () => unknown) => void }

export const CHROMIUM = '/usr/bin/chromium'
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required']

export async function launchBrowser (t: Test): Promise<BrowserContext> {
  const profile = mkdtempSync(join(tmpdir(), 'render-store-chromium-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1200, height: 900 }, locale: 'en-US', timezoneId: 'UTC'
  })
  t.teardown(async () => {
    await context.close()
    rmSync(profile, { recursive: true, force: true })
  })
  return context
}

const fixture = readFileSync(new URL('../fixtures/render.mp4', import.meta.url))

/** The real MP4 fixture followed by an MP4 `free` box: still playable, as big as asked. */
export function playableMp4 (size = fixture.length): Buffer {
  if (size <= fixture.length) return fixture
  const free = Buffer.alloc(size - fixture.length)
  free.writeUInt32BE(free.length, 0)
  free.write('free', 4, 'latin1')
  return Buffer.concat([fixture, free])
}

/** A raw render upload sent in two halves: the second only when `finish()` is called; resolves with the answer. */
export function slowUpload (url: string, body: Buffer, firstBytes: number): { finish: () => void, done: Promise<{ status: number, text: string }> } {
  let finish = (): void => {}
  const done = new Promise<{ status: number, text: string }>((resolve, reject) => {
    const outgoing = request(url, { method: 'POST', headers: { 'content-type': 'video/mp4', 'content-length': String(body.length) } }, (response) => {
      let text = ''
      response.on('data', (chunk: Buffer) => { text += chunk.toString() })
      response.on('end', () => { resolve({ status: response.statusCode ?? 0, text }) })
    })
    outgoing.on('error', reject)
    outgoing.write(body.subarray(0, firstBytes))
    finish = () => { outgoing.end(body.subarray(firstBytes)) }
  })
  return { finish, done }
}

/** A loopback server that closes every connection at once: where a proxy points while "the network is down". */
export async function refusingServer (t: Test): Promise<string> {
  const server = createServer((socket) => { socket.destroy() })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { await new Promise((resolve) => server.close(resolve)) })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** The text of every date-time the page shows (en-US) that the layout split over two lines, e.g. "7:08:04 P" / "M". */
export function splitDateTimes (): { found: number, split: string[] } {
  const pattern = /\d{1,2}\/\d{1,2}\/\d{4},\s\d{1,2}:\d{2}:\d{2}[\s\u202f][AP]M/g
  const walker = document.createTreeWalker(document.getElementById('view')!, NodeFilter.SHOW_TEXT)
  let found = 0
  const split: string[] = []
  for (let node = walker.nextNode() as Text | null; node !== null; node = walker.nextNode() as Text | null) {
    for (const match of node.data.matchAll(pattern)) {
      found++
      const range = document.createRange()
      range.setStart(node, match.index)
      range.setEnd(node, match.index + match[0].length)
      const lines = new Set([...range.getClientRects()].filter((rect) => rect.width > 0).map((rect) => Math.round(rect.top)))
      if (lines.size > 1) split.push(match[0])
    }
  }
  return { found, split }
}
