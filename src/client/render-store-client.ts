// A typed fetch client for render-store: every call retried on network errors, 429 and 5xx; uploads streamed.
// Every write carries one Idempotency-Key, the same on each of its retries, so a retry after a lost answer is
// answered from the first attempt's record instead of storing again.
import { randomUUID } from 'node:crypto'
import { stat } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { RenderStoreError, parseRetryAfter, type Problem } from './errors.js'
import { DEFAULT_RETRY, withRetry, type RetryOptions } from './retry.js'
import { openSource, type ProgressCallback, type UploadSource } from './upload-body.js'
import { uploadRenderDirect, type DirectUploadDefaults, type DirectUploadOptions } from './direct-upload.js'
import type {
  CodeLockRequest, CodeVersion, CodeVersionSummary, ListOptions, NewCodeVersion, Page, RenderRecord, RenderVersion,
  SceneClip, UploadPartUrl, UploadProgress, UploadSession, UploadSessionRequest, UploadSessionState, VideoStatusReport
} from './types.js'
import type { PatchVideoBodyType, PutVideoBodyType, VideoListType, VideoType } from '../../schemas/videos.js'
import type { ReadinessType } from '../../schemas/health.js'

export interface RenderStoreClientOptions {
  /** the service's base URL, e.g. http://127.0.0.1:3000 */
  baseUrl: string
  /** sent as `Authorization: Bearer <apiKey>` when set */
  apiKey?: string
  /** default retry policy of every call (1 s initial, x2, full jitter, 3 retries) */
  retry?: RetryOptions
  /** time limit of one attempt of a JSON call in ms (default 30000); uploads have none but their signal */
  timeoutMs?: number
  /** read size of upload bodies; progress is reported per chunk (default 256 KiB) */
  uploadChunkBytes?: number
  /** extra headers on every call */
  headers?: Record<string, string>
  /**
   * Direct-to-S3 uploads: `thresholdBytes` makes uploadRender send files of at least that size through the direct,
   * resumable path (parallel parts, session saved to a file, resumed by the next run); `concurrency` parts at once
   * (default 4); `stateDir` where session files go. Off by default: the direct path needs S3 reachable from here.
   */
  directUpload?: DirectUploadDefaults
}

export interface CallOptions {
  /** cancels the call and its retries */
  signal?: AbortSignal
  /** this call's retry policy (merged over the client's), or false for a single attempt */
  retry?: RetryOptions | false
  /**
   * writes only: the Idempotency-Key of this logical write (1-255 visible ASCII characters). A new random one per call
   * when not given; pass your own to keep one key across process restarts or a later retry of the same write.
   */
  idempotencyKey?: string
}

/** Whether the service answered a write from its record of an earlier request with the same key. */
export interface Replayed {
  /** true when the answer is a replay (`Idempotent-Replayed: true`): this write had already been done */
  replayed: boolean
}

export interface CompleteOptions extends CallOptions {
  /** how long to wait for a complete the service is still verifying (202) before giving up (default 15 min) */
  waitTimeoutMs?: number
  /** SHA-256 (hex) the object must have, when not given at creation */
  sha256?: string
}

export interface UploadOptions extends CallOptions {
  /** content type of the body (default video/mp4) */
  contentType?: string
  /** told as bytes go out: (bytesUploaded, totalBytes, percentage); starts again from 0 on a retry */
  onProgress?: ProgressCallback
}

export interface RenderUploadOptions extends UploadOptions {
  /** kept on the render record (sent as X-Title) */
  title?: string
  /** sent as X-Duration-Seconds */
  durationSeconds?: number
  /** such as 1920x1080 (sent as X-Resolution) */
  resolution?: string
}

interface RequestSpec {
  method: string
  path: string
  query?: Record<string, string | number | undefined>
  json?: unknown
  body?: (onProgress?: ProgressCallback) => AsyncIterable<Uint8Array>
  headers?: Record<string, string>
  accept?: string
  onProgress?: ProgressCallback
  /** statuses that are not errors besides 2xx (e.g. 302, 304) */
  allow?: number[]
  noTimeout?: boolean
}

interface Answer { status: number, headers: Headers, text: string, replayed: boolean }

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])
const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/

const segment = encodeURIComponent

/** The render-store HTTP API as typed methods. Importable on its own: it depends on nothing of the server. */
export class RenderStoreClient {
  readonly baseUrl: string
  private readonly options: RenderStoreClientOptions

  constructor (options: RenderStoreClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '')
    this.options = options
  }

  // ---- health

  /** Liveness: `GET /health`. */
  async health (options?: CallOptions): Promise<{ status: 'ok', version: string, uptimeSeconds: number }> {
    return this.json({ method: 'GET', path: '/health' }, options)
  }

  /** Readiness of S3 and DynamoDB: `GET /health/ready`; an unhealthy answer (503) is returned, not thrown. */
  async ready (options?: CallOptions): Promise<ReadinessType> {
    const answer = await this.call({ method: 'GET', path: '/health/ready', allow: [503] }, { ...options, retry: false })
    return JSON.parse(answer.text) as ReadinessType
  }

  // ---- videos

  /** The project's videos, newest first: `GET /v1/projects/{projectId}/videos`. */
  async listVideos (projectId: string, list: ListOptions = {}, options?: CallOptions): Promise<VideoListType> {
    return this.json({ method: 'GET', path: `/v1/projects/${segment(projectId)}/videos`, query: { limit: list.limit, cursor: list.cursor } }, options)
  }

  /** Creates or updates a video record: `PUT .../videos/{videoId}`. */
  async putVideo (projectId: string, videoId: string, video: PutVideoBodyType = {}, options?: CallOptions): Promise<VideoType> {
    return this.json({ method: 'PUT', path: videoPath(projectId, videoId), json: video }, options)
  }

  /** One video record with its ETag: `GET .../videos/{videoId}`. */
  async getVideo (projectId: string, videoId: string, options?: CallOptions): Promise<VideoType & { etag?: string }> {
    const answer = await this.call({ method: 'GET', path: videoPath(projectId, videoId) }, options)
    return { ...(JSON.parse(answer.text) as VideoType), etag: answer.headers.get('etag') ?? undefined }
  }

  /** Partial update: `PATCH .../videos/{videoId}` with `If-Match` (the record's current ETag when not given). */
  async patchVideo (projectId: string, videoId: string, patch: PatchVideoBodyType, options: CallOptions & { ifMatch?: string } = {}): Promise<VideoType> {
    const ifMatch = options.ifMatch ?? (await this.getVideo(projectId, videoId, options)).etag
    return this.json({ method: 'PATCH', path: videoPath(projectId, videoId), json: patch, headers: ifMatch !== undefined ? { 'if-match': ifMatch } : {} }, options)
  }

  /** Removes a video's metadata and objects: `DELETE .../videos/{videoId}`. */
  async deleteVideo (projectId: string, videoId: string, options?: CallOptions): Promise<void> {
    await this.call({ method: 'DELETE', path: videoPath(projectId, videoId) }, options)
  }

  // ---- code versions

  /**
   * Stores a new code version: `POST .../code`. With `baseVersion`, a 409 RenderStoreError (problem.latestVersion)
   * says someone stored another version since. `created` is false when the content equals the latest (200).
   */
  async createCodeVersion (projectId: string, videoId: string, code: NewCodeVersion, options?: CallOptions): Promise<CodeVersionSummary & { created: boolean } & Replayed> {
    const answer = await this.call({ method: 'POST', path: `${videoPath(projectId, videoId)}/code`, json: code }, options)
    return { ...(JSON.parse(answer.text) as CodeVersionSummary), created: answer.status === 201, replayed: answer.replayed }
  }

  /** One code version with its content (`latest` by default): `GET .../code` or `.../code/versions/{version}`. */
  async getCode (projectId: string, videoId: string, version: number | 'latest' = 'latest', options?: CallOptions): Promise<CodeVersion> {
    return this.json({ method: 'GET', path: codePath(projectId, videoId, version) }, options)
  }

  /** The code as raw text (`Accept: text/plain`). */
  async getCodeText (projectId: string, videoId: string, version: number | 'latest' = 'latest', options?: CallOptions): Promise<string> {
    return (await this.call({ method: 'GET', path: codePath(projectId, videoId, version), accept: 'text/plain' }, options)).text
  }

  /** Code versions without content, newest first: `GET .../code/versions`. */
  async listCodeVersions (projectId: string, videoId: string, list: ListOptions = {}, options?: CallOptions): Promise<Page<CodeVersionSummary>> {
    return this.json({ method: 'GET', path: `${videoPath(projectId, videoId)}/code/versions`, query: { limit: list.limit, cursor: list.cursor } }, options)
  }

  /** Unified diff from `from` to `version`: `GET .../code/versions/{version}/diff?from=`. */
  async diffCode (projectId: string, videoId: string, version: number | 'latest', from: number | 'latest', options?: CallOptions): Promise<string> {
    return (await this.call({ method: 'GET', path: `${videoPath(projectId, videoId)}/code/versions/${version}/diff`, query: { from: String(from) }, accept: 'text/x-diff' }, options)).text
  }

  /** Object Lock retention or legal hold on a version: `PUT .../code/versions/{version}/lock` (409 without Object Lock). */
  async lockCodeVersion (projectId: string, videoId: string, version: number, lock: CodeLockRequest, options?: CallOptions): Promise<CodeVersionSummary> {
    return this.json({ method: 'PUT', path: `${videoPath(projectId, videoId)}/code/versions/${version}/lock`, json: lock }, options)
  }

  // ---- renders

  /**
   * Uploads a rendered video through the service (`POST .../renders`, raw body), streamed from disk and counted as
   * it goes out; each retry opens the source again and carries the same Idempotency-Key, so a retry after a lost answer
   * gets the version the first attempt made (`replayed: true`), never a second one. Answers the new render version.
   */
  async uploadRender (projectId: string, videoId: string, source: UploadSource, options: RenderUploadOptions = {}): Promise<RenderVersion & Replayed> {
    const threshold = this.options.directUpload?.thresholdBytes
    const path = typeof source === 'string' ? source : 'path' in source ? source.path : undefined
    if (threshold !== undefined && path !== undefined && (await stat(path)).size >= threshold) {
      // Large files go straight to S3 in parallel parts and resume after a restart (see uploadRenderDirect).
      return await this.uploadRenderDirect(projectId, videoId, path, options)
    }
    const headers: Record<string, string> = {}
    if (options.title !== undefined) headers['x-title'] = options.title
    if (options.durationSeconds !== undefined) headers['x-duration-seconds'] = String(options.durationSeconds)
    if (options.resolution !== undefined) headers['x-resolution'] = options.resolution
    const answer = await this.upload('POST', `${videoPath(projectId, videoId)}/renders`, source, options, headers)
    return { ...(JSON.parse(answer.text) as RenderVersion), replayed: answer.replayed }
  }

  /** Attaches one scene's clip to a render version: `PUT .../renders/{version}/scenes/{sceneNumber}`, streamed. */
  async uploadScene (projectId: string, videoId: string, version: number, sceneNumber: number, source: UploadSource, options: UploadOptions = {}): Promise<SceneClip> {
    return JSON.parse((await this.upload('PUT', `${videoPath(projectId, videoId)}/renders/${version}/scenes/${sceneNumber}`, source, options)).text) as SceneClip
  }

  /** Render versions, newest first: `GET .../renders`. */
  async listRenders (projectId: string, videoId: string, list: ListOptions = {}, options?: CallOptions): Promise<Page<RenderRecord>> {
    return this.json({ method: 'GET', path: `${videoPath(projectId, videoId)}/renders`, query: { limit: list.limit, cursor: list.cursor } }, options)
  }

  /** One render's record (with its scene clips) and a fresh presigned downloadUrl: `GET .../renders/{version}`. */
  async getRender (projectId: string, videoId: string, version: number | 'latest' = 'latest', options?: CallOptions): Promise<RenderRecord> {
    return this.json({ method: 'GET', path: `${videoPath(projectId, videoId)}/renders/${version}` }, options)
  }

  /** Where the render's bytes are: the Location of `GET .../renders/{version}/content` (a presigned URL). */
  async renderContentUrl (projectId: string, videoId: string, version: number | 'latest' = 'latest', options?: CallOptions): Promise<string> {
    const answer = await this.call({ method: 'GET', path: `${videoPath(projectId, videoId)}/renders/${version}/content`, allow: [302] }, options)
    const location = answer.headers.get('location')
    if (location === null) throw new RenderStoreError('render content answered without a Location', { status: answer.status, request: `GET ${videoPath(projectId, videoId)}/renders/${version}/content` })
    return location
  }

  // ---- direct upload sessions

  /**
   * Uploads a file straight to S3 through an upload session (presigned PUT or multipart parts, with progress), then
   * completes it; the service verifies size and SHA-256 and answers the new render version. The session is aborted
   * only when nothing can have completed it or the service rejected the object; with `idempotencyKey` a run after a
   * crash finds its session again and never makes a second version.
   */
  async uploadRenderDirect (projectId: string, videoId: string, path: string, options: DirectUploadOptions = {}): Promise<RenderVersion & Replayed> {
    return await uploadRenderDirect(this, projectId, videoId, path, options, { retry: this.options.retry, chunkBytes: this.options.uploadChunkBytes ?? 256 * 1024, direct: this.options.directUpload })
  }

  /** Presigned URLs for parts of a multipart session, signed now: `POST .../uploads/{uploadId}/parts` (at most 100). */
  async signUploadParts (projectId: string, videoId: string, uploadId: string, partNumbers: number[], options?: CallOptions): Promise<UploadPartUrl[]> {
    const answer = await this.json<{ parts: UploadPartUrl[] }>({ method: 'POST', path: `${videoPath(projectId, videoId)}/uploads/${segment(uploadId)}/parts`, json: { partNumbers } }, options)
    return answer.parts
  }

  /** Opens a direct-to-S3 upload session: `POST .../uploads`. */
  async createUploadSession (projectId: string, videoId: string, request: UploadSessionRequest, options?: CallOptions): Promise<UploadSession & Replayed> {
    const answer = await this.call({ method: 'POST', path: `${videoPath(projectId, videoId)}/uploads`, json: request }, options)
    return { ...(JSON.parse(answer.text) as UploadSession), replayed: answer.replayed }
  }

  /** An upload session's state: `GET .../uploads/{uploadId}`. */
  async getUploadSession (projectId: string, videoId: string, uploadId: string, options?: CallOptions): Promise<UploadSessionState> {
    return this.json({ method: 'GET', path: `${videoPath(projectId, videoId)}/uploads/${segment(uploadId)}` }, options)
  }

  /**
   * Completes a session; the service verifies the object and creates the render version: `POST .../uploads/{id}/complete`.
   * While the service is still verifying (202, or 409 'being completed' from a repeat), polls the session (honouring
   * Retry-After) until it is completed (or pending again: its replica died), then completes again with the same key for
   * the render; a session that ends failed, aborted or expired is a permanent RenderStoreError. A wait longer than
   * `waitTimeoutMs` throws a RenderStoreError with status 202: completing again later with the same key is safe.
   */
  async completeUploadSession (projectId: string, videoId: string, uploadId: string, parts?: Array<{ partNumber: number, etag: string }>, options: CompleteOptions = {}): Promise<RenderVersion & Replayed> {
    const key = this.keyOf(options)
    const json = { ...(parts === undefined ? {} : { parts }), ...(options.sha256 === undefined ? {} : { sha256: options.sha256 }) }
    const spec: RequestSpec = { method: 'POST', path: `${videoPath(projectId, videoId)}/uploads/${segment(uploadId)}/complete`, json, allow: [202] }
    const deadline = Date.now() + (options.waitTimeoutMs ?? 15 * 60_000)
    for (;;) {
      let answer: Answer
      try {
        answer = await this.call(spec, { ...options, idempotencyKey: key })
      } catch (error) {
        // A repeat of a complete that is still running (the service before idempotency keys): wait for it as for a 202.
        if (!(error instanceof RenderStoreError) || error.status !== 409 || error.inProgress) throw error
        const now = await this.getUploadSession(projectId, videoId, uploadId, options).catch(() => undefined)
        if (now === undefined || (now.status !== 'uploading' && now.status !== 'completed')) throw error
        answer = { status: 202, headers: new Headers(), text: JSON.stringify(now), replayed: false }
      }
      if (answer.status !== 202) return { ...(JSON.parse(answer.text) as RenderVersion), replayed: answer.replayed }
      await this.awaitSession(projectId, videoId, uploadId, answer, deadline, { ...options, idempotencyKey: key })
    }
  }

  /**
   * Polls a session that is being completed (honouring Retry-After, else a growing interval) while it reads
   * `uploading`. Returns when it is completed, or pending again (the replica completing it died: the next complete takes
   * it over); throws when it ended failed, aborted or expired, or when the wait passed its deadline.
   */
  private async awaitSession (projectId: string, videoId: string, uploadId: string, accepted: Answer, deadline: number, options: CallOptions): Promise<void> {
    const policy: RetryOptions = { ...this.options.retry, ...(options.retry === false ? {} : options.retry) }
    const initial = policy.initialDelayMs ?? DEFAULT_RETRY.initialDelayMs
    const max = policy.maxDelayMs ?? DEFAULT_RETRY.maxDelayMs
    const request = `GET ${videoPath(projectId, videoId)}/uploads/${uploadId}`
    let state = JSON.parse(accepted.text) as UploadSessionState
    let retryAfter = parseRetryAfter(accepted.headers.get('retry-after'))
    let poll = 0
    let polled = 0
    do {
      // The session is read at least once after a 202, however short the wait allowed.
      if (polled > 0 && Date.now() >= deadline) {
        throw new RenderStoreError(`${request}: still ${state.status} after waiting; complete again later with idempotency key ${String(options.idempotencyKey)}`,
          { status: 202, request, retryAfter, idempotencyKey: options.idempotencyKey })
      }
      const delay = Math.min(max, retryAfter !== undefined ? retryAfter * 1000 : initial * 1.5 ** poll++, Math.max(0, deadline - Date.now()))
      await sleep(delay, undefined, { signal: options.signal })
      const answer = await this.call({ method: 'GET', path: `${videoPath(projectId, videoId)}/uploads/${segment(uploadId)}` }, { signal: options.signal, retry: options.retry })
      state = JSON.parse(answer.text) as UploadSessionState
      retryAfter = parseRetryAfter(answer.headers.get('retry-after'))
      polled++
    } while (state.status === 'uploading')
    if (state.status !== 'completed' && state.status !== 'pending') {
      const reason = (state as { failureReason?: string }).failureReason ?? state.lastError
      throw new RenderStoreError(`${request}: upload ${state.status}${reason !== undefined ? `: ${reason}` : ''}`, { status: 409, request, permanent: true, idempotencyKey: options.idempotencyKey })
    }
  }

  /** Aborts a session: `DELETE .../uploads/{uploadId}`. */
  async abortUploadSession (projectId: string, videoId: string, uploadId: string, options?: CallOptions): Promise<void> {
    await this.call({ method: 'DELETE', path: `${videoPath(projectId, videoId)}/uploads/${segment(uploadId)}` }, options)
  }

  // ---- progress and status

  /** Progress of the video's newest upload: `GET .../progress`. */
  async progress (projectId: string, videoId: string, options?: CallOptions): Promise<UploadProgress> {
    return this.json({ method: 'GET', path: `${videoPath(projectId, videoId)}/progress` }, options)
  }

  /** Video, upload, code and service status in one answer: `GET .../status`. */
  async status (projectId: string, videoId: string, options?: CallOptions): Promise<VideoStatusReport> {
    return this.json({ method: 'GET', path: `${videoPath(projectId, videoId)}/status` }, options)
  }

  // ---- transport

  private async upload (method: string, path: string, source: UploadSource, options: UploadOptions, extraHeaders: Record<string, string> = {}): Promise<Answer> {
    const opened = await openSource(source, this.options.uploadChunkBytes)
    const spec: RequestSpec = {
      method,
      path,
      body: opened.body,
      onProgress: options.onProgress,
      headers: { ...extraHeaders, 'content-type': options.contentType ?? 'video/mp4', 'content-length': String(opened.size) },
      noTimeout: true
    }
    return await this.call(spec, options)
  }

  private async json<T> (spec: RequestSpec, options?: CallOptions): Promise<T> {
    return JSON.parse((await this.call(spec, options)).text) as T
  }

  /** The caller's Idempotency-Key, checked, or a new one. */
  private keyOf (options: CallOptions): string {
    const key = options.idempotencyKey ?? randomUUID()
    if (!KEY_PATTERN.test(key)) throw new RangeError(`idempotencyKey must be 1-255 visible ASCII characters, not ${JSON.stringify(key)}`)
    return key
  }

  /** One logical call: a write gets its Idempotency-Key here, once, and every retry sends that same key. */
  private async call (spec: RequestSpec, options: CallOptions = {}): Promise<Answer> {
    const key = WRITES.has(spec.method) ? this.keyOf(options) : undefined
    if (options.retry === false) return this.attempt(spec, options.signal, key)
    const policy: RetryOptions = { ...this.options.retry, ...options.retry, signal: options.signal }
    return withRetry(async () => this.attempt(spec, options.signal, key), policy)
  }

  private async attempt (spec: RequestSpec, signal?: AbortSignal, idempotencyKey?: string): Promise<Answer> {
    const url = new URL(this.baseUrl + spec.path)
    for (const [name, value] of Object.entries(spec.query ?? {})) if (value !== undefined) url.searchParams.set(name, String(value))
    const headers: Record<string, string> = { accept: spec.accept ?? 'application/json', ...this.options.headers, ...spec.headers }
    if (this.options.apiKey !== undefined) headers.authorization = `Bearer ${this.options.apiKey}`
    if (idempotencyKey !== undefined) headers['idempotency-key'] = idempotencyKey
    let body: BodyInit | undefined
    if (spec.json !== undefined) {
      headers['content-type'] = 'application/json'
      body = JSON.stringify(spec.json)
    } else if (spec.body !== undefined) {
      body = spec.body(spec.onProgress) as unknown as BodyInit
    }
    const signals = [signal, spec.noTimeout === true ? undefined : AbortSignal.timeout(this.options.timeoutMs ?? 30_000)].filter((s): s is AbortSignal => s !== undefined)
    const request = `${spec.method} ${spec.path}`
    let response: Response
    try {
      response = await fetch(url, { method: spec.method, headers, body, redirect: 'manual', signal: signals.length > 0 ? AbortSignal.any(signals) : undefined, duplex: 'half' } as RequestInit)
    } catch (error) {
      if (signal?.aborted === true) throw error
      throw new RenderStoreError(`${request}: no answer from render-store at ${this.baseUrl} (${describeNetworkError(error)})`, { status: 0, request, cause: error, idempotencyKey })
    }
    let text: string
    try {
      text = await response.text()
    } catch (error) {
      // The answer was cut mid-body (undici: TypeError terminated) or timed out while reading: as good as no answer.
      if (signal?.aborted === true) throw error
      throw new RenderStoreError(`${request}: the answer (${response.status}) from render-store was cut off (${describeNetworkError(error)})`, { status: 0, request, cause: error, idempotencyKey })
    }
    if ((response.status >= 200 && response.status < 300) || spec.allow?.includes(response.status) === true) {
      return { status: response.status, headers: response.headers, text, replayed: response.headers.get('idempotent-replayed') === 'true' }
    }
    const problem = parseProblem(text, response.headers.get('content-type'))
    const detail = problem?.detail ?? problem?.title ?? (text.slice(0, 200) || response.statusText)
    throw new RenderStoreError(`${request}: ${response.status} ${detail}`, {
      status: response.status, request, problem, retryAfter: parseRetryAfter(response.headers.get('retry-after')), idempotencyKey
    })
  }
}

function videoPath (projectId: string, videoId: string): string {
  return `/v1/projects/${segment(projectId)}/videos/${segment(videoId)}`
}

function codePath (projectId: string, videoId: string, version: number | 'latest'): string {
  return version === 'latest' ? `${videoPath(projectId, videoId)}/code` : `${videoPath(projectId, videoId)}/code/versions/${version}`
}

function parseProblem (text: string, contentType: string | null): Problem | undefined {
  if (contentType === null || !contentType.includes('json')) return undefined
  try {
    const parsed: unknown = JSON.parse(text)
    return typeof parsed === 'object' && parsed !== null ? parsed as Problem : undefined
  } catch {
    return undefined
  }
}

function describeNetworkError (error: unknown): string {
  const cause = (error as { cause?: { code?: string, message?: string } }).cause
  if (cause?.code !== undefined) return cause.code
  if ((error as Error).name === 'TimeoutError') return 'timed out'
  return cause?.message ?? (error as Error).message
}
