// The renderer node: renders with the base step, then streams the video and its scene clips to render-store.
// Only the upload is retried (network errors, 429, 5xx, with backoff), never the render. Each file's upload carries
// one Idempotency-Key, kept in state, so neither the client's retries nor a human-loop `retry` can make a second
// render version after a lost answer: the service answers the first attempt's version again.
import { createHash, randomUUID } from 'node:crypto'
import { stat } from 'node:fs/promises'
import type { LangGraphRunnableConfig } from '@langchain/langgraph'
import type { RenderStoreClient } from '../client/render-store-client.js'
import { percentageOf } from '../client/upload-body.js'
import { fixtureRenderer, type Renderer } from './base-steps.js'
import type { AgentConfig, ServiceConfig, SystemConfig } from './config.js'
import { StorageAgent, type NodeRun } from './storage-agent.js'
import { failed } from './degradation.js'
import type { VideoState, VideoStateUpdate } from './state.js'

/** Told as bytes of a video's files go out, across the video and its scene clips. */
export type UploadProgressCallback = (videoId: string, bytesUploaded: number, totalBytes: number, percentage: number) => void

export interface UploadProgressSnapshot {
  bytesUploaded: number
  totalBytes: number
  percentage: number
  status: 'uploading' | 'completed' | 'failed'
}

/** What the renderer writes to LangGraph's custom stream (`streamMode: 'custom'`) as bytes go out. */
export interface UploadProgressEvent {
  type: 'upload_progress'
  node: string
  video_id: string
  bytes_uploaded: number
  total_bytes: number
  percentage: number
  status: UploadProgressSnapshot['status']
}

/** What `aws_upload_results` holds after this agent. */
export interface RenderUploadResults {
  render_version?: number
  video_key?: string
  video_bucket?: string
  video_sha256?: string
  video_size_bytes?: number
  download_url?: string
  /** true when the service answered from its record of an earlier attempt with the same key (a lost answer) */
  replayed?: boolean
  /** the local file that was uploaded, so a resumed run does not send it again */
  source_path?: string
  scenes?: Record<string, { key?: string, sha256?: string, source_path: string }>
}

export class EnhancedRendererAgent extends StorageAgent {
  private readonly render: Renderer
  private readonly callbacks: UploadProgressCallback[] = []
  private readonly progress = new Map<string, UploadProgressSnapshot>()

  constructor (agentConfig: AgentConfig, systemConfig: SystemConfig, serviceConfig: ServiceConfig = {}) {
    super(agentConfig, systemConfig, serviceConfig)
    this.render = systemConfig.render ?? fixtureRenderer()
  }

  /** Registers a callback told `(videoId, bytesUploaded, totalBytes, percentage)` as uploads progress. */
  addUploadProgressCallback (callback: UploadProgressCallback): void {
    this.callbacks.push(callback)
  }

  /** The latest upload progress of a video in this agent, if any upload started. */
  getUploadProgress (videoId: string): UploadProgressSnapshot | undefined {
    return this.progress.get(videoId)
  }

  /** Upload status, results, error and retry count from a state, with whether a service is configured. */
  getUploadStatus (state: Partial<VideoState>): Record<string, unknown> {
    return {
      enabled: state.enable_aws_upload === true && this.client !== undefined,
      service_url: this.client?.baseUrl,
      upload_status: state.upload_status ?? 'not_started',
      upload_results: state.aws_upload_results ?? {},
      upload_error: state.upload_error,
      upload_retry_count: state.upload_retry_count ?? 0,
      upload_idempotency_keys: state.upload_idempotency_keys ?? {},
      progress: state.video_id !== undefined ? this.progress.get(state.video_id) : undefined,
      awaiting_human: state.pending_intervention?.node === this.name
    }
  }

  readonly node = async (state: VideoState, config?: LangGraphRunnableConfig): Promise<VideoStateUpdate> => {
    const { run, choice, done } = this.begin(state, config, 'upload')
    if (done !== undefined) return done

    const rendered = await this.renderOnce(state, run)
    const current = { ...state, ...rendered } as VideoState
    if (current.enable_aws_upload !== true || this.client === undefined) {
      run.log.warn(this.client === undefined ? 'upload skipped: no render-store service configured' : 'upload skipped: enable_aws_upload is false')
      return { ...rendered, completed_steps: [this.name] }
    }
    // A person's `retry` repeats the same logical uploads (same keys); any other run makes new ones.
    const keys = choice === 'retry' ? { ...state.upload_idempotency_keys } : {}
    return { ...rendered, ...await this.upload(this.client, current, keys, run) }
  }

  private async renderOnce (state: VideoState, run: NodeRun): Promise<VideoStateUpdate> {
    if (state.generated_code === undefined) throw new Error(`${this.name}: no generated_code to render`)
    const codeSha = createHash('sha256').update(state.generated_code).digest('hex')
    // A retry after a failed upload comes back here: the render of this code is already on disk.
    if (state.rendered_video_path !== undefined && state.rendered_code_sha256 === codeSha) {
      run.log.debug({ path: state.rendered_video_path }, 'render of this code already on disk: not rendered again')
      return {}
    }
    run.log.debug({ videoId: state.video_id, version: state.version, scenes: state.scene_count }, 'rendering')
    const video = await this.render({
      code: state.generated_code,
      videoId: state.video_id === '' ? 'video' : state.video_id,
      version: state.version,
      sceneCount: state.scene_count,
      outputDir: this.systemConfig.outputDir
    })
    run.log.debug({ path: video.videoPath, sceneClips: video.sceneClipPaths.length }, 'rendered')
    return {
      rendered_video_path: video.videoPath,
      scene_clip_paths: video.sceneClipPaths,
      render_duration_seconds: video.durationSeconds,
      render_resolution: video.resolution,
      rendered_code_sha256: codeSha
    }
  }

  private async upload (client: RenderStoreClient, state: VideoState, keys: Record<string, string>, run: NodeRun): Promise<VideoStateUpdate> {
    const videoPath = state.rendered_video_path as string
    const previous = state.aws_upload_results as RenderUploadResults
    const results: RenderUploadResults = previous.source_path === videoPath ? { ...previous, scenes: { ...previous.scenes } } : { scenes: {} }
    const scenes = state.scene_clip_paths.map((path, index) => ({ path, sceneNumber: index + 1 }))
      .filter(({ path, sceneNumber }) => results.scenes?.[sceneNumber]?.source_path !== path)
    const files = [...(results.render_version === undefined ? [videoPath] : []), ...scenes.map((scene) => scene.path)]
    const sizes = await Promise.all(files.map(async (path) => (await stat(path)).size))
    const meter = this.meter(state.video_id, sizes.reduce((sum, size) => sum + size, 0), run)
    run.log.debug({ videoId: state.video_id, files: files.length, bytes: sizes.reduce((sum, size) => sum + size, 0), resumed: files.length < 1 + state.scene_clip_paths.length }, 'uploading')
    let retries = 0
    const keyOf = (name: string): string => (keys[name] ??= randomUUID())
    let step = run.step()
    const callOptions = (name: string) => {
      step = run.step()
      return {
        retry: { ...this.retryPolicy(), onRetry: (attempt: number, error: Error) => { retries++; run.log.debug({ file: name, attempt, err: error.message }, 'upload retried') } },
        onProgress: (bytes: number) => { meter.report(bytes) },
        idempotencyKey: keyOf(name),
        signal: step.signal
      }
    }
    const progressState = (): VideoStateUpdate => ({
      aws_upload_results: { ...results }, upload_retry_count: state.upload_retry_count + retries, upload_idempotency_keys: { ...keys }, pending_intervention: undefined
    })
    try {
      let index = 0
      if (results.render_version === undefined) {
        const render = await client.uploadRender(state.project_id, state.video_id, videoPath, {
          ...callOptions('video'), title: state.topic || undefined, resolution: state.render_resolution, durationSeconds: state.render_duration_seconds
        })
        meter.done(index++, sizes[0])
        run.log.debug({ renderVersion: render.version, replayed: render.replayed }, 'render uploaded')
        Object.assign(results, {
          render_version: render.version,
          video_key: render.key,
          video_bucket: render.bucket,
          video_sha256: render.sha256,
          video_size_bytes: render.sizeBytes,
          download_url: render.downloadUrl,
          replayed: render.replayed,
          source_path: videoPath
        })
      }
      for (const scene of scenes) {
        const clip = await client.uploadScene(state.project_id, state.video_id, results.render_version as number, scene.sceneNumber, scene.path, callOptions(`scene-${scene.sceneNumber}`))
        meter.done(index, sizes[index++])
        run.log.debug({ renderVersion: results.render_version, scene: scene.sceneNumber }, 'scene clip uploaded')
        results.scenes = { ...results.scenes, [scene.sceneNumber]: { key: clip.key, sha256: clip.sha256, source_path: scene.path } }
      }
    } catch (error) {
      meter.fail()
      const failure = step.failure(error)
      // The run was cancelled (config.signal): no failure to record or ask about, the run ends here.
      if (failure === undefined) {
        run.log.debug('upload aborted: the run was cancelled')
        throw error
      }
      run.log.warn({ err: failure }, 'upload failed')
      return failed('upload', this.name, failure, progressState(), this.agentConfig, this.serviceConfig)
    }
    meter.complete()
    return { ...progressState(), upload_status: 'completed', upload_error: undefined, completed_steps: [this.name] }
  }

  /** Progress across all files of one upload run, never going backwards when a retry starts a file again. */
  private meter (videoId: string, totalBytes: number, run: NodeRun) {
    const doneBytes: number[] = []
    let reported = -1
    const emit = (bytes: number, status: UploadProgressSnapshot['status']): void => {
      const percentage = percentageOf(bytes, totalBytes)
      this.progress.set(videoId, { bytesUploaded: bytes, totalBytes, percentage, status })
      if (bytes <= reported) return
      reported = bytes
      for (const callback of this.callbacks) callback(videoId, bytes, totalBytes, percentage)
      run.write({ type: 'upload_progress', node: this.name, video_id: videoId, bytes_uploaded: bytes, total_bytes: totalBytes, percentage, status } satisfies UploadProgressEvent)
    }
    const finished = (): number => doneBytes.reduce((sum, size) => sum + (size ?? 0), 0)
    return {
      report: (bytes: number) => { emit(finished() + bytes, 'uploading') },
      done: (index: number, size: number) => { doneBytes[index] = size },
      fail: () => { const last = this.progress.get(videoId); this.progress.set(videoId, { ...(last ?? { bytesUploaded: 0, totalBytes, percentage: 0 }), status: 'failed' }) },
      complete: () => { emit(totalBytes, 'completed'); this.progress.set(videoId, { bytesUploaded: totalBytes, totalBytes, percentage: 100, status: 'completed' }) }
    }
  }
}
