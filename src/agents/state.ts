// The video-generation state: the reference system's documented keys (snake_case, so a ported graph keeps working)
// plus the render and code outputs the enhanced agents act on.
import { Annotation } from '@langchain/langgraph'

export type UploadStatus = 'not_started' | 'completed' | 'failed' | 'failed_graceful'
export type HumanChoice = 'retry' | 'skip' | 'abort'

/** A failure waiting for a person: set before the node interrupts, so a resume knows what already succeeded. */
export interface PendingIntervention {
  node: string
  error: string
  status: number
  choices: HumanChoice[]
}

export interface StepNote {
  step: string
  message: string
}

const last = <T>(fallback: () => T) => Annotation<T>({ reducer: (_previous: T, next: T) => next, default: fallback })
const appended = <T>() => Annotation<T[]>({ reducer: (previous: T[], next: T[]) => previous.concat(next), default: () => [] })

export const VideoGenerationState = Annotation.Root({
  // what to make
  topic: last<string>(() => ''),
  description: last<string>(() => ''),
  edit_instructions: last<string | undefined>(() => undefined),
  scene_count: last<number>(() => 1),

  // storage switches: on by default, as in the reference system; without a service configured the agents call nothing
  enable_aws_upload: last<boolean>(() => true),
  enable_aws_code_management: last<boolean>(() => true),
  enable_code_object_lock: last<boolean>(() => false),

  // identity and versions
  project_id: last<string>(() => 'default'),
  video_id: last<string>(() => ''),
  /** the code version this run produced (or worked on) */
  version: last<number>(() => 1),
  /** the code version an edit starts from (latest when editing and not set) */
  current_version: last<number | undefined>(() => undefined),
  editing_existing_video: last<boolean>(() => false),

  // code outputs
  generated_code: last<string | undefined>(() => undefined),
  code_filename: last<string | undefined>(() => undefined),

  // render outputs
  rendered_video_path: last<string | undefined>(() => undefined),
  scene_clip_paths: last<string[]>(() => []),
  render_duration_seconds: last<number | undefined>(() => undefined),
  render_resolution: last<string | undefined>(() => undefined),
  /** SHA-256 of the code the render on disk was made from, so a retried upload never renders again */
  rendered_code_sha256: last<string | undefined>(() => undefined),

  // storage results
  aws_upload_results: last<Record<string, unknown>>(() => ({})),
  code_upload_results: last<Record<string, unknown>>(() => ({})),
  upload_status: last<UploadStatus>(() => 'not_started'),
  code_upload_status: last<UploadStatus>(() => 'not_started'),
  upload_retry_count: last<number>(() => 0),
  code_upload_retry_count: last<number>(() => 0),
  upload_error: last<string | undefined>(() => undefined),
  code_upload_error: last<string | undefined>(() => undefined),
  pending_intervention: last<PendingIntervention | undefined>(() => undefined),
  /**
   * Idempotency-Key of the code write this run is making: kept while it is pending, so a human-loop `retry` sends the
   * same key and the service answers the first attempt's result instead of storing the code a second time
   */
  code_idempotency_key: last<string | undefined>(() => undefined),
  /** Idempotency-Keys of this run's render uploads (`video`, `scene-{n}`), kept for a `retry` as code_idempotency_key */
  upload_idempotency_keys: last<Record<string, string>>(() => ({})),

  // run log
  errors: appended<StepNote>(),
  warnings: appended<StepNote>(),
  completed_steps: appended<string>()
})

export type VideoState = typeof VideoGenerationState.State
export type VideoStateUpdate = typeof VideoGenerationState.Update

const APPENDED = new Set(['errors', 'warnings', 'completed_steps'])

/** Applies a node's update to a state the way the graph's reducers do, for `execute(state)` outside a graph. */
export function applyUpdate (state: Partial<VideoState>, update: VideoStateUpdate): VideoState {
  const next: Record<string, unknown> = { ...initialState(), ...state }
  for (const [key, value] of Object.entries(update)) {
    next[key] = APPENDED.has(key) ? [...(next[key] as unknown[] ?? []), ...(value as unknown[])] : value
  }
  return next as VideoState
}

/** Every key at its default, as a graph starts. */
export function initialState (): VideoState {
  const defaults: Record<string, unknown> = {}
  for (const [key, channel] of Object.entries(VideoGenerationState.spec)) {
    defaults[key] = (channel as unknown as { initialValueFactory?: () => unknown }).initialValueFactory?.()
  }
  return defaults as VideoState
}
