// Request and response shapes of render-store as the client sees them: from schemas/ where the routes define them,
// written from API.md for the routes still being built.
import type { Static } from 'typebox'
import type { RenderRecord as RenderRecordSchema, RenderUploadedType, SceneClip as SceneClipSchema, UploadProgressType, VideoStatusType } from '../../schemas/renders.js'
import type { CodeLockRequestType, CodeVersionType, CodeVersionWithContentType, CreateCodeVersionType } from '../../schemas/code.js'

export type NewCodeVersion = CreateCodeVersionType
export type CodeVersion = CodeVersionWithContentType
export type CodeVersionSummary = CodeVersionType
export type CodeLockRequest = CodeLockRequestType

export interface ListOptions {
  limit?: number
  cursor?: string
}

export interface Page<T> {
  items: T[]
  nextCursor: string | null
}

export type RenderVersion = RenderUploadedType
export type RenderRecord = Static<typeof RenderRecordSchema>
export type SceneClip = Static<typeof SceneClipSchema>

export interface UploadSessionRequest {
  sizeBytes: number
  contentType: string
  sha256?: string
}

export interface UploadSession {
  uploadId: string
  method: 'PUT' | 'MULTIPART'
  url?: string
  parts?: Array<{ partNumber: number, url: string }>
  partSize?: number
  expiresAt: string
  [field: string]: unknown
}

export interface UploadSessionState {
  uploadId: string
  status: string
  bytesUploaded?: number
  totalBytes: number
  [field: string]: unknown
}

export type UploadProgress = UploadProgressType
export type VideoStatusReport = VideoStatusType
