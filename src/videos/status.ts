// The combined picture an agent asks for: video state, its newest upload, its latest code, and the dependencies.
import type { AwsClients } from '../aws/clients.js'
import type { Config } from '../config.js'
import type { HealthChecker } from '../health/checks.js'
import type { UploadSession, UploadSessions } from '../uploads/sessions.js'
import { readVideoRecord } from '../table/video-record.js'
import type { UploadProgressType, VideoStatusReportType } from '../../schemas/renders.js'

/** Percentage with one decimal; completed is always 100, unknown length is null. */
export function percentage (session: UploadSession): number | null {
  if (session.status === 'completed') return 100
  if (session.totalBytes === undefined || session.totalBytes === 0) return null
  return Math.min(100, Math.round((session.bytesUploaded / session.totalBytes) * 1000) / 10)
}

export function toProgress (session: UploadSession): UploadProgressType {
  return {
    videoId: session.videoId,
    uploadId: session.uploadId,
    bytesUploaded: session.bytesUploaded,
    totalBytes: session.totalBytes ?? null,
    percentage: percentage(session),
    status: session.status,
    ...(session.failureReason !== undefined ? { failureReason: session.failureReason } : {}),
    ...(session.lastError !== undefined && session.status !== 'completed' ? { lastError: session.lastError } : {})
  }
}

export function createVideoStatus ({ aws, config, sessions, health }: { aws: AwsClients, config: Config, sessions: UploadSessions, health: HealthChecker }) {
  /** The status of one video, or undefined when there is no such video. */
  async function get (projectId: string, videoId: string): Promise<VideoStatusReportType | undefined> {
    const [video, upload, readiness] = await Promise.all([
      readVideoRecord(aws.ddb, config.table, projectId, videoId),
      sessions.latest(projectId, videoId),
      health.readiness()
    ])
    if (video === undefined) return undefined
    return {
      video: {
        status: video.status ?? 'created',
        latestRenderVersion: video.latestRenderVersion ?? null,
        upload: upload === undefined
          ? null
          : {
              uploadId: upload.uploadId,
              status: upload.status,
              bytesUploaded: upload.bytesUploaded,
              totalBytes: upload.totalBytes ?? null,
              percentage: percentage(upload),
              ...(upload.lastError !== undefined ? { lastError: upload.lastError } : {}),
              ...(upload.failureReason !== undefined ? { failureReason: upload.failureReason } : {}),
              retryCount: upload.retryCount
            }
      },
      code: {
        latestVersion: video.latestCodeVersion ?? null,
        ...(typeof video.latestCodeSha256 === 'string' ? { latestSha256: video.latestCodeSha256 } : {})
      },
      services: readiness.services
    }
  }

  return { get }
}

/** The store behind GET .../status (app.videoStatus): it builds a VideoStatusReport. */
export type VideoStatusReader = ReturnType<typeof createVideoStatus>
