// A LangGraph.js checkpointer that keeps every checkpoint and pending write in render-store, over HTTP, so a run paused
// in interrupt() survives the agent process: any process with the thread id resumes it with Command({ resume }).
// Channel values travel apart from the checkpoint, one per channel version, and only for the channels a step changed
// (LangGraph's newVersions), as LangGraph's own Postgres saver does; a read puts them back.
import { randomUUID } from 'node:crypto'
import type { RunnableConfig } from '@langchain/core/runnables'
import {
  BaseCheckpointSaver, TASKS, WRITES_IDX_MAP, compareWritesSortKeys, copyCheckpoint, getCheckpointId, maxChannelVersion, writesSortKey,
  type ChannelVersions, type Checkpoint, type CheckpointListOptions, type CheckpointMetadata, type CheckpointPendingWrite, type CheckpointTuple,
  type PendingWrite, type SerializerProtocol
} from '@langchain/langgraph-checkpoint'
import { RenderStoreError, parseRetryAfter, type Problem } from '../client/errors.js'
import { withRetry, type RetryOptions } from '../client/retry.js'

export interface RenderStoreCheckpointSaverOptions {
  /** render-store's base URL */
  baseUrl: string
  apiKey?: string
  /** the project whose threads hold the checkpoints (default `default`) */
  projectId?: string
  /** time limit of one attempt of a call in ms (default 30000) */
  timeoutMs?: number
  /** backoff of every call (the client's: network errors, 429, 5xx; default 3 retries) */
  retry?: RetryOptions
  serde?: SerializerProtocol
}

/** What the service answers for one stored checkpoint (schemas/checkpoints.ts CheckpointRecord). */
interface WireCheckpoint {
  threadId: string
  checkpointNs: string
  checkpointId: string
  parentCheckpointId?: string
  checkpoint: { type: string, data: string }
  metadata: Record<string, unknown>
  channelVersions: Record<string, string | number>
  blobs: Array<{ channel: string, version: string, type: string, data: string }>
  pendingWrites: Array<{ taskId: string, idx: number, channel: string, taskPath: string, type: string, data: string }>
}

const ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/
const PAGE = 100

const toBase64 = (bytes: Uint8Array | string): string => Buffer.from(typeof bytes === 'string' ? Buffer.from(bytes) : bytes).toString('base64')
const fromBase64 = (data: string): Uint8Array => new Uint8Array(Buffer.from(data, 'base64'))

function requireId (what: string, value: unknown): string {
  if (typeof value !== 'string' || !ID.test(value)) {
    throw new Error(`RenderStoreCheckpointSaver: ${what} must be 1-128 letters, digits, '_' or '-' (starting with a letter or digit), not ${JSON.stringify(value)}`)
  }
  return value
}

export class RenderStoreCheckpointSaver extends BaseCheckpointSaver {
  readonly baseUrl: string
  readonly projectId: string
  private readonly options: RenderStoreCheckpointSaverOptions

  constructor (options: RenderStoreCheckpointSaverOptions) {
    super(options.serde)
    this.baseUrl = options.baseUrl.replace(/\/+$/, '')
    this.projectId = requireId('projectId', options.projectId ?? 'default')
    this.options = options
  }

  /**
   * Versions that no two branches of a thread share: the counter, zero-padded so they sort, and a random suffix, so a
   * fork from an earlier checkpoint never reuses a version (channel values are stored once per version).
   */
  override getNextVersion (current: number | undefined): number {
    const last = current === undefined ? 0 : typeof current === 'number' ? current : Number.parseInt(String(current).split('.')[0], 10)
    return `${String(last + 1).padStart(32, '0')}.${Math.random().toString().slice(2, 18).padEnd(16, '0')}` as unknown as number
  }

  async getTuple (config: RunnableConfig): Promise<CheckpointTuple | undefined> {
    const threadId = config.configurable?.thread_id as unknown
    if (threadId === undefined) return undefined
    const checkpointNs = String(config.configurable?.checkpoint_ns ?? '')
    const checkpointId = getCheckpointId(config)
    const wire = await this.fetchCheckpoint(requireId('thread_id', threadId), checkpointId === '' || checkpointId === undefined ? 'latest' : requireId('checkpoint_id', checkpointId), checkpointNs)
    return wire === undefined ? undefined : await this.toTuple(wire)
  }

  async * list (config: RunnableConfig, options: CheckpointListOptions = {}): AsyncGenerator<CheckpointTuple> {
    const { before, filter } = options
    let remaining = options.limit ?? Number.POSITIVE_INFINITY
    if (remaining <= 0) return
    const threadId = config.configurable?.thread_id as unknown
    const checkpointNs = config.configurable?.checkpoint_ns as string | undefined
    const onlyId = getCheckpointId(config)
    const beforeId = before?.configurable?.checkpoint_id as string | undefined
    const threads = threadId !== undefined ? oneThread(requireId('thread_id', threadId)) : this.threads()
    for await (const thread of threads) {
      let cursor: string | undefined
      do {
        const query: Record<string, string | number | undefined> = {
          checkpointNs, before: beforeId, filter: filter === undefined ? undefined : JSON.stringify(filter), limit: Math.min(PAGE, remaining), cursor
        }
        const page = await this.call<{ items: WireCheckpoint[], nextCursor: string | null }>('GET', `${this.threadPath(thread)}/checkpoints`, { query })
        for (const wire of page.items) {
          if (onlyId !== undefined && onlyId !== '' && wire.checkpointId !== onlyId) continue
          yield await this.toTuple(wire)
          if (--remaining <= 0) return
        }
        cursor = page.nextCursor ?? undefined
      } while (cursor !== undefined)
    }
  }

  async put (config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata, newVersions: ChannelVersions): Promise<RunnableConfig> {
    if (config.configurable === undefined) throw new Error('RenderStoreCheckpointSaver: put needs config.configurable with a thread_id')
    const threadId = requireId('thread_id', config.configurable.thread_id)
    const checkpointNs = String(config.configurable.checkpoint_ns ?? '')
    const parentCheckpointId = config.configurable.checkpoint_id as string | undefined
    const copy = copyCheckpoint(checkpoint)
    const checkpointId = requireId('checkpoint id', copy.id)
    const blobs = await Promise.all(Object.entries(newVersions).map(async ([channel, version]) => {
      if (!(channel in copy.channel_values)) return { channel, version: String(version), type: 'empty', data: '' }
      const [type, bytes] = await this.serde.dumpsTyped((copy.channel_values as Record<string, unknown>)[channel])
      return { channel, version: String(version), type, data: toBase64(bytes) }
    }))
    const [checkpointType, checkpointBytes] = await this.serde.dumpsTyped({ ...copy, channel_values: {} })
    const [, metadataBytes] = await this.serde.dumpsTyped(metadata)
    await this.call('PUT', `${this.threadPath(threadId)}/checkpoints/${checkpointId}`, {
      json: {
        checkpointNs,
        ...(parentCheckpointId !== undefined && parentCheckpointId !== '' ? { parentCheckpointId: requireId('checkpoint_id', parentCheckpointId) } : {}),
        checkpoint: { type: checkpointType, data: toBase64(checkpointBytes) },
        metadata: JSON.parse(Buffer.from(metadataBytes).toString('utf8')) as Record<string, unknown>,
        channelVersions: copy.channel_versions,
        blobs
      }
    })
    return { configurable: { thread_id: threadId, checkpoint_ns: checkpointNs, checkpoint_id: checkpointId } }
  }

  /** Idempotent: the service keeps the first write of each (task id, index); LangGraph's special writes are replaced. */
  async putWrites (config: RunnableConfig, writes: PendingWrite[], taskId: string, taskPath = ''): Promise<void> {
    const threadId = requireId('thread_id', config.configurable?.thread_id)
    const checkpointId = requireId('checkpoint_id', config.configurable?.checkpoint_id)
    if (writes.length === 0) return
    const checkpointNs = String(config.configurable?.checkpoint_ns ?? '')
    const serialized = await Promise.all(writes.map(async ([channel, value], idx) => {
      const [type, bytes] = await this.serde.dumpsTyped(value)
      return { idx: WRITES_IDX_MAP[channel] ?? idx, channel, type, data: toBase64(bytes) }
    }))
    await this.call('PUT', `${this.threadPath(threadId)}/checkpoints/${checkpointId}/writes/${requireId('task id', taskId)}`, { json: { checkpointNs, taskPath, writes: serialized } })
  }

  async deleteThread (threadId: string): Promise<void> {
    await this.call('DELETE', this.threadPath(requireId('thread_id', threadId)))
  }

  // ---- wire

  private threadPath (threadId: string): string {
    return `/v1/projects/${this.projectId}/threads/${threadId}`
  }

  private async * threads (): AsyncGenerator<string> {
    let cursor: string | undefined
    do {
      const page = await this.call<{ items: Array<{ threadId: string }>, nextCursor: string | null }>('GET', `/v1/projects/${this.projectId}/threads`, { query: { limit: PAGE, cursor } })
      for (const item of page.items) yield item.threadId
      cursor = page.nextCursor ?? undefined
    } while (cursor !== undefined)
  }

  private async fetchCheckpoint (threadId: string, checkpointId: string, checkpointNs: string): Promise<WireCheckpoint | undefined> {
    try {
      return await this.call<WireCheckpoint>('GET', `${this.threadPath(threadId)}/checkpoints/${checkpointId}`, { query: { checkpointNs } })
    } catch (error) {
      if (error instanceof RenderStoreError && error.status === 404) return undefined
      throw error
    }
  }

  private async toTuple (wire: WireCheckpoint): Promise<CheckpointTuple> {
    const checkpoint = await this.serde.loadsTyped(wire.checkpoint.type, fromBase64(wire.checkpoint.data)) as Checkpoint
    const values: Record<string, unknown> = {}
    for (const blob of wire.blobs) {
      if (String(wire.channelVersions[blob.channel]) === blob.version) values[blob.channel] = await this.serde.loadsTyped(blob.type, fromBase64(blob.data))
    }
    checkpoint.channel_values = values
    const ordered = [...wire.pendingWrites].sort((a, b) => compareWritesSortKeys(writesSortKey(a.taskPath, a.taskId, a.idx), writesSortKey(b.taskPath, b.taskId, b.idx)))
    const pendingWrites: CheckpointPendingWrite[] = await Promise.all(ordered.map(async (write) =>
      [write.taskId, write.channel, await this.serde.loadsTyped(write.type, fromBase64(write.data))] as CheckpointPendingWrite))
    const where = { thread_id: wire.threadId, checkpoint_ns: wire.checkpointNs }
    if (checkpoint.v < 4 && wire.parentCheckpointId !== undefined) await this.migratePendingSends(checkpoint, wire)
    return {
      config: { configurable: { ...where, checkpoint_id: wire.checkpointId } },
      checkpoint,
      metadata: await this.serde.loadsTyped('json', JSON.stringify(wire.metadata)) as CheckpointMetadata,
      pendingWrites,
      ...(wire.parentCheckpointId !== undefined ? { parentConfig: { configurable: { ...where, checkpoint_id: wire.parentCheckpointId } } } : {})
    }
  }

  /** Checkpoints before format 4 kept Send packets as the parent's writes: they become the TASKS channel, as in MemorySaver. */
  private async migratePendingSends (checkpoint: Checkpoint, wire: WireCheckpoint): Promise<void> {
    const parent = await this.fetchCheckpoint(wire.threadId, wire.parentCheckpointId as string, wire.checkpointNs)
    const sends = (parent?.pendingWrites ?? []).filter((write) => write.channel === TASKS)
      .sort((a, b) => compareWritesSortKeys(writesSortKey(a.taskPath, a.taskId, a.idx), writesSortKey(b.taskPath, b.taskId, b.idx)))
    const values = checkpoint.channel_values as Record<string, unknown>
    values[TASKS] = await Promise.all(sends.map(async (write) => await this.serde.loadsTyped(write.type, fromBase64(write.data))))
    const versions = checkpoint.channel_versions as Record<string, string | number>
    versions[TASKS] = Object.keys(versions).length > 0 ? maxChannelVersion(...Object.values(versions)) : this.getNextVersion(undefined)
  }

  /** One logical call, retried like the client's calls; a write carries one Idempotency-Key across its retries. */
  private async call<T = unknown> (method: string, path: string, spec: { json?: unknown, query?: Record<string, string | number | undefined> } = {}): Promise<T> {
    const key = method === 'GET' ? undefined : randomUUID()
    const text = await withRetry(async () => await this.attempt(method, path, spec, key), this.options.retry)
    return (text === '' ? undefined : JSON.parse(text)) as T
  }

  private async attempt (method: string, path: string, spec: { json?: unknown, query?: Record<string, string | number | undefined> }, idempotencyKey?: string): Promise<string> {
    const url = new URL(this.baseUrl + path)
    for (const [name, value] of Object.entries(spec.query ?? {})) if (value !== undefined) url.searchParams.set(name, String(value))
    const headers: Record<string, string> = { accept: 'application/json' }
    if (this.options.apiKey !== undefined) headers.authorization = `Bearer ${this.options.apiKey}`
    if (idempotencyKey !== undefined) headers['idempotency-key'] = idempotencyKey
    if (spec.json !== undefined) headers['content-type'] = 'application/json'
    const request = `${method} ${path}`
    let response: Response
    let text: string
    try {
      response = await fetch(url, { method, headers, body: spec.json === undefined ? undefined : JSON.stringify(spec.json), signal: AbortSignal.timeout(this.options.timeoutMs ?? 30_000) })
      text = await response.text()
    } catch (error) {
      throw new RenderStoreError(`${request}: no answer from render-store at ${this.baseUrl} (${(error as Error).message})`, { status: 0, request, cause: error, idempotencyKey })
    }
    if (response.ok) return text
    let problem: Problem | undefined
    try { problem = JSON.parse(text) as Problem } catch { problem = undefined }
    throw new RenderStoreError(`${request}: ${response.status} ${problem?.detail ?? problem?.title ?? text.slice(0, 200)}`, {
      status: response.status, request, problem, retryAfter: parseRetryAfter(response.headers.get('retry-after')), idempotencyKey
    })
  }
}

async function * oneThread (threadId: string): AsyncGenerator<string> {
  yield threadId
}
