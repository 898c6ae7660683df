import type { LangGraphRunnableConfig } from '@langchain/langgraph'
import type { Logger } from 'pino'
import type { RenderStoreClient } from '../client/index.js'
import type { RetryOptions } from '../client/retry.js'
import { agentLogger, serviceClient, type AgentConfig, type ServiceConfig, type SystemConfig } from './config.js'
import { awaitHumanChoice, routeAfter, skipped, type StorageKind } from './degradation.js'
import { applyUpdate, type HumanChoice, type VideoState, type VideoStateUpdate } from './state.js'

/** What a node run gets from LangGraph's config: its logger, its cancellation, its stream writer. */
export interface NodeRun {
  /** the agent's logger with node, run id and thread id bound */
  log: Logger
  /** the run's cancellation (LangGraph's config.signal): aborting it aborts the storage call in flight */
  signal?: AbortSignal
  /** LangGraph's custom stream (streamMode 'custom'); a no-op outside a graph */
  write: (chunk: unknown) => void
  /** the signal of one storage step: the run's, bounded by the agent's timeoutSeconds */
  step: () => StorageStep
}

export interface StorageStep {
  signal?: AbortSignal
  /** what to throw or record for a failure of this step: a timeout named as such; undefined when the run was cancelled */
  failure: (error: unknown) => unknown
}

/** The error a storage step that ran past timeoutSeconds fails with. */
export class StorageTimeoutError extends Error {
  override name = 'StorageTimeoutError'
}

/** What both enhanced agents share: their configs, the service client, and use as a graph node or on its own. */
export abstract class StorageAgent {
  readonly name: string
  protected readonly client?: RenderStoreClient
  protected readonly log: Logger

  constructor (readonly agentConfig: AgentConfig, readonly systemConfig: SystemConfig, readonly serviceConfig: ServiceConfig = {}) {
    this.name = agentConfig.name
    this.client = serviceClient(serviceConfig)
    this.log = agentLogger(agentConfig).child({ agent: this.name })
  }

  /** The graph node: `graph.addNode(agent.name, agent.node)`; LangGraph passes its config second. */
  abstract readonly node: (state: VideoState, config?: LangGraphRunnableConfig) => Promise<VideoStateUpdate>

  /**
   * Runs the node on a plain state (outside a graph) and answers the new state. With the human loop, a failure comes
   * back as `pending_intervention`; asking and resuming need the graph (interrupt needs a checkpointer).
   */
  async execute (state: Partial<VideoState>, config?: LangGraphRunnableConfig): Promise<VideoState> {
    const full = applyUpdate(state, {})
    return applyUpdate(full, await this.node(full, config))
  }

  /** The edge after this node for `addConditionalEdges`: itself while a person must decide, else `next`. */
  route (next: string): (state: VideoState) => string {
    return routeAfter(this.name, next)
  }

  /** The retry policy of storage calls: the service config's, with the agent's maxRetries. */
  protected retryPolicy (): RetryOptions {
    return { ...this.serviceConfig.retry, ...(this.agentConfig.maxRetries !== undefined ? { retries: this.agentConfig.maxRetries } : {}) }
  }

  /**
   * The start both nodes share: the node run, a disabled agent (the state passes through), and a person's answer to
   * an earlier failure of this node (skip ends the step here; retry and abort go on with `choice`).
   */
  protected begin (state: VideoState, config: LangGraphRunnableConfig | undefined, kind: StorageKind): { run: NodeRun, choice?: HumanChoice, done?: VideoStateUpdate } {
    const run = this.nodeRun(config)
    if (this.agentConfig.enabled === false) {
      run.log.warn('agent disabled: state passed through')
      return { run, done: {} }
    }
    const choice = awaitHumanChoice(state, this.name)
    if (choice === 'skip') {
      run.log.warn({ error: kind === 'upload' ? state.upload_error : state.code_upload_error }, `${kind === 'upload' ? 'upload' : 'code store'} skipped by a person`)
      return { run, choice, done: skipped(kind, this.name, state) }
    }
    if (choice !== undefined) run.log.debug({ choice }, 'a person answered')
    return { run, choice }
  }

  protected nodeRun (config?: LangGraphRunnableConfig): NodeRun {
    const info = config?.executionInfo
    const threadId = info?.threadId ?? (config?.configurable?.thread_id as string | undefined)
    // LangGraph does not hand its run id to nodes (executionInfo.runId stays empty for a graph run), so the run id is
    // the caller's: `configurable.run_id` (or `metadata.run_id`) of the invoke/stream config. The task id names this
    // node run in any case, and the checkpoint id the step it belongs to.
    const given = info?.runId ?? config?.runId ?? config?.configurable?.run_id ?? config?.metadata?.run_id
    const runId = given === undefined || given === null ? undefined : String(given)
    const log = this.log.child({ node: this.name, runId, threadId, taskId: info?.taskId, checkpointId: info?.checkpointId })
    const signal = config?.signal
    const timeoutMs = this.agentConfig.timeoutSeconds === undefined ? undefined : this.agentConfig.timeoutSeconds * 1000
    const writer = config?.writer
    return {
      log,
      signal,
      write: (chunk) => { if (typeof writer === 'function') writer(chunk) },
      step: () => {
        const timeout = timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs)
        const signals = [signal, timeout].filter((s): s is AbortSignal => s !== undefined)
        return {
          signal: signals.length === 0 ? undefined : signals.length === 1 ? signals[0] : AbortSignal.any(signals),
          failure: (error) => {
            if (signal?.aborted === true) return undefined
            if (timeout?.aborted === true) return new StorageTimeoutError(`${this.name}: storage step timed out after ${this.agentConfig.timeoutSeconds ?? 0} s`, { cause: error })
            return error
          }
        }
      }
    }
  }
}
