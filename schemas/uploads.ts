import { Type, type Static } from 'typebox'
import { ProjectId, VideoId } from './common.js'
import { FailureReason } from './renders.js'

export const UploadParams = Type.Object({
  projectId: ProjectId,
  videoId: VideoId,
  uploadId: Type.String({ pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$', description: 'upload id (a UUID)' })
}, { $id: 'UploadParams' })
export type UploadParamsType = Static<typeof UploadParams>

export const DirectUploadRequest = Type.Object({
  sizeBytes: Type.Integer({ minimum: 1, description: 'exact size of the file; over the configured maximum is 413' }),
  contentType: Type.String({ minLength: 1, maxLength: 100, description: 'video/mp4, video/quicktime, video/webm, video/x-matroska or video/x-msvideo; anything else is 415', examples: ['video/mp4'] }),
  sha256: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{64}$', description: 'SHA-256 of the file, hex; complete refuses an object that does not match' }))
}, { $id: 'DirectUploadRequest', additionalProperties: false })
export type DirectUploadRequestType = Static<typeof DirectUploadRequest>

const SignedHeaders = Type.Record(Type.String(), Type.String(), {
  description: 'headers the client must send with the single PUT (Content-Type, and SSE headers where configured): they are signed. Empty for multipart parts'
})

export const DirectUploadPart = Type.Object({
  partNumber: Type.Integer({ minimum: 1, maximum: 10000 }),
  url: Type.String({ description: 'presigned UploadPart URL' }),
  sizeBytes: Type.Integer({ minimum: 1, description: 'the exact length this part must have (it is signed)' })
})

export const DirectUploadCreated = Type.Object({
  uploadId: Type.String(),
  method: Type.Union([Type.Literal('PUT'), Type.Literal('MULTIPART')]),
  url: Type.Optional(Type.String({ description: 'method PUT: the presigned PUT URL' })),
  parts: Type.Optional(Type.Array(DirectUploadPart, { description: 'method MULTIPART: one presigned URL per part; PUT each part and keep its ETag response header' })),
  partSize: Type.Optional(Type.Integer({ description: 'method MULTIPART: every part but the last has exactly this many bytes' })),
  headers: SignedHeaders,
  expiresAt: Type.String({ format: 'date-time', description: 'when the URLs stop working' }),
  completeBy: Type.String({ format: 'date-time', description: 'after this the session is expired and complete answers 410' })
}, { $id: 'DirectUploadCreated' })
export type DirectUploadCreatedType = Static<typeof DirectUploadCreated>

export const DirectUploadComplete = Type.Object({
  parts: Type.Optional(Type.Array(Type.Object({
    partNumber: Type.Integer({ minimum: 1, maximum: 10000 }),
    etag: Type.String({ minLength: 1, maxLength: 128, description: 'the ETag header S3 answered the part PUT with' })
  }, { additionalProperties: false }), { maxItems: 10000, description: 'method MULTIPART: every part, 1..n; method PUT: leave out' }))
}, { $id: 'DirectUploadComplete', additionalProperties: false })
export type DirectUploadCompleteType = Static<typeof DirectUploadComplete>

const UploadStatus = Type.Union([Type.Literal('pending'), Type.Literal('uploading'), Type.Literal('completed'), Type.Literal('failed'), Type.Literal('aborted'), Type.Literal('expired')], {
  description: 'direct uploads: pending until complete is called, uploading while complete assembles and verifies, then completed, failed, aborted or expired'
})

export const UploadState = Type.Object({
  uploadId: Type.String(),
  videoId: VideoId,
  mode: Type.Union([Type.Literal('direct'), Type.Literal('proxied')]),
  method: Type.Optional(Type.Union([Type.Literal('PUT'), Type.Literal('MULTIPART')])),
  status: UploadStatus,
  bytesUploaded: Type.Integer({ minimum: 0, description: 'direct uploads: S3 receives the bytes, so 0 until completed, then totalBytes' }),
  totalBytes: Type.Optional(Type.Integer({ minimum: 0 })),
  contentType: Type.String(),
  partSize: Type.Optional(Type.Integer()),
  partCount: Type.Optional(Type.Integer()),
  sha256: Type.Optional(Type.String()),
  expiresAt: Type.Optional(Type.String({ format: 'date-time', description: 'direct uploads: when the URLs stop working' })),
  completeBy: Type.String({ format: 'date-time', description: 'an open session past this reads expired' }),
  renderVersion: Type.Optional(Type.Integer({ minimum: 1, description: 'the render version the upload created' })),
  lastError: Type.Optional(Type.String()),
  failureReason: Type.Optional(FailureReason),
  retryCount: Type.Integer({ minimum: 0 }),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' })
}, { $id: 'UploadState' })
export type UploadStateType = Static<typeof UploadState>
