// The client's HTTP transport: one logical call with its retries and Idempotency-Key, one attempt, and the
// problem+json of a failed answer as a RenderStoreError.
import { randomUUID } from 'node:crypto'
import { RenderStoreError, parseRetryAfter, type Problem } from './errors.js'
import { withRetry, type RetryOptions } from './retry.js'
import { openSource, type ProgressCallback, type UploadSource } from './upload-body.js'
import type { CallOptions, RenderStoreClientOptions, UploadOptions } from './options.js'

export interface RequestSpec {
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

export interface Answer { status: number, headers: Headers, text: string, replayed: boolean }

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])
const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/

export class Transport {
  readonly baseUrl: string
  private readonly options: RenderStoreClientOptions

  constructor (baseUrl: string, options: RenderStoreClientOptions) {
    this.baseUrl = baseUrl
    this.options = options
  }

  async upload (method: string, path: string, source: UploadSource, options: UploadOptions, extraHeaders: Record<string, string> = {}): Promise<Answer> {
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

  async json<T> (spec: RequestSpec, options?: CallOptions): Promise<T> {
    return JSON.parse((await this.call(spec, options)).text) as T
  }

  /** The caller's Idempotency-Key, checked, or a new one. */
  keyOf (options: CallOptions): string {
    const key = options.idempotencyKey ?? randomUUID()
    if (!KEY_PATTERN.test(key)) throw new RangeError(`idempotencyKey must be 1-255 visible ASCII characters, not ${JSON.stringify(key)}`)
    return key
  }

  /** One logical call: a write gets its Idempotency-Key here, once, and every retry sends that same key. */
  async call (spec: RequestSpec, options: CallOptions = {}): Promise<Answer> {
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
