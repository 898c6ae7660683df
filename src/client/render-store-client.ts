// A typed fetch client for render-store: every call retried on network errors, 429 and 5xx; uploads streamed.
// Every write carries one Idempotency-Key, the same on each of its retries, so a retry after a lost answer is
// answered from the first attempt's record instead of storing again.
import { stat } from 'node:fs/promises'
import { RenderStoreError } from './errors.js'
import type { UploadSource } from './upload-body.js'
import { uploadRenderDirect, type DirectUploadOptions } from './direct/upload.js'
import { Transport, type Answer, type RequestSpec } from './transport.js'
import { awaitSession } from './await-session.js'
import type { CallOptions, CompleteOptions, RenderStoreClientOptions, RenderUploadOptions, Replayed, UploadOptions } from './options.js'
import type {
  CodeLockRequest, CodeVersion, CodeVersionSummary, ListOptions, NewCodeVersion, Page, RenderRecord, RenderVersion,
  SceneClip, UploadPartUrl, UploadProgress, UploadSession, UploadSessionRequest, UploadSessionState, VideoStatusReport
} from './types.js'
import type { PatchVideoBodyType, PutVideoBodyType, VideoListType, VideoType } from '../../schemas/videos.js'
import type { ReadinessType } from '../../schemas/health.js'

export type { CallOptions, CompleteOptions, RenderStoreClientOptions, RenderUploadOptions, Replayed, UploadOptions } from './options.js'

const segment = encodeURIComponent

/** The render-store HTTP API as typed methods. Importable on its own: it depends on nothing of the server. */
export class RenderStoreClient {
  readonly baseUrl: string
  private readonly options: RenderStoreClientOptions
  private readonly http: Transport

  constructor (options: RenderStoreClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '')
    this.options = options
    this.http = new Transport(this.baseUrl, options)
  }

  // ---- health

  /** Liveness: `GET /health`. */
  async health (options?: CallOptions): Promise<{ status: 'ok', version: string, uptimeSeconds: number }> {
    return this.http.json({ method: 'GET', path: '/health' }, options)
  }

  /** Readiness of S3 and DynamoDB: `GET /health/ready`; an unhealthy answer (503) is returned, not thrown. */
  async ready (options?: CallOptions): Promise<ReadinessType> {
    const answer = await this.http.call({ method: 'GET', path: '/health/ready', allow: [503] }, { ...options, retry: false })
    return JSON.parse(answer.text) as ReadinessType
  }

  // ---- videos

  /** The project's videos, newest first: `GET /v1/projects/{projectId}/videos`. */
  async listVideos (projectId: string, list: ListOptions = {}, options?: CallOptions): Promise<VideoListType> {
    return this.http.json({ method: 'GET', path: `/v1/projects/${segment(projectId)}/videos`, query: { limit: list.limit, cursor: list.cursor } }, options)
  }

  /** Creates or updates a video record: `PUT .../videos/{videoId}`. */
  async putVideo (projectId: string, videoId: string, video: PutVideoBodyType = {}, options?: CallOptions): Promise<VideoType> {
    return this.http.json({ method: 'PUT', path: videoPath(projectId, videoId), json: video }, options)
  }

  /** One video record with its ETag: `GET .../videos/{videoId}`. */
  async getVideo (projectId: string, videoId: string, options?: CallOptions): Promise<VideoType & { etag?: string }> {
    const answer = await this.http.call({ method: 'GET', path: videoPath(projectId, videoId) }, options)
    return { ...(JSON.parse(answer.text) as VideoType), etag: answer.headers.get('etag') ?? undefined }
  }

  /** Partial update: `PATCH .../videos/{videoId}` with `If-Match` (the record's current ETag when not given). */
  async patchVideo (projectId: string, videoId: string, patch: PatchVideoBodyType, options: CallOptions & { ifMatch?: string } = {}): Promise<VideoType> {
    const ifMatch = options.ifMatch ?? (await this.getVideo(projectId, videoId, options)).etag
    return this.http.json({ method: 'PATCH', path: videoPath(projectId, videoId), json: patch, headers: ifMatch !== undefined ? { 'if-match': ifMatch } : {} }, options)
  }

  /** Removes a video's metadata and objects: `DELETE .../videos/{videoId}`. */
  async deleteVideo (projectId: string, videoId: string, options?: CallOptions): Promise<void> {
    await this.http.call({ method: 'DELETE', path: videoPath(projectId, videoId) }, options)
  }

  // ---- code versions

  /**
   * Stores a new code version: `POST .../code`. With `baseVersion`, a 409 RenderStoreError (problem.latestVersion)
   * says someone stored another version since. `created` is false when the content equals the latest (200).
   */
  async createCodeVersion (projectId: string, videoId: string, code: NewCodeVersion, options?: CallOptions): Promise<CodeVersionSummary & { created: boolean } & Replayed> {
    const answer = await this.http.call({ method: 'POST', path: `${videoPath(projectId, videoId)}/code`, json: code }, options)
    return { ...(JSON.parse(answer.text) as CodeVersionSummary), created: answer.status === 201, replayed: answer.replayed }
  }

  /** One code version with its content (`latest` by default): `GET .../code` or `.../code/versions/{version}`. */
  async getCode (projectId: string, videoId: string, version: number | 'latest' = 'latest', options?: CallOptions): Promise<CodeVersion> {
    return this.http.json({ method: 'GET', path: codePath(projectId, videoId, version) }, options)
  }

  /** The code as raw text (`Accept: text/plain`). */
  async getCodeText (projectId: string, videoId: string, version: number | 'latest' = 'latest', options?: CallOptions): Promise<string> {
    return (await this.http.call({ method: 'GET', path: codePath(projectId, videoId, version), accept: 'text/plain' }, options)).text
  }

  /** Code versions without content, newest first: `GET .../code/versions`. */
  async listCodeVersions (projectId: string, videoId: string, list: ListOptions = {}, options?: CallOptions): Promise<Page<CodeVersionSummary>> {
    return this.http.json({ method: 'GET', path: `${videoPath(projectId, videoId)}/code/versions`, query: { limit: list.limit, cursor: list.cursor } }, options)
  }

  /** Unified diff from `from` to `version`: `GET .../code/versions/{version}/diff?from=`. */
  async diffCode (projectId: string, videoId: string, version: number | 'latest', from: number | 'latest', options?: CallOptions): Promise<string> {
    return (await this.http.call({ method: 'GET', path: `${videoPath(projectId, videoId)}/code/versions/${version}/diff`, query: { from: String(from) }, accept: 'text/x-diff' }, options)).text
  }

  /** Object Lock retention or legal hold on a version: `PUT .../code/versions/{version}/lock` (409 without Object Lock). */
  async lockCodeVersion (projectId: string, videoId: string, version: number, lock: CodeLockRequest, options?: CallOptions): Promise<CodeVersionSummary> {
    return this.http.json({ method: 'PUT', path: `${videoPath(projectId, videoId)}/code/versions/${version}/lock`, json: lock }, options)
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
    const answer = await this.http.upload('POST', `${videoPath(projectId, videoId)}/renders`, source, options, headers)
    return { ...(JSON.parse(answer.text) as RenderVersion), replayed: answer.replayed }
  }

  /** Attaches one scene's clip to a render version: `PUT .../renders/{version}/scenes/{sceneNumber}`, streamed. */
  async uploadScene (projectId: string, videoId: string, version: number, sceneNumber: number, source: UploadSource, options: UploadOptions = {}): Promise<SceneClip> {
    return JSON.parse((await this.http.upload('PUT', `${videoPath(projectId, videoId)}/renders/${version}/scenes/${sceneNumber}`, source, options)).text) as SceneClip
  }

  /** Render versions, newest first: `GET .../renders`. */
  async listRenders (projectId: string, videoId: string, list: ListOptions = {}, options?: CallOptions): Promise<Page<RenderRecord>> {
    return this.http.json({ method: 'GET', path: `${videoPath(projectId, videoId)}/renders`, query: { limit: list.limit, cursor: list.cursor } }, options)
  }

  /** One render's record (with its scene clips) and a fresh presigned downloadUrl: `GET .../renders/{version}`. */
  async getRender (projectId: string, videoId: string, version: number | 'latest' = 'latest', options?: CallOptions): Promise<RenderRecord> {
    return this.http.json({ method: 'GET', path: `${videoPath(projectId, videoId)}/renders/${version}` }, options)
  }

  /** Where the render's bytes are: the Location of `GET .../renders/{version}/content` (a presigned URL). */
  async renderContentUrl (projectId: string, videoId: string, version: number | 'latest' = 'latest', options?: CallOptions): Promise<string> {
    const answer = await this.http.call({ method: 'GET', path: `${videoPath(projectId, videoId)}/renders/${version}/content`, allow: [302] }, options)
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
    const answer = await this.http.json<{ parts: UploadPartUrl[] }>({ method: 'POST', path: `${videoPath(projectId, videoId)}/uploads/${segment(uploadId)}/parts`, json: { partNumbers } }, options)
    return answer.parts
  }

  /** Opens a direct-to-S3 upload session: `POST .../uploads`. */
  async createUploadSession (projectId: string, videoId: string, request: UploadSessionRequest, options?: CallOptions): Promise<UploadSession & Replayed> {
    const answer = await this.http.call({ method: 'POST', path: `${videoPath(projectId, videoId)}/uploads`, json: request }, options)
    return { ...(JSON.parse(answer.text) as UploadSession), replayed: answer.replayed }
  }

  /** An upload session's state: `GET .../uploads/{uploadId}`. */
  async getUploadSession (projectId: string, videoId: string, uploadId: string, options?: CallOptions): Promise<UploadSessionState> {
    return this.http.json({ method: 'GET', path: `${videoPath(projectId, videoId)}/uploads/${segment(uploadId)}` }, options)
  }

  /**
   * Completes a session; the service verifies the object and creates the render version: `POST .../uploads/{id}/complete`.
   * While the service is still verifying (202, or 409 'being completed' from a repeat), polls the session (honouring
   * Retry-After) until it is completed (or pending again: its replica died), then completes again with the same key for
   * the render; a session that ends failed, aborted or expired is a permanent RenderStoreError. A wait longer than
   * `waitTimeoutMs` throws a RenderStoreError with status 202: completing again later with the same key is safe.
   */
  async completeUploadSession (projectId: string, videoId: string, uploadId: string, parts?: Array<{ partNumber: number, etag: string }>, options: CompleteOptions = {}): Promise<RenderVersion & Replayed> {
    const key = this.http.keyOf(options)
    const json = { ...(parts === undefined ? {} : { parts }), ...(options.sha256 === undefined ? {} : { sha256: options.sha256 }) }
    const spec: RequestSpec = { method: 'POST', path: `${videoPath(projectId, videoId)}/uploads/${segment(uploadId)}/complete`, json, allow: [202] }
    const deadline = Date.now() + (options.waitTimeoutMs ?? 15 * 60_000)
    for (;;) {
      let answer: Answer
      try {
        answer = await this.http.call(spec, { ...options, idempotencyKey: key })
      } catch (error) {
        // A repeat of a complete that is still running (the service before idempotency keys): wait for it as for a 202.
        if (!(error instanceof RenderStoreError) || error.status !== 409 || error.inProgress) throw error
        // A session that cannot be read leaves the 409 as the answer (thrown below).
        const now = await this.getUploadSession(projectId, videoId, uploadId, options).catch(() => undefined)
        if (now === undefined || (now.status !== 'uploading' && now.status !== 'completed')) throw error
        answer = { status: 202, headers: new Headers(), text: JSON.stringify(now), replayed: false }
      }
      if (answer.status !== 202) return { ...(JSON.parse(answer.text) as RenderVersion), replayed: answer.replayed }
      await awaitSession(this.http, `${videoPath(projectId, videoId)}/uploads/${segment(uploadId)}`, answer, deadline, { ...options, idempotencyKey: key }, this.options.retry)
    }
  }

  /** Aborts a session: `DELETE .../uploads/{uploadId}`. */
  async abortUploadSession (projectId: string, videoId: string, uploadId: string, options?: CallOptions): Promise<void> {
    await this.http.call({ method: 'DELETE', path: `${videoPath(projectId, videoId)}/uploads/${segment(uploadId)}` }, options)
  }

  // ---- progress and status

  /** Progress of the video's newest upload: `GET .../progress`. */
  async progress (projectId: string, videoId: string, options?: CallOptions): Promise<UploadProgress> {
    return this.http.json({ method: 'GET', path: `${videoPath(projectId, videoId)}/progress` }, options)
  }

  /** Video, upload, code and service status in one answer: `GET .../status`. */
  async status (projectId: string, videoId: string, options?: CallOptions): Promise<VideoStatusReport> {
    return this.http.json({ method: 'GET', path: `${videoPath(projectId, videoId)}/status` }, options)
  }
}

function videoPath (projectId: string, videoId: string): string {
  return `/v1/projects/${segment(projectId)}/videos/${segment(videoId)}`
}

function codePath (projectId: string, videoId: string, version: number | 'latest'): string {
  return version === 'latest' ? `${videoPath(projectId, videoId)}/code` : `${videoPath(projectId, videoId)}/code/versions/${version}`
}
