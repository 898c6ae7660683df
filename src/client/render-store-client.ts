// A typed fetch client for render-store: every call retried on network errors, 429 and 5xx; uploads streamed.
import { RenderStoreError, parseRetryAfter, type Problem } from './errors.js'
import { withRetry, type RetryOptions } from './retry.js'
import { openSource, type ProgressCallback, type UploadSource } from './upload-body.js'
import { uploadRenderDirect, type DirectUploadOptions } from './direct-upload.js'
import type {
  CodeLockRequest, CodeVersion, CodeVersionSummary, ListOptions, NewCodeVersion, Page, RenderRecord, RenderVersion,
  SceneClip, UploadProgress, UploadSession, UploadSessionRequest, UploadSessionState, VideoStatusReport
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
}

export interface CallOptions {
  /** cancels the call and its retries */
  signal?: AbortSignal
  /** this call's retry policy (merged over the client's), or false for a single attempt */
  retry?: RetryOptions | false
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

interface Answer { status: number, headers: Headers, text: string }

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
  async createCodeVersion (projectId: string, videoId: string, code: NewCodeVersion, options?: CallOptions): Promise<CodeVersionSummary & { created: boolean }> {
    const answer = await this.call({ method: 'POST', path: `${videoPath(projectId, videoId)}/code`, json: code }, options)
    return { ...(JSON.parse(answer.text) as CodeVersionSummary), created: answer.status === 201 }
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
   * it goes out; each retry opens the source again. Answers the new render version.
   */
  async uploadRender (projectId: string, videoId: string, source: UploadSource, options: RenderUploadOptions = {}): Promise<RenderVersion> {
    const headers: Record<string, string> = {}
    if (options.title !== undefined) headers['x-title'] = options.title
    if (options.durationSeconds !== undefined) headers['x-duration-seconds'] = String(options.durationSeconds)
    if (options.resolution !== undefined) headers['x-resolution'] = options.resolution
    return this.upload('POST', `${videoPath(projectId, videoId)}/renders`, source, options, headers)
  }

  /** Attaches one scene's clip to a render version: `PUT .../renders/{version}/scenes/{sceneNumber}`, streamed. */
  async uploadScene (projectId: string, videoId: string, version: number, sceneNumber: number, source: UploadSource, options: UploadOptions = {}): Promise<SceneClip> {
    return this.upload('PUT', `${videoPath(projectId, videoId)}/renders/${version}/scenes/${sceneNumber}`, source, options)
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
   * completes it; the service verifies size and SHA-256 and answers the new render version. Aborts the session on failure.
   */
  async uploadRenderDirect (projectId: string, videoId: string, path: string, options: DirectUploadOptions = {}): Promise<RenderVersion> {
    return await uploadRenderDirect(this, projectId, videoId, path, options, { retry: this.options.retry, chunkBytes: this.options.uploadChunkBytes ?? 256 * 1024 })
  }

  /** Opens a direct-to-S3 upload session: `POST .../uploads`. */
  async createUploadSession (projectId: string, videoId: string, request: UploadSessionRequest, options?: CallOptions): Promise<UploadSession> {
    return this.json({ method: 'POST', path: `${videoPath(projectId, videoId)}/uploads`, json: request }, options)
  }

  /** An upload session's state: `GET .../uploads/{uploadId}`. */
  async getUploadSession (projectId: string, videoId: string, uploadId: string, options?: CallOptions): Promise<UploadSessionState> {
    return this.json({ method: 'GET', path: `${videoPath(projectId, videoId)}/uploads/${segment(uploadId)}` }, options)
  }

  /** Completes a session; the service verifies the object and creates the render version: `POST .../uploads/{id}/complete`. */
  async completeUploadSession (projectId: string, videoId: string, uploadId: string, parts?: Array<{ partNumber: number, etag: string }>, options?: CallOptions): Promise<RenderVersion> {
    return this.json({ method: 'POST', path: `${videoPath(projectId, videoId)}/uploads/${segment(uploadId)}/complete`, json: parts === undefined ? {} : { parts } }, options)
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

  private async upload<T> (method: string, path: string, source: UploadSource, options: UploadOptions, extraHeaders: Record<string, string> = {}): Promise<T> {
    const opened = await openSource(source, this.options.uploadChunkBytes)
    const spec: RequestSpec = {
      method,
      path,
      body: opened.body,
      onProgress: options.onProgress,
      headers: { ...extraHeaders, 'content-type': options.contentType ?? 'video/mp4', 'content-length': String(opened.size) },
      noTimeout: true
    }
    return JSON.parse((await this.call(spec, options)).text) as T
  }

  private async json<T> (spec: RequestSpec, options?: CallOptions): Promise<T> {
    return JSON.parse((await this.call(spec, options)).text) as T
  }

  private async call (spec: RequestSpec, options: CallOptions = {}): Promise<Answer> {
    if (options.retry === false) return this.attempt(spec, options.signal)
    const policy: RetryOptions = { ...this.options.retry, ...options.retry, signal: options.signal }
    return withRetry(async () => this.attempt(spec, options.signal), policy)
  }

  private async attempt (spec: RequestSpec, signal?: AbortSignal): Promise<Answer> {
    const url = new URL(this.baseUrl + spec.path)
    for (const [name, value] of Object.entries(spec.query ?? {})) if (value !== undefined) url.searchParams.set(name, String(value))
    const headers: Record<string, string> = { accept: spec.accept ?? 'application/json', ...this.options.headers, ...spec.headers }
    if (this.options.apiKey !== undefined) headers.authorization = `Bearer ${this.options.apiKey}`
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
      throw new RenderStoreError(`${request}: no answer from render-store at ${this.baseUrl} (${describeNetworkError(error)})`, { status: 0, request, cause: error })
    }
    const text = await response.text()
    if ((response.status >= 200 && response.status < 300) || spec.allow?.includes(response.status) === true) {
      return { status: response.status, headers: response.headers, text }
    }
    const problem = parseProblem(text, response.headers.get('content-type'))
    const detail = problem?.detail ?? problem?.title ?? (text.slice(0, 200) || response.statusText)
    throw new RenderStoreError(`${request}: ${response.status} ${detail}`, {
      status: response.status, request, problem, retryAfter: parseRetryAfter(response.headers.get('retry-after'))
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
