import { Type, type Static } from 'typebox'
import { ProjectId, UploadStatus, VideoId } from './common.js'
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
  sha256: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{64}$', description: 'SHA-256 of the file, hex; complete refuses an object that does not match' })),
  title: Type.Optional(Type.String({ maxLength: 500, description: 'kept on the render version' })),
  durationSeconds: Type.Optional(Type.Number({ minimum: 0, description: 'kept on the render version' })),
  resolution: Type.Optional(Type.String({ maxLength: 32, examples: ['1920x1080'], description: 'kept on the render version' }))
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
  parts: Type.Optional(Type.Array(DirectUploadPart, { description: 'not given for new sessions: MULTIPART part URLs are signed on demand by POST .../uploads/{uploadId}/parts' })),
  partSize: Type.Optional(Type.Integer({ description: 'method MULTIPART: every part but the last has exactly this many bytes' })),
  partCount: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000, description: 'method MULTIPART: parts 1..partCount make the file' })),
  headers: SignedHeaders,
  expiresAt: Type.String({ format: 'date-time', description: 'method PUT: when the URL stops working; MULTIPART: when a part URL signed now would (never after completeBy)' }),
  completeBy: Type.String({ format: 'date-time', description: 'after this the session is expired and complete answers 410' })
}, { $id: 'DirectUploadCreated' })
export type DirectUploadCreatedType = Static<typeof DirectUploadCreated>

export const PartUrlsRequest = Type.Object({
  partNumbers: Type.Array(Type.Integer({ minimum: 1, maximum: 10000 }), { minItems: 1, maxItems: 100, uniqueItems: true, description: 'the parts to sign URLs for, 1..partCount, at most 100 per request, each once' })
}, { $id: 'PartUrlsRequest', additionalProperties: false })
export type PartUrlsRequestType = Static<typeof PartUrlsRequest>

export const PartUrls = Type.Object({
  parts: Type.Array(Type.Object({
    partNumber: Type.Integer({ minimum: 1, maximum: 10000 }),
    url: Type.String({ description: 'presigned UploadPart URL: PUT the part there and keep the ETag response header' }),
    headers: Type.Record(Type.String(), Type.String(), { description: 'headers to send with the PUT (none for parts: their length is signed)' }),
    expiresAt: Type.String({ format: 'date-time', description: 'the URL stops working then (PRESIGN_EXPIRES_SECONDS, never after completeBy): ask again for a fresh one' }),
    sizeBytes: Type.Integer({ minimum: 1, description: 'the exact length this part must have (it is signed)' })
  }))
}, { $id: 'PartUrls' })
export type PartUrlsType = Static<typeof PartUrls>

export const ReceivedPart = Type.Object({
  partNumber: Type.Integer({ minimum: 1, maximum: 10000 }),
  size: Type.Integer({ minimum: 0 }),
  etag: Type.String({ description: 'the ETag S3 holds for the part (report it to complete)' })
})

export const DirectUploadComplete = Type.Object({
  parts: Type.Optional(Type.Array(Type.Object({
    partNumber: Type.Integer({ minimum: 1, maximum: 10000 }),
    etag: Type.String({ minLength: 1, maxLength: 128, description: 'the ETag header S3 answered the part PUT with' })
  }, { additionalProperties: false }), { maxItems: 10000, description: 'method MULTIPART: every part, 1..n; method PUT: leave out' })),
  sha256: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{64}$', description: 'SHA-256 the object must have (hex), for a client that hashed the file while uploading it; must equal the one given at creation, if any' }))
}, { $id: 'DirectUploadComplete', additionalProperties: false })
export type DirectUploadCompleteType = Static<typeof DirectUploadComplete>

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
  updatedAt: Type.String({ format: 'date-time' }),
  parts: Type.Optional(Type.Array(ReceivedPart, { description: 'pending MULTIPART sessions: the parts S3 holds so far, by number (what a resuming client need not send again)' })),
  partsSource: Type.Optional(Type.Union([Type.Literal('ListParts'), Type.Literal('embedded-store'), Type.Literal('unavailable')], {
    description: "where parts came from: S3's ListParts; the embedded S3's own part store (it has no ListParts); unavailable (this S3 cannot list parts)"
  }))
}, { $id: 'UploadState' })
export type UploadStateType = Static<typeof UploadState>
