// Direct-to-S3 uploads through an upload session: the bytes go to presigned URLs, never through the service.
import { createHash } from 'node:crypto'
import { stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { RenderStoreError } from '../errors.js'
import type { RetryOptions } from '../retry.js'
import type { RenderStoreClient, UploadOptions } from '../render-store-client.js'
import type { RenderVersion } from '../types.js'
import { expectedSize, putPiece, sendParts, sha256File, type PartRun } from './parts.js'
import { defaultStateDir, readSavedSession, sessionFileFor, sessionWriter, type SavedSession, type SessionWriter, type WarningCallback } from './session-file.js'

export { defaultStateDir, readSavedSession, sessionFileFor, type SavedSession, type WarningCallback } from './session-file.js'

export interface DirectUploadOptions extends UploadOptions {
  /** SHA-256 of the file (hex) for the service to verify; computed from the file when not given, false to skip */
  sha256?: string | false
  /** kept on the render version */
  title?: string
  durationSeconds?: number
  resolution?: string
  /** multipart: parts PUT at once (default: the client's directUpload.concurrency, else 4) */
  concurrency?: number
  /**
   * multipart: the JSON file the session is saved to while it runs, so a later run (a new process) resumes it instead
   * of starting again. Default: a file named after service, project, video and file in the client's
   * directUpload.stateDir (default ~/.cache/render-store/uploads); false: none. Removed once the upload completed.
   */
  sessionFile?: string | false
  /** multipart: resume the session saved in sessionFile when there is one for this file (default true) */
  resume?: boolean
  /** told once the session is known: whether it resumed a saved one, and how many parts were already stored */
  onSession?: (info: { uploadId: string, resumed: boolean, partCount: number, partsStored: number, sessionFile?: string }) => void
  /** told what went wrong without failing the upload: a session file not saved, a failed session not aborted */
  onWarning?: WarningCallback
}

/** How the client's direct uploads behave (RenderStoreClientOptions.directUpload). */
export interface DirectUploadDefaults {
  /** uploadRender sends files of at least this many bytes through the direct path (default: never) */
  thresholdBytes?: number
  /** parts PUT at once (default 4) */
  concurrency?: number
  /** where session files go (default ~/.cache/render-store/uploads, or $XDG_CACHE_HOME/render-store/uploads) */
  stateDir?: string
  /** files from this size are hashed while their parts go out rather than before (default 5 MiB) */
  multipartFromBytes?: number
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
 * Single PUT (below the service's DIRECT_MULTIPART_THRESHOLD): the session is aborted only when it cannot have made a
 * version: the PUT failed before complete was ever sent, or complete answered that the object was rejected (400, 413,
 * 415). Multipart: parts go `concurrency` at a time with URLs asked for as needed; the session is saved to a small JSON
 * file, and a failure (a network drop, a killed process) leaves it open: the next call for the same file resumes it,
 * asking the service which parts S3 already holds and sending only the rest. Only a rejected object aborts it.
 * With `idempotencyKey`, a later call with the same key finds the same session (and its render, when it completed).
 */
export async function uploadRenderDirect (client: RenderStoreClient, projectId: string, videoId: string, path: string,
  options: DirectUploadOptions, defaults: { retry?: RetryOptions, chunkBytes: number, direct?: DirectUploadDefaults }): Promise<RenderVersion & { replayed: boolean }> {
  const file = await stat(path)
  const total = file.size
  const call = { signal: options.signal, retry: options.retry }
  const retry: RetryOptions = options.retry === false ? { retries: 0 } : { ...defaults.retry, ...options.retry, signal: options.signal }
  const sessionPath = options.sessionFile === false ? undefined : options.sessionFile ?? sessionFileFor(defaults.direct?.stateDir ?? defaultStateDir(), client.baseUrl, projectId, videoId, path)
  const writer = sessionWriter(sessionPath, options.onWarning)
  const contentType = options.contentType ?? 'video/mp4'

  // A saved session of this very file (same size and modification time) is resumed.
  if (options.resume !== false && sessionPath !== undefined) {
    const saved = await readSavedSession(sessionPath)
    if (saved !== undefined && saved.baseUrl === client.baseUrl && saved.projectId === projectId && saved.videoId === videoId &&
      saved.file === resolve(path) && saved.size === total && saved.mtimeMs === file.mtimeMs) {
      const resumed = await resumeSaved(client, saved, path, options, defaults, retry, writer)
      if (resumed !== undefined) return resumed
    }
    // Another file's, an ended session's, or unreadable: it is replaced below.
  }

  // Multipart files are hashed while their parts go out (see uploadParts); a single PUT's up front.
  const multipartLikely = total >= (defaults.direct?.multipartFromBytes ?? 5 * 1024 * 1024)
  const sha256 = options.sha256 === false ? undefined : options.sha256 ?? (multipartLikely ? undefined : await sha256File(path))
  const details = { ...(options.title === undefined ? {} : { title: options.title }), ...(options.durationSeconds === undefined ? {} : { durationSeconds: options.durationSeconds }), ...(options.resolution === undefined ? {} : { resolution: options.resolution }) }
  const session = await client.createUploadSession(projectId, videoId, { sizeBytes: total, contentType, sha256, ...details },
    { ...call, idempotencyKey: subKey(options.idempotencyKey, 'session') })
  const complete = { ...call, idempotencyKey: subKey(options.idempotencyKey, 'complete') }
  // A replayed session was opened by an earlier run with this key: past pending, its bytes are in and complete was sent.
  if (session.replayed) {
    const state = await client.getUploadSession(projectId, videoId, session.uploadId, call)
    if (state.status !== 'pending') return await client.completeUploadSession(projectId, videoId, session.uploadId, state.status === 'uploading' ? [] : undefined, complete)
  }
  if (session.method === 'PUT' && sha256 === undefined && options.sha256 !== false) {
    // Guessed multipart but the service gives one PUT: the SHA-256 goes with complete instead.
    Object.assign(complete, { sha256: await sha256File(path) })
  }
  if (session.method === 'MULTIPART') {
    const saved: SavedSession = {
      version: 1,
      baseUrl: client.baseUrl,
      projectId,
      videoId,
      uploadId: session.uploadId,
      file: resolve(path),
      size: total,
      mtimeMs: file.mtimeMs,
      contentType,
      partSize: session.partSize ?? total,
      partCount: session.partCount ?? Math.ceil(total / (session.partSize ?? total)),
      completeBy: session.completeBy,
      ...(sha256 === undefined ? {} : { sha256 }),
      ...(options.idempotencyKey === undefined ? {} : { idempotencyKey: options.idempotencyKey }),
      etags: {}
    }
    await writer.save(saved)
    options.onSession?.({ uploadId: saved.uploadId, resumed: false, partCount: saved.partCount, partsStored: 0, sessionFile: sessionPath })
    return await uploadParts(client, saved, path, new Map(), options, defaults, retry, writer)
  }

  let completing = false
  try {
    await putPiece({ url: session.url as string, headers: session.headers, path, start: 0, size: total, before: 0, total }, defaults.chunkBytes, retry, options.onProgress)
    completing = true
    return await client.completeUploadSession(projectId, videoId, session.uploadId, undefined, complete)
  } catch (error) {
    const rejected = error instanceof RenderStoreError && REJECTED.has(error.status)
    if ((!completing && !session.replayed) || (completing && rejected)) {
      // The caller needs the upload's own failure; a session left open expires at its completeBy.
      await client.abortUploadSession(projectId, videoId, session.uploadId, { retry: false, idempotencyKey: subKey(options.idempotencyKey, 'abort') })
        .catch((abortError: unknown) => { options.onWarning?.({ message: `could not abort upload session ${session.uploadId} (it expires at ${session.completeBy})`, error: abortError }) })
    }
    throw error
  }
}

/** Continues a saved session: undefined when it cannot be continued (ended, gone), so a new one is opened. */
async function resumeSaved (client: RenderStoreClient, saved: SavedSession, path: string, options: DirectUploadOptions,
  defaults: { retry?: RetryOptions, chunkBytes: number, direct?: DirectUploadDefaults }, retry: RetryOptions, writer: SessionWriter): Promise<(RenderVersion & { replayed: boolean }) | undefined> {
  const call = { signal: options.signal, retry: options.retry }
  let state
  try {
    state = await client.getUploadSession(saved.projectId, saved.videoId, saved.uploadId, call)
  } catch (error) {
    if (error instanceof RenderStoreError && error.status === 404) { await writer.remove(); return undefined }
    throw error
  }
  const complete = { ...call, idempotencyKey: subKey(saved.idempotencyKey ?? options.idempotencyKey, 'complete') }
  if (state.status === 'completed' || state.status === 'uploading') {
    // Completed (or being completed) by the run that was cut: complete answers its render.
    const render = await client.completeUploadSession(saved.projectId, saved.videoId, saved.uploadId, [], complete)
    await writer.remove()
    return render
  }
  if (state.status !== 'pending') { await writer.remove(); return undefined }
  const stored = new Map<number, string>()
  if (state.parts !== undefined) {
    for (const part of state.parts) if (part.size === expectedSize(saved, part.partNumber)) stored.set(part.partNumber, part.etag)
  } else {
    // This S3 cannot list parts: trust what this client recorded of its own PUTs (complete still checks every byte).
    for (const [number, etag] of Object.entries(saved.etags)) stored.set(Number(number), etag)
  }
  options.onSession?.({ uploadId: saved.uploadId, resumed: true, partCount: saved.partCount, partsStored: stored.size, sessionFile: typeof options.sessionFile === 'string' ? options.sessionFile : undefined })
  return await uploadParts(client, saved, path, stored, options, defaults, retry, writer)
}

/**
 * PUTs every part not yet stored, `concurrency` at a time, asking the service for URLs in batches as they are needed
 * (and again when one is near its expiry or S3 refused it as expired), then completes with every part's ETag.
 */
async function uploadParts (client: RenderStoreClient, saved: SavedSession, path: string, stored: Map<number, string>, options: DirectUploadOptions,
  defaults: { retry?: RetryOptions, chunkBytes: number, direct?: DirectUploadDefaults }, retry: RetryOptions, writer: SessionWriter): Promise<RenderVersion & { replayed: boolean }> {
  const { projectId, videoId, uploadId, partCount } = saved
  const call = { signal: options.signal, retry: options.retry }
  // The SHA-256 the service is to check, read from the file while the parts go out (not before: a 1 GiB file takes
  // seconds to hash); given at complete. None when the caller gave one at creation or asked for none.
  const hashing: Promise<string | undefined> = saved.sha256 !== undefined || options.sha256 === false ? Promise.resolve(undefined) : sha256File(path)
  // Marked handled here: a hashing failure while parts still go out is thrown where it is awaited, after them.
  hashing.catch(() => {})
  const run: PartRun = {
    client,
    saved,
    path,
    call,
    retry,
    chunkBytes: defaults.chunkBytes,
    writer,
    onProgress: options.onProgress,
    concurrency: Math.max(1, Math.min(64, options.concurrency ?? defaults.direct?.concurrency ?? 4)),
    todo: Array.from({ length: partCount }, (_, index) => index + 1).filter((number) => !stored.has(number)),
    etags: new Map(stored),
    urls: new Map(),
    inFlight: new Map(),
    doneBytes: [...stored.keys()].reduce((sum, number) => sum + expectedSize(saved, number), 0),
    reported: -1,
    next: 0
  }
  let parts
  try {
    parts = await sendParts(run)
  } catch (failure) {
    await writer.flush()
    // Not aborted: the parts stored so far stay, and the next call for this file resumes from them.
    if (failure instanceof RenderStoreError) failure.message += `; the session is kept, run the upload again to resume it${typeof options.sessionFile === 'string' ? ` (${options.sessionFile})` : ''}`
    throw failure
  }

  const sha256 = await hashing
  const complete = { ...call, idempotencyKey: subKey(saved.idempotencyKey ?? options.idempotencyKey, 'complete'), sha256 }
  try {
    const render = await client.completeUploadSession(projectId, videoId, uploadId, parts, complete)
    await writer.remove()
    return render
  } catch (error) {
    if (error instanceof RenderStoreError && REJECTED.has(error.status)) {
      // The object itself was refused (size, SHA-256, not a video): the session has failed; nothing to resume. When
      // its state cannot be read, the file stays and the next run finds out.
      const now = await client.getUploadSession(projectId, videoId, uploadId, call).catch(() => undefined)
      if (now?.status === 'failed') await writer.remove()
    }
    throw error
  }
}
