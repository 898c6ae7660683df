// Request and response shapes of render-store as the client sees them, all from the routes' schemas in schemas/.
import type { Static } from 'typebox'
import type { RenderRecord as RenderRecordSchema, RenderUploadedType, SceneClip as SceneClipSchema, UploadProgressType, VideoStatusReportType } from '../../schemas/renders.js'
import type { DirectUploadCreatedType, DirectUploadRequestType, PartUrlsType, UploadStateType } from '../../schemas/uploads.js'
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

export type UploadSessionRequest = DirectUploadRequestType
export type UploadSession = DirectUploadCreatedType
export type UploadSessionState = UploadStateType
export type UploadPartUrl = PartUrlsType['parts'][number]

export type UploadProgress = UploadProgressType
export type VideoStatusReport = VideoStatusReportType
