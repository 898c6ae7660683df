// Request and response shapes of render-store as the client sees them: from schemas/ where the routes define them,
// written from API.md for the routes still being built.
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

export interface RenderVersion {
  version: number
  bucket: string
  key: string
  sizeBytes: number
  sha256: string
  contentType: string
  status: string
  downloadUrl: string
  expiresAt: string
  [field: string]: unknown
}

export interface SceneClip {
  sceneNumber?: number
  key?: string
  sizeBytes?: number
  sha256?: string
  [field: string]: unknown
}

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

export interface UploadProgress {
  videoId: string
  uploadId: string
  bytesUploaded: number
  totalBytes: number
  percentage: number
  status: string
  [field: string]: unknown
}

export interface VideoStatusReport {
  video: {
    status: string
    latestRenderVersion?: number
    upload?: { status: string, bytesUploaded?: number, totalBytes?: number, percentage?: number, lastError?: string, retryCount?: number }
    [field: string]: unknown
  }
  code: { latestVersion?: number, [field: string]: unknown }
  services?: Record<string, unknown>
  [field: string]: unknown
}
