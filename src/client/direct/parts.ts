// Sending a file's bytes to presigned URLs: one piece per PUT, and the parts of a multipart session `concurrency` at
// a time with their URLs asked for in batches as they are needed.
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { RenderStoreError } from '../errors.js'
import { withRetry, type RetryOptions } from '../retry.js'
import { percentageOf, type ProgressCallback } from '../upload-body.js'
import type { RenderStoreClient } from '../render-store-client.js'
import type { SavedSession, SessionWriter } from './session-file.js'

export interface PresignedPut {
  url: string
  headers: Record<string, string>
  path: string
  start: number
  size: number
  /** bytes of the file before this piece, for progress across pieces */
  before: number
  total: number
}

export async function sha256File (path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** PUTs one piece of a file to a presigned URL (no Authorization header: the URL carries the signature); answers its ETag. */
export async function putPiece (piece: PresignedPut, chunkBytes: number, retry: RetryOptions, onProgress?: ProgressCallback): Promise<string> {
  return await withRetry(async () => {
    async function * body (): AsyncIterable<Uint8Array> {
      let sent = 0
      const end = piece.start + piece.size - 1
      const stream = piece.size === 0 ? [] : createReadStream(piece.path, { start: piece.start, end, highWaterMark: chunkBytes })
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        sent += chunk.byteLength
        yield chunk
        onProgress?.(piece.before + sent, piece.total, percentageOf(piece.before + sent, piece.total))
      }
    }
    let response: Response
    let text: string
    try {
      response = await fetch(piece.url, { method: 'PUT', headers: { ...piece.headers, 'content-length': String(piece.size) }, body: body() as unknown as BodyInit, duplex: 'half', signal: retry.signal } as RequestInit)
      // read inside the try: an answer cut mid-body is as good as none (a PUT of the same bytes may be repeated)
      text = await response.text()
    } catch (error) {
      if (retry.signal?.aborted === true) throw error
      throw new RenderStoreError(`PUT presigned URL: no answer from storage (${(error as Error).message})`, { status: 0, request: 'PUT presigned URL', cause: error })
    }
    if (!response.ok) throw new RenderStoreError(`PUT presigned URL: ${response.status} ${text.slice(0, 200)}`, { status: response.status, request: 'PUT presigned URL' })
    return response.headers.get('etag') ?? ''
  }, retry)
}

export const expectedSize = (saved: { partSize: number, size: number }, partNumber: number): number => Math.min(saved.partSize, saved.size - (partNumber - 1) * saved.partSize)

/** A part URL is asked for again when it has less than this left. */
const URL_MARGIN_MS = 60_000

/** One run over a multipart session's missing parts: what is stored, in flight and signed, and how to report it. */
export interface PartRun {
  client: RenderStoreClient
  saved: SavedSession
  path: string
  call: { signal?: AbortSignal, retry?: RetryOptions | false }
  retry: RetryOptions
  chunkBytes: number
  writer: SessionWriter
  onProgress?: ProgressCallback
  concurrency: number
  /** the parts still to send, in order */
  todo: number[]
  etags: Map<number, string>
  urls: Map<number, { url: string, headers: Record<string, string>, expiresAt: number }>
  inFlight: Map<number, number>
  doneBytes: number
  /** the highest byte count told to onProgress: progress across parallel parts only rises */
  reported: number
  signing?: Promise<void>
  next: number
  failure?: unknown
}

/** Tells onProgress the bytes stored plus those in flight, when more than told before. */
function report (run: PartRun): void {
  if (run.onProgress === undefined) return
  let bytes = run.doneBytes
  for (const sent of run.inFlight.values()) bytes += sent
  if (bytes <= run.reported) return
  run.reported = bytes
  run.onProgress(bytes, run.saved.size, percentageOf(bytes, run.saved.size))
}

/** A live URL for the part: cached, or signed in a batch with the parts after it (one batch request at a time). */
async function urlFor (run: PartRun, partNumber: number): Promise<{ url: string, headers: Record<string, string> }> {
  const { saved, urls, todo } = run
  const batch = Math.min(100, Math.max(16, run.concurrency * 4))
  const stale = (number: number): boolean => (urls.get(number)?.expiresAt ?? 0) - Date.now() <= URL_MARGIN_MS
  for (;;) {
    const cached = urls.get(partNumber)
    if (cached !== undefined && !stale(partNumber)) return cached
    if (run.signing === undefined) {
      const index = todo.indexOf(partNumber)
      const wanted = [partNumber, ...todo.slice(index + 1).filter((number) => !run.etags.has(number) && !run.inFlight.has(number) && stale(number))].slice(0, batch)
      run.signing = run.client.signUploadParts(saved.projectId, saved.videoId, saved.uploadId, wanted, run.call).then((parts) => {
        for (const part of parts) urls.set(part.partNumber, { url: part.url, headers: part.headers, expiresAt: Date.parse(part.expiresAt) })
      }).finally(() => { run.signing = undefined })
    }
    await run.signing
  }
}

/** PUTs one part; a URL S3 refuses as expired (403) is signed again, once or twice. */
async function sendPart (run: PartRun, partNumber: number): Promise<void> {
  const { saved } = run
  const start = (partNumber - 1) * saved.partSize
  const partBytes = expectedSize(saved, partNumber)
  for (let refreshed = 0; ; refreshed++) {
    const { url, headers } = await urlFor(run, partNumber)
    run.inFlight.set(partNumber, 0)
    try {
      const etag = await putPiece({ url, headers, path: run.path, start, size: partBytes, before: 0, total: partBytes }, run.chunkBytes, run.retry, (sent) => { run.inFlight.set(partNumber, sent); report(run) })
      run.etags.set(partNumber, etag)
      run.doneBytes += partBytes
      saved.etags[String(partNumber)] = etag
      void run.writer.save(saved)
      return
    } catch (error) {
      if (!(error instanceof RenderStoreError && error.status === 403 && refreshed < 2)) throw error
      run.urls.delete(partNumber)
    } finally {
      run.inFlight.delete(partNumber)
      report(run)
    }
  }
}

/** Takes the next part to send until none is left or one failed (the first failure is kept in run.failure). */
async function worker (run: PartRun): Promise<void> {
  while (run.failure === undefined && run.next < run.todo.length) {
    const partNumber = run.todo[run.next++]
    try {
      await sendPart(run, partNumber)
    } catch (error) {
      run.failure ??= error
    }
  }
}

/** Sends every part of run.todo, `concurrency` at a time; answers every part's ETag, or throws the first failure. */
export async function sendParts (run: PartRun): Promise<Array<{ partNumber: number, etag: string }>> {
  await Promise.all(Array.from({ length: Math.min(run.concurrency, Math.max(1, run.todo.length)) }, async () => { await worker(run) }))
  if (run.failure !== undefined) throw run.failure
  return Array.from({ length: run.saved.partCount }, (_, index) => ({ partNumber: index + 1, etag: run.etags.get(index + 1) as string }))
}
