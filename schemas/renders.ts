import { Type, type Static } from 'typebox'
import { ProjectId, UploadStatus, VersionParam, VideoId } from './common.js'
import { Readiness } from './health.js'

export const RenderParams = Type.Object({ projectId: ProjectId, videoId: VideoId, version: VersionParam }, { $id: 'RenderParams' })
export type RenderParamsType = Static<typeof RenderParams>

export const SceneParams = Type.Object({
  projectId: ProjectId,
  videoId: VideoId,
  version: VersionParam,
  sceneNumber: Type.Integer({ minimum: 1, maximum: 99999, description: 'scene number, from 1' })
}, { $id: 'SceneParams' })
export type SceneParamsType = Static<typeof SceneParams>

const Sha256 = Type.String({ pattern: '^[0-9a-f]{64}$', description: 'SHA-256 of the bytes, hex' })
const Url = Type.String({ description: 'presigned GET URL' })
const ExpiresAt = Type.String({ format: 'date-time', description: 'when downloadUrl stops working' })

/** The multipart form of an upload, for the document only: the body is streamed, not parsed by the schema. */
export const RenderUploadForm = Type.Object({
  title: Type.Optional(Type.String({ maxLength: 500 })),
  durationSeconds: Type.Optional(Type.Number({ minimum: 0 })),
  resolution: Type.Optional(Type.String({ maxLength: 32, examples: ['1920x1080'] })),
  metadata: Type.Optional(Type.String({ description: 'JSON object kept on the render record' })),
  file: Type.String({ format: 'binary', description: 'the video (MP4, MOV, WebM, MKV or AVI); must be the last part' })
}, { description: 'fields first, then the file part' })

export const RenderUploadHeaders = Type.Object({
  'x-title': Type.Optional(Type.String({ maxLength: 500, description: 'raw uploads: the title' })),
  'x-duration-seconds': Type.Optional(Type.Number({ minimum: 0, description: 'raw uploads: duration in seconds' })),
  'x-resolution': Type.Optional(Type.String({ maxLength: 32, description: 'raw uploads: resolution such as 1920x1080' }))
})

export const RenderUploaded = Type.Object({
  version: Type.Integer({ minimum: 1 }),
  bucket: Type.String(),
  key: Type.String(),
  sizeBytes: Type.Integer({ minimum: 0 }),
  sha256: Sha256,
  contentType: Type.String(),
  status: Type.Literal('uploaded'),
  downloadUrl: Url,
  expiresAt: ExpiresAt,
  uploadId: Type.String()
}, { $id: 'RenderUploaded' })
export type RenderUploadedType = Static<typeof RenderUploaded>

export const SceneClip = Type.Object({
  projectId: ProjectId,
  videoId: VideoId,
  version: Type.Integer({ minimum: 1 }),
  sceneNumber: Type.Integer({ minimum: 1 }),
  bucket: Type.String(),
  key: Type.String(),
  sizeBytes: Type.Integer({ minimum: 0 }),
  sha256: Sha256,
  contentType: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
  downloadUrl: Url,
  expiresAt: ExpiresAt
}, { $id: 'SceneClip' })

export const RenderRecord = Type.Object({
  projectId: ProjectId,
  videoId: VideoId,
  version: Type.Integer({ minimum: 1 }),
  bucket: Type.String(),
  key: Type.String(),
  ext: Type.String(),
  sizeBytes: Type.Integer({ minimum: 0 }),
  sha256: Sha256,
  contentType: Type.String(),
  status: Type.Literal('uploaded'),
  sceneCount: Type.Integer({ minimum: 0 }),
  createdAt: Type.String({ format: 'date-time' }),
  uploadId: Type.Optional(Type.String()),
  title: Type.Optional(Type.String()),
  durationSeconds: Type.Optional(Type.Number()),
  resolution: Type.Optional(Type.String()),
  metadata: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  downloadUrl: Url,
  expiresAt: ExpiresAt,
  scenes: Type.Optional(Type.Array(SceneClip, { description: 'scene clips, in scene order (single render only)' }))
}, { $id: 'RenderRecord' })

export const RenderList = Type.Object({
  items: Type.Array(RenderRecord),
  nextCursor: Type.Union([Type.String(), Type.Null()])
}, { $id: 'RenderList' })

export const FailureReason = Type.String({
  description: 'set on some failed uploads: `abandoned` when the replica receiving it stopped (its lease lapsed, UPLOAD_LEASE_MS)',
  examples: ['abandoned']
})

export const UploadProgress = Type.Object({
  videoId: VideoId,
  uploadId: Type.String(),
  bytesUploaded: Type.Integer({ minimum: 0 }),
  totalBytes: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], { description: 'null while the length is unknown' }),
  percentage: Type.Union([Type.Number({ minimum: 0, maximum: 100 }), Type.Null()], { description: 'null while the length is unknown' }),
  status: UploadStatus,
  failureReason: Type.Optional(FailureReason),
  lastError: Type.Optional(Type.String({ description: 'why the upload failed (or why its last attempt did), in words for people' }))
}, { $id: 'UploadProgress' })
export type UploadProgressType = Static<typeof UploadProgress>

/** The combined picture GET .../status answers: video state, its newest upload, its latest code, the dependencies. */
export const VideoStatusReport = Type.Object({
  video: Type.Object({
    status: Type.String({ description: 'created, code_ready, rendering, uploaded or failed' }),
    latestRenderVersion: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()]),
    upload: Type.Union([Type.Object({
      uploadId: Type.String(),
      status: UploadStatus,
      bytesUploaded: Type.Integer({ minimum: 0 }),
      totalBytes: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
      percentage: Type.Union([Type.Number({ minimum: 0, maximum: 100 }), Type.Null()]),
      lastError: Type.Optional(Type.String()),
      failureReason: Type.Optional(FailureReason),
      retryCount: Type.Integer({ minimum: 0 })
    }), Type.Null()], { description: 'the newest upload, null when there has been none' })
  }),
  code: Type.Object({
    latestVersion: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()]),
    latestSha256: Type.Optional(Type.String())
  }),
  services: Readiness.properties.services
}, { $id: 'VideoStatusReport' })
export type VideoStatusReportType = Static<typeof VideoStatusReport>
