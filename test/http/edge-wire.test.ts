// Refusals of a body the client is still sending (413, 415) reach real fetch (undici) clients as answers, not as
// EPIPE or ECONNRESET. The service answers, half-closes and reads and discards a bounded amount of the rest before
// closing (a lingering close, as nginx does), so no RST destroys the answer while the client still writes.
// The service runs as its own process: the race only shows when client and server do not share an event loop.
import t from 'tap'
import { Readable } from 'node:stream'
import { startServiceProcess } from '../support/service-process.js'
import { RenderStoreClient, RenderStoreError } from '../../src/client/index.js'

const TRIES = 50
const SIZE = 8 * 1024 * 1024
const CHUNK = 16 * 1024
const MP4_HEAD = Buffer.from('\x00\x00\x00\x18ftypisom', 'latin1')
const whole = Buffer.alloc(SIZE, 7)
MP4_HEAD.copy(whole)

/** The body as a stream of small writes, as a client reading a file sends it. */
function streamed (): ReadableStream<Uint8Array> {
  let sent = 0
  return new ReadableStream({
    pull (controller) {
      if (sent >= SIZE) { controller.close(); return }
      controller.enqueue(new Uint8Array(whole.subarray(sent, sent + CHUNK)))
      sent += CHUNK
    }
  })
}

interface Tally { answers: Record<string, number>, networkErrors: number, errorCodes: string[] }

async function tally (send: () => Promise<Response>): Promise<Tally> {
  const result: Tally = { answers: {}, networkErrors: 0, errorCodes: [] }
  for (let i = 0; i < TRIES; i++) {
    try {
      const response = await send()
      const type = response.headers.get('content-type') ?? ''
      await response.arrayBuffer()
      const key = `${response.status} ${type.startsWith('application/problem+json') ? 'problem+json' : type}`
      result.answers[key] = (result.answers[key] ?? 0) + 1
    } catch (error) {
      const cause = (error as { cause?: { code?: string, message?: string } }).cause
      result.networkErrors++
      const code = cause?.code ?? cause?.message ?? String(error)
      if (!result.errorCodes.includes(code)) result.errorCodes.push(code)
    }
  }
  return result
}

t.test('oversized and unsupported bodies: 0 of 50 end as a network error in fetch', async (t) => {
  const service = await startServiceProcess(t, { MAX_VIDEO_BYTES: String(1024 * 1024), MAX_CODE_BYTES: '16384' })
  const video = `${service.baseUrl}/v1/projects/p1/videos/wire/renders`
  const code = `${service.baseUrl}/v1/projects/p1/videos/wire/code`
  const post = async (url: string, type: string, body: 'stream' | 'declared stream' | 'buffer'): Promise<Response> => await fetch(url, {
    method: 'POST',
    headers: { 'content-type': type, ...(body === 'declared stream' ? { 'content-length': String(SIZE) } : {}) },
    body: body === 'buffer' ? whole : streamed(),
    duplex: 'half'
  } as RequestInit)

  const cases: Array<[string, string, string, 'stream' | 'declared stream' | 'buffer', string]> = [
    ['a video whose declared length is over the maximum, sent in small writes', video, 'video/mp4', 'declared stream', '413 problem+json'],
    ['a video over the maximum in one buffer', video, 'video/mp4', 'buffer', '413 problem+json'],
    ['a chunked video that grows over the maximum', video, 'video/mp4', 'stream', '413 problem+json'],
    ['a raw code body over the maximum (declared)', code, 'text/x-python', 'declared stream', '413 problem+json'],
    ['a raw code body over the maximum (chunked)', code, 'text/x-python', 'stream', '413 problem+json'],
    ['a JSON code body over the maximum', code, 'application/json', 'buffer', '413 problem+json'],
    ['a video body of an unsupported type', video, 'image/png', 'declared stream', '415 problem+json']
  ]
  for (const [name, url, type, body, expected] of cases) {
    const result = await tally(async () => await post(url, type, body))
    t.same(result, { answers: { [expected]: TRIES }, networkErrors: 0, errorCodes: [] }, name)
  }
})

t.test('the project client sees 413 for an upload over the maximum instead of retrying into a network error', async (t) => {
  const service = await startServiceProcess(t, { MAX_VIDEO_BYTES: String(1024 * 1024) })
  const client = new RenderStoreClient({ baseUrl: service.baseUrl, retry: { retries: 2, initialDelayMs: 10, maxDelayMs: 20 } })
  for (let i = 0; i < 10; i++) {
    const error = await client.uploadRender('p1', 'wire', { size: SIZE, open: () => Readable.from([whole]) }).then(() => undefined, (error: unknown) => error)
    t.ok(error instanceof RenderStoreError, `try ${i + 1}: a RenderStoreError`)
    t.equal((error as RenderStoreError).status, 413, `try ${i + 1}: 413 (${String(error)})`)
  }
})
