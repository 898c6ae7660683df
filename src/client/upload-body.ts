// Request bodies streamed from disk, counting bytes as fetch pulls them, so progress is what went out.
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import type { Readable } from 'node:stream'

/** Told as bytes go out: bytes sent so far, total bytes, and the percentage (0-100, one decimal). */
export type ProgressCallback = (bytesUploaded: number, totalBytes: number, percentage: number) => void

/** What an upload sends: a file on disk (streamed, never read whole) or a stream factory with its exact size. */
export type UploadSource =
  | string
  | { path: string }
  | { size: number, open: () => Readable | AsyncIterable<Uint8Array> }

export interface OpenedSource {
  size: number
  /** a fresh body for one attempt; every retry opens the source again */
  body: (onProgress?: ProgressCallback) => AsyncIterable<Uint8Array>
}

/** Percentage with one decimal; an empty body is complete at once. */
export function percentageOf (bytes: number, total: number): number {
  return total === 0 ? 100 : Math.round((bytes / total) * 1000) / 10
}

/** Resolves the size of a source and gives a factory of counted bodies. */
export async function openSource (source: UploadSource, chunkBytes = 256 * 1024): Promise<OpenedSource> {
  const path = typeof source === 'string' ? source : 'path' in source ? source.path : undefined
  const size = path !== undefined ? (await stat(path)).size : (source as { size: number }).size
  const open = path !== undefined
    ? () => createReadStream(path, { highWaterMark: chunkBytes })
    : (source as { open: () => Readable | AsyncIterable<Uint8Array> }).open
  return {
    size,
    body: (onProgress) => counted(open(), size, onProgress)
  }
}

async function * counted (stream: Readable | AsyncIterable<Uint8Array>, size: number, onProgress?: ProgressCallback): AsyncIterable<Uint8Array> {
  let sent = 0
  for await (const chunk of stream as AsyncIterable<Uint8Array | string>) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    sent += bytes.byteLength
    if (sent > size) throw new Error(`upload source grew beyond its declared ${size} bytes`)
    yield bytes
    onProgress?.(sent, size, percentageOf(sent, size))
  }
  if (sent !== size) throw new Error(`upload source ended after ${sent} of ${size} bytes`)
}
