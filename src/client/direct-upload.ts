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
    try {
      response = await fetch(piece.url, { method: 'PUT', headers: { ...piece.headers, 'content-length': String(piece.size) }, body: body() as unknown as BodyInit, duplex: 'half', signal: retry.signal } as RequestInit)
    } catch (error) {
      if (retry.signal?.aborted === true) throw error
      throw new RenderStoreError(`PUT presigned URL: no answer from storage (${(error as Error).message})`, { status: 0, request: 'PUT presigned URL', cause: error })
    }
    const text = await response.text()
    if (!response.ok) throw new RenderStoreError(`PUT presigned URL: ${response.status} ${text.slice(0, 200)}`, { status: response.status, request: 'PUT presigned URL' })
    return response.headers.get('etag') ?? ''
  }, retry)
}

/**
 * Opens an upload session, PUTs the file (whole, or part by part for MULTIPART) to the presigned URLs with progress,
 * then completes it so the service verifies the object and creates the render version. Aborts the session on failure.
 */
export async function uploadRenderDirect (client: RenderStoreClient, projectId: string, videoId: string, path: string,
  options: DirectUploadOptions, defaults: { retry?: RetryOptions, chunkBytes: number }): Promise<RenderVersion> {
  const total = (await stat(path)).size
  const sha256 = options.sha256 === false ? undefined : options.sha256 ?? await sha256File(path)
  const call = { signal: options.signal, retry: options.retry }
  const session = await client.createUploadSession(projectId, videoId, { sizeBytes: total, contentType: options.contentType ?? 'video/mp4', sha256 }, call)
  const retry: RetryOptions = options.retry === false ? { retries: 0 } : { ...defaults.retry, ...options.retry, signal: options.signal }
  try {
    const headers = session.headers
    if (session.method === 'PUT' && session.url !== undefined) {
      await putPiece({ url: session.url, headers, path, start: 0, size: total, before: 0, total }, defaults.chunkBytes, retry, options.onProgress)
      return await client.completeUploadSession(projectId, videoId, session.uploadId, undefined, call)
    }
    const partSize = session.partSize ?? total
    const parts: Array<{ partNumber: number, etag: string }> = []
    for (const part of session.parts ?? []) {
      const start = (part.partNumber - 1) * partSize
      const size = Math.min(partSize, total - start)
      const etag = await putPiece({ url: part.url, headers, path, start, size, before: start, total }, defaults.chunkBytes, retry, options.onProgress)
      parts.push({ partNumber: part.partNumber, etag })
    }
    return await client.completeUploadSession(projectId, videoId, session.uploadId, parts, call)
  } catch (error) {
    await client.abortUploadSession(projectId, videoId, session.uploadId, { retry: false }).catch(() => undefined)
    throw error
  }
}
