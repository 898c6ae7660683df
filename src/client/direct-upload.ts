// Direct-to-S3 uploads through an upload session: the bytes go to presigned URLs, never through the service.
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { RenderStoreError } from './errors.js'
import { withRetry, type RetryOptions } from './retry.js'
import { percentageOf, type ProgressCallback } from './upload-body.js'
import type { RenderStoreClient, UploadOptions } from './render-store-client.js'
import type { RenderVersion } from './types.js'

export interface DirectUploadOptions extends UploadOptions {
  /** SHA-256 of the file (hex) for the service to verify; computed from the file when not given, false to skip */
  sha256?: string | false
}

interface PresignedPut {
  url: string
  headers: Record<string, string>
  path: string
  start: number
  size: number
  /** bytes of the file before this piece, for progress across pieces */
  before: number
  total: number
}

async function sha256File (path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** PUTs one piece of a file to a presigned URL (no Authorization header: the URL carries the signature); answers its ETag. */
async function putPiece (piece: PresignedPut, chunkBytes: number, retry: RetryOptions, onProgress?: ProgressCallback): Promise<string> {
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

/** Keys derived from the caller's key of the whole upload, one per write it makes (create, complete, abort). */
function subKey (key: string | undefined, step: string): string | undefined {
  if (key === undefined) return undefined
  const base = key.length + step.length + 1 <= 255 ? key : createHash('sha256').update(key).digest('hex')
  return `${base}.${step}`
}

/** Statuses of complete that say the service refused the object (or the parts reported): the session cannot succeed. */
const REJECTED = new Set([400, 413, 415])

/**
 * Opens an upload session, PUTs the file (whole, or part by part for MULTIPART) to the presigned URLs with progress,
 * then completes it so the service verifies the object and creates the render version.
 *
 * The session is aborted only when it cannot have made a version: the PUT failed before complete was ever sent, or
 * complete answered that the object was rejected (400, 413, 415). After an ambiguous failure (no answer, 5xx, 409)
 * it is left as it is: complete may have worked, and the service expires what nobody completes. With
 * `idempotencyKey`, a later call with the same key finds the same session (and its render, when it completed).
 */
export async function uploadRenderDirect (client: RenderStoreClient, projectId: string, videoId: string, path: string,
  options: DirectUploadOptions, defaults: { retry?: RetryOptions, chunkBytes: number }): Promise<RenderVersion & { replayed: boolean }> {
  const total = (await stat(path)).size
  const sha256 = options.sha256 === false ? undefined : options.sha256 ?? await sha256File(path)
  const call = { signal: options.signal, retry: options.retry }
  const session = await client.createUploadSession(projectId, videoId, { sizeBytes: total, contentType: options.contentType ?? 'video/mp4', sha256 },
    { ...call, idempotencyKey: subKey(options.idempotencyKey, 'session') })
  const complete = { ...call, idempotencyKey: subKey(options.idempotencyKey, 'complete') }
  const retry: RetryOptions = options.retry === false ? { retries: 0 } : { ...defaults.retry, ...options.retry, signal: options.signal }
  // A replayed session was opened by an earlier run with this key: past pending, its bytes are in and complete was sent.
  if (session.replayed) {
    const state = await client.getUploadSession(projectId, videoId, session.uploadId, call)
    if (state.status !== 'pending') return await client.completeUploadSession(projectId, videoId, session.uploadId, undefined, complete)
  }
  let completing = false
  try {
    const headers = session.headers
    if (session.method === 'PUT' && session.url !== undefined) {
      await putPiece({ url: session.url, headers, path, start: 0, size: total, before: 0, total }, defaults.chunkBytes, retry, options.onProgress)
      completing = true
      return await client.completeUploadSession(projectId, videoId, session.uploadId, undefined, complete)
    }
    const partSize = session.partSize ?? total
    const parts: Array<{ partNumber: number, etag: string }> = []
    for (const part of session.parts ?? []) {
      const start = (part.partNumber - 1) * partSize
      const size = Math.min(partSize, total - start)
      const etag = await putPiece({ url: part.url, headers, path, start, size, before: start, total }, defaults.chunkBytes, retry, options.onProgress)
      parts.push({ partNumber: part.partNumber, etag })
    }
    completing = true
    return await client.completeUploadSession(projectId, videoId, session.uploadId, parts, complete)
  } catch (error) {
    const rejected = error instanceof RenderStoreError && REJECTED.has(error.status)
    if ((!completing && !session.replayed) || (completing && rejected)) {
      await client.abortUploadSession(projectId, videoId, session.uploadId, { retry: false, idempotencyKey: subKey(options.idempotencyKey, 'abort') }).catch(() => undefined)
    }
    throw error
  }
}
