// What reconcile reports: the findings, and what --fix did.
import type { VersionKind } from '../../table/keys.js'

export interface ReconcileOptions {
  fix?: boolean
  /** also download each object and hash it (else sha256 is compared where the object carries it in metadata) */
  deep?: boolean
  /** objects younger than this are left alone: a write may still be in flight (default 15 minutes) */
  graceMs?: number
  /** staging/ objects younger than this are pending direct uploads (default one day) */
  stagingGraceMs?: number
  now?: number
  /** keys per listing page (default: S3's 1000) */
  pageSize?: number
}

/** An object a bucket listing showed. */
export interface ListedObject { bucket: string, key: string, sizeBytes: number, lastModified?: string }
export interface RecordRef { pk: string, sk: string, bucket: string, key: string, sizeBytes: number, sha256: string }
export interface BrokenRecord extends RecordRef { problem: 'missing-object' | 'size' | 'sha256', actual?: number | string }
export type Kind = VersionKind

export interface LaggingLatest {
  pk: string
  projectId?: string
  videoId?: string
  kind: Kind
  /** what the video record says (null: nothing) */
  recorded: number | null
  /** the highest version item */
  highest: number
}

export interface AbandonedSession {
  pk: string
  sk: string
  uploadId: string
  projectId?: string
  videoId?: string
  mode: string
  leaseUntil: string
  /** multipart uploads of it still open in S3 (undefined when this S3 cannot list them) */
  multipartUploads?: number
}

export interface OpenMultipartUpload { bucket: string, key: string, uploadId: string, initiated?: string, sessionUploadId?: string }

export interface ReconcileReport {
  checkedAt: string
  buckets: string[]
  table: string
  objects: number
  /** version and scene items checked against their objects */
  records: number
  unverifiedHashes: number
  orphans: ListedObject[]
  brokenRecords: BrokenRecord[]
  /** version gaps: numbers up to the highest item (or the video's pointer) with no item */
  missingRecords: Array<{ pk: string, sk: string }>
  laggingLatest: LaggingLatest[]
  /** proxied sessions whose replica died while uploading (lease lapsed, still stored as uploading) */
  abandonedSessions: AbandonedSession[]
  /** direct sessions whose completing replica died: they read pending and are left for complete to take over */
  interruptedCompletions: AbandonedSession[]
  multipartUploads: { supported: boolean, reason?: string, stale: OpenMultipartUpload[] }
  idempotency: { records: number, ttl: string, expired: number }
  fixed?: {
    deletedObjects: number
    markedBroken: number
    advancedLatest: number
    markedAbandoned: number
    abortedMultipartUploads: number
    deletedIdempotencyRecords: number
    /** what --fix could not do on this backend */
    skipped?: string[]
  }
}
