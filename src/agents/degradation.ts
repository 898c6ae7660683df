// What a storage failure does to a run: fail it (uploads required), ask a person (human loop), or go on degraded.
import { interrupt } from '@langchain/langgraph'
import { RenderStoreError } from '../client/errors.js'
import type { AgentConfig, ServiceConfig } from './config.js'
import type { HumanChoice, PendingIntervention, VideoState, VideoStateUpdate } from './state.js'

export const HUMAN_CHOICES: HumanChoice[] = ['retry', 'skip', 'abort']

/** What the graph's interrupt carries to the person deciding. */
export interface InterventionRequest {
  node: string
  error: string
  status: number
  choices: HumanChoice[]
}

/** Thrown when storage is required and failed after its retries: the run fails. */
export class StorageRequiredError extends Error {
  override name = 'StorageRequiredError'
}

/** Thrown when a person chose `abort`. */
export class RunAbortedError extends Error {
  override name = 'RunAbortedError'
}

export type StorageKind = 'upload' | 'code_upload'

/** The message and HTTP status (0 for no answer) of any failure. */
export function describeFailure (error: unknown): { message: string, status: number } {
  if (error instanceof RenderStoreError) return { message: error.message, status: error.status }
  return { message: error instanceof Error ? error.message : String(error), status: 0 }
}

/**
 * When this node left a failure for a person, asks through `interrupt()` (the node is run again from the top on
 * resume, so this comes before any work) and answers the choice; `abort` throws. Undefined when nothing is pending.
 */
export function awaitHumanChoice (state: VideoState, node: string): HumanChoice | undefined {
  const pending = state.pending_intervention
  if (pending?.node !== node) return undefined
  const choice = interrupt<InterventionRequest, unknown>({ node, error: pending.error, status: pending.status, choices: pending.choices })
  if (choice === 'abort') throw new RunAbortedError(`${node}: aborted by a person after: ${pending.error}`)
  if (choice === 'skip' || choice === 'retry') return choice
  throw new Error(`${node}: resume with one of ${HUMAN_CHOICES.join(', ')}, not ${JSON.stringify(choice)}`)
}

/** The state after a person chose `skip`: degraded, error kept, nothing uploaded again. */
export function skipped (kind: StorageKind, node: string, state: VideoState): VideoStateUpdate {
  const error = kind === 'upload' ? state.upload_error : state.code_upload_error
  return {
    pending_intervention: undefined,
    [`${kind}_status`]: 'failed_graceful',
    warnings: [{ step: node, message: `skipped by a person after: ${error ?? 'a storage failure'}` }],
    completed_steps: [node]
  }
}

/**
 * The state after a storage step failed for good. `progress` is what already succeeded, kept in state so that a retry
 * (human loop) skips it. Throws StorageRequiredError when the service configuration requires storage.
 */
export function failed (kind: StorageKind, node: string, error: unknown, progress: VideoStateUpdate,
  agentConfig: AgentConfig, serviceConfig: ServiceConfig): VideoStateUpdate {
  const { message, status } = describeFailure(error)
  if (serviceConfig.requireAwsUpload === true) throw new StorageRequiredError(`${node}: ${kind.replace('_', ' ')} required and failed: ${message}`, { cause: error })
  const base: VideoStateUpdate = {
    ...progress,
    [`${kind}_error`]: message,
    errors: [{ step: node, message }]
  }
  if (agentConfig.enableHumanLoop === true) {
    const pending: PendingIntervention = { node, error: message, status, choices: HUMAN_CHOICES }
    return { ...base, [`${kind}_status`]: 'failed', pending_intervention: pending }
  }
  return { ...base, [`${kind}_status`]: 'failed_graceful', completed_steps: [node] }
}

/** The edge after an enhanced node: back to itself while a person must decide, else on. */
export function routeAfter (node: string, next: string): (state: VideoState) => string {
  return (state) => state.pending_intervention?.node === node ? node : next
}
