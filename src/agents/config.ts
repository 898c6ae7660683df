// The three configurations an enhanced agent takes, after the reference system: agent, system, service.
import { pino, type Logger } from 'pino'
import { RenderStoreClient } from '../client/render-store-client.js'
import type { RetryOptions } from '../client/retry.js'
import type { DirectUploadDefaults } from '../client/direct/upload.js'
import type { CodeEditor, CodeGenerator, Renderer } from './base-steps.js'

export interface AgentConfig {
  name: string
  /** false: the node passes the state through untouched */
  enabled?: boolean
  /** on an unrecoverable storage failure, interrupt the graph and ask: retry, skip or abort */
  enableHumanLoop?: boolean
  /**
   * the seed's timeout_seconds: the longest one storage step (a code store, one file's upload, with its retries) may
   * take; past it the step is aborted and counts as a storage failure (none by default)
   */
  timeoutSeconds?: number
  /** the seed's max_retries: retries of each storage call (the service config's retry.retries otherwise, default 3) */
  maxRetries?: number
  /** where the agent logs: a child per node run, with agent, node, run id and thread id bound (silent by default) */
  logger?: Logger
}

export interface SystemConfig {
  /** where rendered files are written */
  outputDir: string
  generateCode?: CodeGenerator
  editCode?: CodeEditor
  render?: Renderer
}

export interface ServiceConfig {
  /** render-store's base URL; without it (and without `client`) the agents never call the service */
  baseUrl?: string
  apiKey?: string
  /** a ready client, shared between agents (wins over baseUrl) */
  client?: RenderStoreClient
  /** true: a storage failure after the retries fails the run; false (default): the run goes on, 'failed_graceful' */
  requireAwsUpload?: boolean
  /** backoff of uploads and code stores (default 1 s initial, x2, full jitter, 3 retries) */
  retry?: RetryOptions
  /** upload read size; progress is reported per chunk */
  uploadChunkBytes?: number
  /** time limit of one attempt of a JSON call in ms (the client's timeoutMs, default 30000); uploads are bounded by timeoutSeconds */
  timeoutMs?: number
  /**
   * renders of at least `directUpload.thresholdBytes` go straight to S3 in parallel parts through a resumable direct
   * session (the client's option; off by default: the agent's machine must reach S3); a retry of the node resumes it
   */
  directUpload?: DirectUploadDefaults
}

/** The service client of a configuration, or undefined when no service is configured. */
export function serviceClient (config: ServiceConfig): RenderStoreClient | undefined {
  if (config.client !== undefined) return config.client
  if (config.baseUrl === undefined || config.baseUrl === '') return undefined
  return new RenderStoreClient({ baseUrl: config.baseUrl, apiKey: config.apiKey, retry: config.retry, uploadChunkBytes: config.uploadChunkBytes, timeoutMs: config.timeoutMs, directUpload: config.directUpload })
}

/** The logger of an agent config: its own, or a silent one. */
export function agentLogger (config: AgentConfig): Logger {
  return config.logger ?? pino({ level: 'silent' })
}
