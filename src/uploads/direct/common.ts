// What every step of a direct upload shares: the API shapes, the mapping from a session item to them, and the
// context (clients, configuration, stores) the step functions of src/uploads/direct/ take as their first argument.
import type { S3Client } from '@aws-sdk/client-s3'
import type { Config } from '../../config.js'
import { HttpProblem, conflict, notFound } from '../../errors.js'
import { recordBestEffortFailure } from '../../http/metrics.js'
import type { RenderVersions } from '../../renders/store.js'
import type { WriteIdentity } from '../../versions/store.js'
import type { UploadSession, UploadSessions } from '../sessions.js'
import type { PartLister, PartListing, ReceivedPart } from '../parts.js'
import type { UploadSlots } from '../slots.js'

/** The containers the service stores, by the content type a client declares. */
export const DIRECT_CONTENT_TYPES: Record<string, string> = {
  'video/mp4': 'mp4',
  'video/quicktime': 'mov',
  'video/webm': 'webm',
  'video/x-matroska': 'mkv',
  'video/x-msvideo': 'avi'
}

const MIB = 1024 * 1024
const MAX_PARTS = 10_000
/** Part URLs signed per request at most (POST .../parts). */
export const MAX_PARTS_PER_REQUEST = 100

export type DirectMethod = 'PUT' | 'MULTIPART'

export interface DirectUploadPlan {
  uploadId: string
  method: DirectMethod
  url?: string
  /** no longer filled for new sessions: part URLs come from POST .../parts (kept in the type for older callers) */
  parts?: Array<{ partNumber: number, url: string, sizeBytes: number }>
  partSize?: number
  partCount?: number
  headers: Record<string, string>
  expiresAt: string
  completeBy: string
}

export interface UploadState {
  uploadId: string
  videoId: string
  mode: 'proxied' | 'direct'
  method?: DirectMethod
  status: UploadSession['status']
  bytesUploaded: number
  totalBytes?: number
  contentType: string
  partSize?: number
  partCount?: number
  sha256?: string
  expiresAt?: string
  completeBy: string
  renderVersion?: number
  lastError?: string
  failureReason?: string
  retryCount: number
  createdAt: string
  updatedAt: string
  /** multipart sessions that are pending: the parts S3 holds so far */
  parts?: ReceivedPart[]
  /** where `parts` came from: ListParts, the embedded S3's own part store, or unavailable (this S3 cannot list) */
  partsSource?: PartListing['source']
}

export interface SignedPart { partNumber: number, url: string, headers: Record<string, string>, expiresAt: string, sizeBytes: number }

export interface ReportedPart { partNumber: number, etag: string }

export interface UploadRef { projectId: string, videoId: string, uploadId: string }

export type Log = { warn: (object: object, message: string) => void }

/** What the step functions of a direct upload work with (built once by createDirectUploads). */
export interface DirectContext {
  s3: S3Client
  bucket: string
  config: Config
  sessions: UploadSessions
  renders: RenderVersions
  slots: UploadSlots
  partLister: PartLister
  log?: Log
}

export const completeByOf = (session: UploadSession): string => new Date(session.expiresAtEpoch * 1000).toISOString()

export const normalEtag = (etag: string): string => etag.replaceAll('"', '').trim().toLowerCase()

/** The one mapping from a session item to the API: S3 keys and upload ids stay inside. */
export function toUploadState (session: UploadSession): UploadState {
  const optional = <T>(name: string): T | undefined => session[name] as T | undefined
  return {
    uploadId: session.uploadId,
    videoId: session.videoId,
    mode: session.mode,
    method: optional('method'),
    status: session.status,
    bytesUploaded: session.bytesUploaded,
    totalBytes: session.totalBytes,
    contentType: session.contentType,
    partSize: optional('partSize'),
    partCount: optional('partCount'),
    sha256: optional('sha256'),
    expiresAt: optional('urlExpiresAt'),
    completeBy: completeByOf(session),
    renderVersion: session.renderVersion,
    lastError: session.lastError,
    failureReason: session.failureReason,
    retryCount: session.retryCount,
    createdAt: session.createdAt,
    updatedAt: session.updatedAt
  }
}

/** Part size so that no upload needs more than 10,000 parts: at least the configured size, whole MiB. */
export function directPartSize (sizeBytes: number, configuredPartSize: number): number {
  const needed = Math.max(configuredPartSize, Math.ceil(sizeBytes / MAX_PARTS))
  return Math.ceil(needed / MIB) * MIB
}

/** A verification failure: the staged object is unusable, so it is deleted and the session fails. */
export class RejectedObject extends HttpProblem {}
export const rejected = (status: 400 | 415, detail: string): RejectedObject =>
  new RejectedObject(status, status === 415 ? 'Unsupported Media Type' : 'Bad Request', detail)

export async function findDirect (ctx: DirectContext, { projectId, videoId, uploadId }: UploadRef): Promise<UploadSession> {
  const session = await ctx.sessions.get(projectId, videoId, uploadId)
  if (session === undefined) throw notFound(`upload ${uploadId} of video ${projectId}/${videoId} does not exist`)
  if (session.mode !== 'direct') throw conflict(`upload ${uploadId} goes through the service, not direct to S3`)
  return session
}

/** Gives back a session's cap slots once it ended; best effort (a slot left behind lapses at its completeBy). */
export function releaseSlots (ctx: DirectContext, session: UploadSession): void {
  ctx.slots.release(session).catch((error: unknown) => { recordBestEffortFailure('upload-slot-release', error, ctx.log) })
}

/** When a URL signed now stops working: PRESIGN_EXPIRES_SECONDS from now, but never after the session's completeBy. */
export function urlExpiry (ctx: DirectContext, now: number, session: UploadSession): Date {
  return new Date(Math.min(now + ctx.config.presignExpiresSeconds * 1000, session.expiresAtEpoch * 1000))
}

/** The identity of a session's own commit: its token is the uploadId, so every attempt finds the others' commit. */
export const uploadIdentity = (session: UploadSession): WriteIdentity => ({ token: `upload-${session.uploadId}`, mayExist: true, since: Date.parse(session.createdAt) })

/** True while a completion of this session holds a live lease (it may still commit). */
export const completingNow = (session: UploadSession): boolean => typeof session.leaseUntil === 'number' && session.leaseUntil >= Date.now()

/** 410: the session is past its completeBy. */
export const gone = (detail: string): HttpProblem => new HttpProblem(410, 'Gone', detail)
