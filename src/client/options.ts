// The options of the render-store client and of its calls.
import type { RetryOptions } from './retry.js'
import type { ProgressCallback } from './upload-body.js'
import type { DirectUploadDefaults } from './direct/upload.js'

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
