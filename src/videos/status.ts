// The combined picture an agent asks for: video state, its newest upload, its latest code, and the dependencies.
import { GetCommand } from '@aws-sdk/lib-dynamodb'
import type { AwsClients } from '../aws/clients.js'
import type { Config } from '../config.js'
import type { HealthChecker } from '../health/checks.js'
import type { UploadSession, UploadSessions } from '../uploads/sessions.js'
import { videoKey } from '../table/video-item.js'
import type { UploadProgressType, VideoStatusType } from '../../schemas/renders.js'

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
  async function get (projectId: string, videoId: string): Promise<VideoStatusType | undefined> {
    const [{ Item: video }, upload, readiness] = await Promise.all([
      aws.ddb.send(new GetCommand({ TableName: config.table, Key: videoKey(projectId, videoId), ConsistentRead: true })),
      sessions.latest(projectId, videoId),
      health.readiness()
    ])
    if (video === undefined) return undefined
    return {
      video: {
        status: String(video.status ?? 'created'),
        latestRenderVersion: (video.latestRenderVersion as number | undefined) ?? null,
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
        latestVersion: (video.latestCodeVersion as number | undefined) ?? null,
        ...(typeof video.latestCodeSha256 === 'string' ? { latestSha256: video.latestCodeSha256 } : {})
      },
      services: readiness.services
    }
  }

  return { get }
}

export type VideoStatus = ReturnType<typeof createVideoStatus>
