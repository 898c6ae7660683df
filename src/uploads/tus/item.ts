// A tus upload as its session item in DynamoDB holds it, what HEAD/POST/PATCH answer from it, and the context
// (clients, configuration, the replica's running hashes) the tus modules share.
import type { Hash } from 'node:crypto'
import type { Readable } from 'node:stream'
import type { LRUCache } from 'lru-cache'
import type { AwsClients } from '../../aws/clients.js'
import type { Config } from '../../config.js'
import type { RenderVersions } from '../../renders/store.js'
import { toSession, type UploadSession, type UploadSessions } from '../sessions.js'
import { uploadSortKey, videoKey } from '../../table/video-item.js'

const MIB = 1024 * 1024
const MAX_PARTS = 10_000

/** What HEAD, POST and PATCH answer with. */
export interface TusUploadState {
  uploadId: string
  offset: number
  length: number
  expiresAt: Date
  metadata: Record<string, string>
  /** set once the upload is a render version */
  renderVersion?: number
}

export interface TusItem {
  session: UploadSession
  offset: number
  length: number
  partSize: number
  parts: string[]
  heldKey?: string
  heldBytes: number
  s3UploadId?: string
  key?: string
  ext?: string
  contentType: string
  metadata: Record<string, string>
  assembled: boolean
  sha256?: string
  leaseUntil: number
}

export interface TusBody {
  stream: Readable
  /** Content-Length when sent */
  declaredLength?: number
  /** fires when the client goes away before the body has arrived */
  signal: AbortSignal
}

/** What every tus module works with. */
export interface TusContext {
  aws: AwsClients
  config: Config
  sessions: UploadSessions
  renders: RenderVersions
  log?: { warn: (object: object, message: string) => void }
  /**
   * SHA-256 of what an upload holds, kept by the replica that received its bytes, while its PATCHes stay here. A
   * PATCH that resumes on another replica (or after a restart) finds none: then the assembled object is read once at
   * completion and hashed (node's hash state cannot be stored in DynamoDB).
   */
  hashes: LRUCache<string, { offset: number, hash: Hash }>
}

export const readItem = (item: Record<string, unknown>, now = Date.now()): TusItem => {
  const session = toSession(item, now)
  return {
    session,
    offset: Number(item.tusOffset ?? 0),
    length: Number(item.totalBytes ?? 0),
    partSize: Number(item.tusPartSize),
    parts: (item.tusParts as string[] | undefined) ?? [],
    heldKey: item.tusHeldKey as string | undefined,
    heldBytes: Number(item.tusHeldBytes ?? 0),
    s3UploadId: item.s3UploadId as string | undefined,
    key: item.key as string | undefined,
    ext: item.ext as string | undefined,
    contentType: String(item.contentType ?? 'application/octet-stream'),
    metadata: (item.tusMetadata as Record<string, string> | undefined) ?? {},
    assembled: item.tusAssembled === true,
    sha256: item.sha256 as string | undefined,
    leaseUntil: Number(item.tusLeaseUntil ?? 0)
  }
}

export const stateOf = (tus: TusItem): TusUploadState => ({
  uploadId: tus.session.uploadId,
  offset: tus.offset,
  length: tus.length,
  expiresAt: new Date(tus.session.expiresAtEpoch * 1000),
  metadata: tus.metadata,
  renderVersion: tus.session.renderVersion
})

export const keyOf = (projectId: string, videoId: string, uploadId: string): { pk: string, sk: string } =>
  ({ pk: videoKey(projectId, videoId).pk, sk: uploadSortKey(uploadId) })

export const itemKey = (tus: TusItem): { pk: string, sk: string } => keyOf(tus.session.projectId, tus.session.videoId, tus.session.uploadId)

/** Part size so that no upload needs more than 10,000 parts: at least the configured size, whole MiB. */
export const tusPartSize = (length: number, configured: number): number =>
  Math.ceil(Math.max(configured, Math.ceil(length / MAX_PARTS)) / MIB) * MIB

/** The client left mid-body: what arrived is kept, nobody is there to read an answer. */
export class TusClientGone extends Error {}

/** The upload is already a render version (a repeated last PATCH, a HEAD after completion). */
export class AlreadyCompleted extends Error {
  constructor (readonly tus: TusItem) { super('completed') }
}
export class NotAVideo extends Error {
  constructor () { super('the upload is not a recognised video container (MP4, MOV, WebM, MKV or AVI)') }
}
export class LeaseLost extends Error {
  constructor () { super('the lease on this upload was lost') }
}
