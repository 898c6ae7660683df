// The code-generator node: generates (or, editing, downloads and edits) the code, then stores it as a new version in
// render-store with baseVersion, so an edit made on a stale version is detected (409) and re-applied once.
// Each logical write carries one Idempotency-Key, kept in state: the client's retries and a human-loop `retry` send
// the same key, so a write whose answer was lost is answered from the service's record, never applied twice.
import { createHash, randomUUID } from 'node:crypto'
import type { LangGraphRunnableConfig } from '@langchain/langgraph'
import { RenderStoreError } from '../client/errors.js'
import type { RenderStoreClient } from '../client/render-store-client.js'
import { templateCodeEditor, templateCodeGenerator, type CodeEditor, type CodeGenerator } from './base-steps.js'
import type { AgentConfig, ServiceConfig, SystemConfig } from './config.js'
import { StorageAgent, type NodeRun } from './storage-agent.js'
import { describeFailure, failed } from './degradation.js'
import type { StepNote, VideoState, VideoStateUpdate } from './state.js'

/** What `code_upload_results` holds after this agent. */
export interface CodeUploadResults {
  version?: number
  key?: string
  filename?: string
  sha256?: string
  size_bytes?: number
  /** the stored version the edit was made on (absent for fresh code) */
  base_version?: number
  /** false when the content equalled the latest version, which the service answered instead */
  created?: boolean
  /** true when the service answered from its record of an earlier attempt with the same key (a lost answer) */
  replayed?: boolean
  locked?: boolean
  lock_warning?: string
  conflicts_resolved?: number
}

interface Draft {
  code: string
  filename: string
  baseVersion?: number
  /** the Idempotency-Key of storing this draft: one per logical write */
  key: string
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')

/** A 409 that says baseVersion is no longer the latest (not "the same key is still running", which has Retry-After). */
function isVersionConflict (error: unknown): error is RenderStoreError {
  return error instanceof RenderStoreError && error.status === 409 && !error.inProgress && typeof error.problem?.latestVersion === 'number'
}

export class EnhancedCodeGeneratorAgent extends StorageAgent {
  private readonly generate: CodeGenerator
  private readonly edit: CodeEditor

  constructor (agentConfig: AgentConfig, systemConfig: SystemConfig, serviceConfig: ServiceConfig = {}) {
    super(agentConfig, systemConfig, serviceConfig)
    this.generate = systemConfig.generateCode ?? templateCodeGenerator
    this.edit = systemConfig.editCode ?? templateCodeEditor
  }

  /** Code storage status, results, error and retry count from a state, with whether a service is configured. */
  getCodeManagementStatus (state: Partial<VideoState>): Record<string, unknown> {
    return {
      enabled: state.enable_aws_code_management === true && this.client !== undefined,
      service_url: this.client?.baseUrl,
      code_upload_status: state.code_upload_status ?? 'not_started',
      code_upload_results: state.code_upload_results ?? {},
      code_upload_error: state.code_upload_error,
      code_upload_retry_count: state.code_upload_retry_count ?? 0,
      code_idempotency_key: state.code_idempotency_key,
      version: state.version,
      current_version: state.current_version,
      editing_existing_video: state.editing_existing_video ?? false,
      object_lock_requested: state.enable_code_object_lock ?? false,
      awaiting_human: state.pending_intervention?.node === this.name
    }
  }

  readonly node = async (state: VideoState, config?: LangGraphRunnableConfig): Promise<VideoStateUpdate> => {
    const { run, choice, done } = this.begin(state, config, 'code_upload')
    if (done !== undefined) return done
    if (state.enable_aws_code_management !== true || this.client === undefined) {
      run.log.warn(this.client === undefined ? 'code store skipped: no render-store service configured' : 'code store skipped: enable_aws_code_management is false')
      return await this.offline(state, run)
    }
    const client = this.client
    const warnings: StepNote[] = []
    // On a retry the code made before the failure is stored as it is, with the same key: nothing is generated or
    // downloaded twice, and if the failed attempt did store it, the service answers that version again.
    const retrying = choice === 'retry' && state.generated_code !== undefined
    const draft = retrying ? this.pendingDraft(state) : await this.draft(client, state, warnings, run)
    return await this.store(client, state, draft, warnings, run)
  }

  /** Without the service: the base step alone, storage keys untouched. */
  private async offline (state: VideoState, run: NodeRun): Promise<VideoStateUpdate> {
    run.log.debug({ videoId: state.video_id, editing: state.editing_existing_video }, 'generating code without the service')
    const code = state.editing_existing_video && state.generated_code !== undefined && state.edit_instructions !== undefined
      ? { code: await this.edit(state.generated_code, state.edit_instructions), filename: state.code_filename ?? `${state.video_id}.py` }
      : await this.generate(this.request(state))
    return { generated_code: code.code, code_filename: code.filename, completed_steps: [this.name] }
  }

  private request (state: VideoState) {
    return { videoId: state.video_id, topic: state.topic, description: state.description, sceneCount: state.scene_count }
  }

  private pendingDraft (state: VideoState): Draft {
    const results = state.code_upload_results as CodeUploadResults
    return { code: state.generated_code as string, filename: state.code_filename ?? `${state.video_id}.py`, baseVersion: results.base_version, key: state.code_idempotency_key ?? randomUUID() }
  }

  /** Fresh code, or, when editing, the stored version edited; a missing version or an unreachable service starts fresh. */
  private async draft (client: RenderStoreClient, state: VideoState, warnings: StepNote[], run: NodeRun): Promise<Draft> {
    if (state.editing_existing_video) {
      const step = run.step()
      try {
        run.log.debug({ version: state.current_version ?? 'latest' }, 'downloading the code to edit')
        const current = await client.getCode(state.project_id, state.video_id, state.current_version ?? 'latest', { retry: this.retryPolicy(), signal: step.signal })
        const code = state.edit_instructions === undefined ? current.content : await this.edit(current.content, state.edit_instructions)
        return { code, filename: current.filename, baseVersion: current.version, key: randomUUID() }
      } catch (error) {
        const failure = step.failure(error)
        if (failure === undefined) throw error
        const reason = failure instanceof RenderStoreError && failure.status === 404 ? 'no stored code for this video' : `could not download the current code (${describeFailure(failure).message})`
        warnings.push({ step: this.name, message: `${reason}: generating fresh code instead` })
        run.log.warn(`${reason}: generating fresh code instead`)
      }
    }
    run.log.debug({ videoId: state.video_id, scenes: state.scene_count }, 'generating code')
    const fresh = await this.generate(this.request(state))
    return { code: fresh.code, filename: fresh.filename, key: randomUUID() }
  }

  private async store (client: RenderStoreClient, state: VideoState, draft: Draft, warnings: StepNote[], run: NodeRun): Promise<VideoStateUpdate> {
    let retries = 0
    const step = run.step()
    const options = { retry: { ...this.retryPolicy(), onRetry: (attempt: number, error: Error) => { retries++; run.log.debug({ attempt, err: error.message }, 'code store retried') } }, signal: step.signal }
    run.log.debug({ baseVersion: draft.baseVersion, bytes: Buffer.byteLength(draft.code) }, 'storing code')
    const message = state.editing_existing_video && state.edit_instructions !== undefined ? `edit: ${state.edit_instructions}` : `generated: ${state.topic}`
    const post = async (attempt: Draft) => await client.createCodeVersion(state.project_id, state.video_id, {
      content: attempt.code, filename: attempt.filename, language: 'python', message, baseVersion: attempt.baseVersion
    }, { ...options, idempotencyKey: attempt.key })
    let current = draft
    let conflicts = 0
    const generated = (): VideoStateUpdate => ({
      generated_code: current.code,
      code_filename: current.filename,
      code_upload_results: { base_version: current.baseVersion, sha256: sha256(current.code) } satisfies CodeUploadResults,
      code_upload_retry_count: state.code_upload_retry_count + retries,
      code_idempotency_key: current.key,
      pending_intervention: undefined,
      warnings
    })
    try {
      let stored
      try {
        stored = await post(current)
      } catch (error) {
        if (!isVersionConflict(error) || current.baseVersion === undefined) throw error
        // Someone else stored a version since ours was read (our own lost write is replayed under its key, never a
        // conflict): re-apply the edit on the latest, once, as a new logical write with its own key.
        conflicts++
        const latest = await client.getCode(state.project_id, state.video_id, 'latest', options)
        const code = state.edit_instructions === undefined ? current.code : await this.edit(latest.content, state.edit_instructions)
        warnings.push({ step: this.name, message: `version ${current.baseVersion} was no longer the latest (now ${latest.version}): edit re-applied on it` })
        current = { code, filename: latest.filename, baseVersion: latest.version, key: randomUUID() }
        stored = await post(current)
      }
      const results: CodeUploadResults = {
        version: stored.version,
        key: stored.key,
        filename: stored.filename,
        sha256: stored.sha256,
        size_bytes: stored.sizeBytes,
        base_version: current.baseVersion,
        created: stored.created,
        replayed: stored.replayed,
        conflicts_resolved: conflicts
      }
      run.log.debug({ version: stored.version, created: stored.created, replayed: stored.replayed, conflicts }, 'code stored')
      if (state.enable_code_object_lock) await this.lock(client, state, results, warnings, step.signal)
      return {
        ...generated(),
        code_upload_results: { ...results },
        code_upload_status: 'completed',
        code_upload_error: undefined,
        version: stored.version,
        current_version: stored.version,
        completed_steps: [this.name]
      }
    } catch (error) {
      const failure = step.failure(error)
      if (failure === undefined) {
        run.log.debug('code store aborted: the run was cancelled')
        throw error
      }
      run.log.warn({ err: failure }, 'code store failed')
      return failed('code_upload', this.name, failure, generated(), this.agentConfig, this.serviceConfig)
    }
  }

  /** A legal hold on the new version; a service without Object Lock answers 409, which is a warning, not a failure. */
  private async lock (client: RenderStoreClient, state: VideoState, results: CodeUploadResults, warnings: StepNote[], signal?: AbortSignal): Promise<void> {
    try {
      await client.lockCodeVersion(state.project_id, state.video_id, results.version as number, { legalHold: true }, { retry: this.retryPolicy(), signal })
      results.locked = true
    } catch (error) {
      results.locked = false
      results.lock_warning = describeFailure(error).message
      warnings.push({ step: this.name, message: `object lock not applied: ${results.lock_warning}` })
    }
  }
}
