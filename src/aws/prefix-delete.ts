// Deleting everything a video owns under a prefix. In a versioned bucket (Object Lock needs versioning) a plain
// delete only hides an object under a delete marker, so here every version and delete marker is deleted by its
// VersionId; the versions S3 Object Lock keeps (legal hold, retention) stay and are returned, each with why and until
// when. A failure whose outcome is unknown (network, timeout) propagates: the caller deletes no records after it.
import {
  DeleteObjectCommand, DeleteObjectsCommand, GetObjectLegalHoldCommand, GetObjectRetentionCommand, ListObjectsV2Command,
  ListObjectVersionsCommand, type S3Client
} from '@aws-sdk/client-s3'
import { HttpProblem, isDependencyUnavailable, serviceUnavailable, storageRefusal } from '../errors.js'

/** An object version a delete left because S3 Object Lock keeps it. */
export interface RetainedVersion {
  bucket: string
  key: string
  versionId: string
  /** under a legal hold: stays until someone removes the hold */
  legalHold: boolean
  mode?: 'GOVERNANCE' | 'COMPLIANCE'
  /** retained until this time (ISO 8601) */
  retainUntil?: string
}

interface Entry { Key: string, VersionId: string }
interface DeleteFailure { Key?: string, VersionId?: string, Code?: string, Message?: string }

const statusOf = (error: unknown): number | undefined => (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode
const nameOf = (error: unknown): string => (error as { name?: string }).name ?? 'Error'

/** The backend cannot list versions at all (local S3 answers 405 MethodNotAllowed): it keeps none. */
function cannotListVersions (error: unknown): boolean {
  const status = statusOf(error)
  return status === 405 || status === 501 || ['MethodNotAllowed', 'NotImplemented'].includes(nameOf(error))
}

/** No lock configuration on this version: S3 answers 404 (names differ between AWS and Ceph). */
function noLockConfiguration (error: unknown): boolean {
  return statusOf(error) === 404 || /NoSuchObjectLockConfiguration|ObjectLockConfigurationNotFound/.test(nameOf(error))
}

/** The problem for versions S3 refused to delete for another reason than a lock: 503 when a retry may cure it. */
function deleteRefused (failures: DeleteFailure[], prefix: string): HttpProblem {
  const errors = failures.map((failure) => Object.assign(new Error(failure.Message ?? failure.Code ?? 'refused'), {
    name: failure.Code ?? 'Error',
    $fault: 'client',
    $metadata: { httpStatusCode: failure.Code === 'AccessDenied' ? 403 : failure.Code === 'InternalError' ? 500 : 400 }
  }))
  const refusal = errors.some(isDependencyUnavailable) ? undefined : storageRefusal(errors[0])
  if (refusal !== undefined) return refusal
  return serviceUnavailable(`${failures.length} object versions under ${prefix} could not be deleted (${failures[0].Code ?? 'error'}); retry the delete`)
}

export function createPrefixDeleter (s3: S3Client) {
  // Buckets on a backend without versions (local S3): listed and deleted by key.
  const unversioned = new Set<string>()

  /** The lock that keeps a version, or undefined when none does (any more). */
  async function lockOf (bucket: string, entry: Entry): Promise<RetainedVersion | undefined> {
    const [retention, hold] = await Promise.all([
      s3.send(new GetObjectRetentionCommand({ Bucket: bucket, Key: entry.Key, VersionId: entry.VersionId })).then(({ Retention }) => Retention,
        (error: unknown) => { if (noLockConfiguration(error)) return undefined; throw error }),
      s3.send(new GetObjectLegalHoldCommand({ Bucket: bucket, Key: entry.Key, VersionId: entry.VersionId })).then(({ LegalHold }) => LegalHold,
        (error: unknown) => { if (noLockConfiguration(error)) return undefined; throw error })
    ])
    const legalHold = hold?.Status === 'ON'
    const until = retention?.RetainUntilDate
    const retained = until !== undefined && until.getTime() > Date.now()
    if (!legalHold && !retained) return undefined
    return {
      bucket,
      key: entry.Key,
      versionId: entry.VersionId,
      legalHold,
      ...(retained ? { mode: retention?.Mode as RetainedVersion['mode'], retainUntil: until.toISOString() } : {})
    }
  }

  /** Deletes one page of versions; answers the ones a lock keeps, throws for any other refusal. */
  async function deleteEntries (bucket: string, prefix: string, entries: Entry[]): Promise<RetainedVersion[]> {
    // IAM: s3:DeleteObjectVersion (DeleteObjects with VersionId deletes versions, not just the current object)
    const { Errors = [] } = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: entries, Quiet: true } }))
    const retained: RetainedVersion[] = []
    let failures: DeleteFailure[] = []
    for (const failure of Errors) {
      // S3 (and Ceph) refuse a locked version with AccessDenied: ask the version why.
      const lock = failure.Code === 'AccessDenied' && failure.Key !== undefined && failure.VersionId !== undefined
        ? await lockOf(bucket, { Key: failure.Key, VersionId: failure.VersionId })
        : undefined
      if (lock !== undefined) retained.push(lock)
      else failures.push(failure)
    }
    if (failures.length > 0) {
      // A lock that lapsed between the delete and the question: one more try for those.
      const again = failures.filter((failure) => failure.Code === 'AccessDenied' && failure.Key !== undefined && failure.VersionId !== undefined)
      if (again.length > 0) {
        const retried = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: again.map((failure) => ({ Key: failure.Key as string, VersionId: failure.VersionId as string })), Quiet: true } }))
        failures = [...failures.filter((failure) => !again.includes(failure)), ...(retried.Errors ?? [])]
      }
    }
    if (failures.length > 0) throw deleteRefused(failures, prefix)
    return retained
  }

  async function deleteVersions (bucket: string, prefix: string): Promise<RetainedVersion[]> {
    const retained: RetainedVersion[] = []
    let keyMarker: string | undefined
    let versionIdMarker: string | undefined
    do {
      const page = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: prefix, KeyMarker: keyMarker, VersionIdMarker: versionIdMarker, MaxKeys: 1000 }))
      const entries = [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])]
        .flatMap((entry) => entry.Key === undefined ? [] : [{ Key: entry.Key, VersionId: entry.VersionId ?? 'null' }])
      if (entries.length > 0) retained.push(...await deleteEntries(bucket, prefix, entries))
      keyMarker = page.IsTruncated === true ? page.NextKeyMarker : undefined
      versionIdMarker = page.IsTruncated === true ? page.NextVersionIdMarker : undefined
    } while (keyMarker !== undefined)
    // What a lock keeps goes under a delete marker: nothing under the video reads as current any more, and the
    // noncurrent-version lifecycle rule (npm run setup, deploy/) removes it once its lock lapses.
    const keys = [...new Set(retained.map((version) => version.key))]
    await Promise.all(keys.map(async (key) => await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }))))
    return retained
  }

  /** The unversioned way, page by page from the start (local S3 cannot resume a truncated listing). */
  async function deleteObjects (bucket: string, prefix: string): Promise<void> {
    for (;;) {
      const { Contents = [] } = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, MaxKeys: 1000 }))
      const keys = Contents.flatMap((object) => object.Key === undefined ? [] : [{ Key: object.Key }])
      if (keys.length === 0) return
      const { Errors = [] } = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }))
      if (Errors.length > 0) throw deleteRefused(Errors, prefix)
    }
  }

  /** Deletes every object (every version of it, where the bucket keeps versions) under a prefix; answers what a lock keeps. */
  return async function deletePrefix (bucket: string, prefix: string): Promise<RetainedVersion[]> {
    if (!unversioned.has(bucket)) {
      try {
        return await deleteVersions(bucket, prefix)
      } catch (error) {
        if (!cannotListVersions(error)) throw error
        unversioned.add(bucket)
      }
    }
    await deleteObjects(bucket, prefix)
    return []
  }
}
