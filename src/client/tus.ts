// Resumable uploads over tus 1.0.0 (…/videos/{videoId}/tus): the file is sent from the offset the service holds,
// so a dropped connection, a failed replica or a restart of this process costs only the bytes in flight. The upload
// URL can be kept in a small state file, so a new process resumes instead of starting again.
import { createHash, randomUUID } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readFile, rm, stat, writeFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { RenderStoreError, parseRetryAfter, type Problem } from './errors.js'
import type { RenderRecord } from './types.js'

export interface TusUploadOptions {
  /** the service's base URL, e.g. http://127.0.0.1:3000 */
  baseUrl: string
  apiKey?: string
  /** kept on the render: sent in Upload-Metadata */
  title?: string
  durationSeconds?: number
  resolution?: string
  /** default video/mp4 (the container is sniffed from the bytes anyway) */
  contentType?: string
  /** bytes per PATCH (default: the whole rest of the file in one PATCH) */
  chunkBytes?: number
  /** send Upload-Checksum (sha256) with each PATCH; each chunk is then read twice (default false) */
  checksum?: boolean
  /** where the upload URL is kept between runs; the file is removed once the upload is a render version */
  stateFile?: string
  /** attempts after a failure before giving up (default 8); each resumes from the offset the service holds */
  retries?: number
  /** told as bytes are confirmed: (bytesUploaded, totalBytes) */
  onProgress?: (bytesUploaded: number, totalBytes: number) => void
  signal?: AbortSignal
}

/** uploadPath is resolved against the baseUrl of each run, so a resume may go to another replica or address. */
interface TusState { uploadPath: string, path: string, size: number, mtimeMs: number }

const TUS = { 'tus-resumable': '1.0.0' }
const metadataHeader = (values: Record<string, string | undefined>): string =>
  Object.entries(values).filter(([, value]) => value !== undefined).map(([key, value]) => `${key} ${Buffer.from(value as string).toString('base64')}`).join(',')

async function failure (response: Response, request: string): Promise<RenderStoreError> {
  // The status is the failure; a body cut off or not JSON only leaves the message without its detail.
  const text = await response.text().catch(() => '')
  let problem: Problem | undefined
  try { problem = JSON.parse(text) as Problem } catch {}
  return new RenderStoreError(`${request}: ${response.status} ${problem?.detail ?? text}`.trim(), { status: response.status, request, problem, retryAfter: parseRetryAfter(response.headers.get('retry-after')) })
}

/** Worth another attempt from the service's offset: no answer, a conflict on the offset, a lock, overload, 5xx. */
const retryable = (error: unknown): boolean => !(error instanceof RenderStoreError) || [409, 423, 429].includes(error.status) || error.status >= 500

/**
 * Uploads a file as the next render version of a video over tus, resuming an upload kept in `stateFile` when it is
 * of the same file; answers the render version the upload became.
 */
export async function uploadRenderTus (projectId: string, videoId: string, path: string, options: TusUploadOptions): Promise<RenderRecord> {
  const base = options.baseUrl.replace(/\/$/, '')
  const auth: Record<string, string> = options.apiKey === undefined ? {} : { authorization: `Bearer ${options.apiKey}` }
  const { size, mtimeMs } = await stat(path)
  const retries = options.retries ?? 8

  let uploadPath = await savedUpload(options.stateFile, path, size, mtimeMs)
  if (uploadPath === undefined) {
    const idempotencyKey = randomUUID()
    const created = await attempt(retries, options.signal, async () => {
      const response = await fetch(`${base}/v1/projects/${encodeURIComponent(projectId)}/videos/${encodeURIComponent(videoId)}/tus`, {
        method: 'POST',
        headers: {
          ...TUS, ...auth, 'idempotency-key': idempotencyKey, 'upload-length': String(size),
          'upload-metadata': metadataHeader({ filename: path.split('/').pop(), filetype: options.contentType ?? 'video/mp4', title: options.title, durationSeconds: options.durationSeconds?.toString(), resolution: options.resolution })
        },
        signal: options.signal
      })
      if (response.status !== 201) throw await failure(response, 'POST tus')
      return new URL(response.headers.get('location') ?? '', base).pathname
    })
    uploadPath = created
    if (options.stateFile !== undefined) await writeFile(options.stateFile, JSON.stringify({ uploadPath, path, size, mtimeMs } satisfies TusState))
  }
  const url = `${base}${uploadPath}`

  const version = await attempt(retries, options.signal, async () => {
    // Where the service stands: continue from there (another replica may have kept more than this process knows).
    const head = await fetch(url, { method: 'HEAD', headers: { ...TUS, ...auth }, signal: options.signal })
    if (head.status !== 200) throw await failure(head, 'HEAD tus')
    let offset = Number(head.headers.get('upload-offset'))
    options.onProgress?.(offset, size)
    let rendered = head.headers.get('x-render-version')
    while (rendered === null) {
      const end = Math.min(size, offset + (options.chunkBytes ?? size))
      const checksum = options.checksum === true ? { 'upload-checksum': `sha256 ${await chunkDigest(path, offset, end)}` } : {}
      const body = end > offset ? createReadStream(path, { start: offset, end: end - 1, highWaterMark: 1024 * 1024 }) : undefined
      const response = await fetch(url, {
        method: 'PATCH',
        headers: { ...TUS, ...auth, ...checksum, 'content-type': 'application/offset+octet-stream', 'upload-offset': String(offset), 'content-length': String(end - offset) },
        body: body as unknown as BodyInit,
        duplex: 'half',
        signal: options.signal
      } as RequestInit)
      if (response.status !== 204) throw await failure(response, 'PATCH tus')
      offset = Number(response.headers.get('upload-offset'))
      options.onProgress?.(offset, size)
      rendered = response.headers.get('x-render-version')
    }
    return Number(rendered)
  })

  if (options.stateFile !== undefined) await rm(options.stateFile, { force: true })
  const render = await fetch(`${base}/v1/projects/${encodeURIComponent(projectId)}/videos/${encodeURIComponent(videoId)}/renders/${version}`, { headers: auth, signal: options.signal })
  if (!render.ok) throw await failure(render, 'GET render')
  return await render.json() as RenderRecord
}

/** The upload URL kept for this very file (same path, size and modification time), if any. */
async function savedUpload (stateFile: string | undefined, path: string, size: number, mtimeMs: number): Promise<string | undefined> {
  if (stateFile === undefined) return undefined
  try {
    const state = JSON.parse(await readFile(stateFile, 'utf8')) as TusState
    return state.path === path && state.size === size && state.mtimeMs === mtimeMs ? state.uploadPath : undefined
  } catch {
    return undefined
  }
}

async function chunkDigest (path: string, start: number, end: number): Promise<string> {
  const hash = createHash('sha256')
  if (end > start) for await (const chunk of createReadStream(path, { start, end: end - 1 })) hash.update(chunk as Buffer)
  return hash.digest('base64')
}

async function attempt<T> (retries: number, signal: AbortSignal | undefined, run: () => Promise<T>): Promise<T> {
  for (let tries = 0; ; tries++) {
    try {
      return await run()
    } catch (error) {
      if (signal?.aborted === true || tries >= retries || !retryable(error)) throw error
      const asked = error instanceof RenderStoreError ? error.retryAfter : undefined
      await sleep(asked !== undefined ? asked * 1000 : Math.min(10_000, 250 * 2 ** tries) * (0.5 + Math.random()))
    }
  }
}
