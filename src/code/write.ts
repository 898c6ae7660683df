// Writing a code version: the checks, the object under a key unique to the write, the commit, and the latest pointer.
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { encryptionParams } from '../aws/encryption.js'
import { conflict } from '../errors.js'
import { recordBestEffortFailure, recordUploadBytes } from '../http/metrics.js'
import { codeObjectKey } from '../table/keys.js'
import { ensureVideoRecord } from '../table/video-record.js'
import { OutcomeUnknown, type Committed, type WriteIdentity } from '../versions/store.js'
import { deletedWhileStoring } from '../versions/publish.js'
import { checkContent, describeFile, resolveFilename, sha256Hex } from './files.js'
import { assertLockable, isLocked, nextLockState, objectLockParameters } from './object-lock.js'
import { toCodeVersion, type CodeVersionRecord } from './records.js'
import { cacheKeyOf, lockVersion, type CodeContext } from './store.js'
import type { CodeLockRequestType } from '../../schemas/code.js'

export interface NewCodeVersion {
  projectId: string
  videoId: string
  content: Buffer | string
  filename?: string
  language?: string
  message?: string
  sceneNumber?: number
  baseVersion?: number
  lock?: CodeLockRequestType
}

/** What a write stores, worked out (and checked) before anything is written. */
interface Prepared {
  bytes: Buffer
  text: string
  filename: string
  contentType: string
  language?: string
  sha256: string
}

/** The latest version's file is this content under this file name (a resend of the latest is not a new version). */
const sameFile = (item: Record<string, unknown> | undefined, sha256: string, filename: string): item is Record<string, unknown> =>
  item !== undefined && item.sha256 === sha256 && item.filename === filename

async function existingVersion (context: CodeContext, projectId: string, videoId: string, item: Record<string, unknown>, lock: CodeLockRequestType | undefined): Promise<CodeVersionRecord> {
  if (lock !== undefined) return await lockVersion(context, projectId, videoId, item.version as number, lock)
  return toCodeVersion(item)
}

/** Removes the object of a write that will never be a version (best effort: reconcile removes what stays). */
async function discardObject ({ s3, bucket, log }: CodeContext, key: string): Promise<void> {
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })).catch((cleanup: unknown) => { recordBestEffortFailure('code-object-cleanup', cleanup, log) })
}

/** The bytes, under a key only this write uses (a repeat of it puts the same bytes there). */
async function putObject ({ s3, bucket, config }: CodeContext, input: NewCodeVersion, prepared: Prepared, key: string): Promise<void> {
  const { bytes, contentType, sha256 } = prepared
  await s3.send(new PutObjectCommand({
    Bucket: bucket,
    Key: key,
    Body: bytes,
    ContentType: contentType,
    ContentLength: bytes.length,
    ChecksumSHA256: Buffer.from(sha256, 'hex').toString('base64'),
    Metadata: { sha256, project: input.projectId, video: input.videoId },
    ...encryptionParams(config),
    ...objectLockParameters(input.lock)
  }))
}

/** The commit of the version item (src/versions/); creates the video record first when there was no version yet. */
async function commitVersion (context: CodeContext, input: NewCodeVersion, prepared: Prepared, key: string, identity: WriteIdentity, first: boolean): Promise<{ committed: Committed, videoStatus?: string }> {
  const { ddb, table, bucket, versions } = context
  const { projectId, videoId } = input
  const { bytes, filename, sha256, contentType, language } = prepared
  const lock = input.lock === undefined ? undefined : nextLockState(undefined, input.lock)
  // The first version creates the video record; later ones find it there (a DELETE since is caught by publish).
  const videoStatus = first ? (await ensureVideoRecord(ddb, table, projectId, videoId)).status : undefined
  const committed = await versions.commit({
    kind: 'CODE',
    projectId,
    videoId,
    identity,
    expectedLatest: input.baseVersion,
    // Writers of the same content that raced past the check above: the first commits, the rest answer its version.
    reuse: (latestItem) => sameFile(latestItem, sha256, filename),
    build: () => ({
      kind: 'codeVersion',
      projectId,
      videoId,
      filename,
      key,
      bucket,
      sha256,
      sizeBytes: bytes.length,
      contentType,
      createdAt: new Date().toISOString(),
      message: input.message,
      language: input.language ?? language,
      sceneNumber: input.sceneNumber,
      locked: isLocked(lock),
      lock
    })
  })
  return { committed, videoStatus }
}

/**
 * Stores a new version: created, or (not created) the latest when the content equals it. The bytes go first, under
 * a key only this write uses; the version exists once its item is committed. A repeat of a write (same identity)
 * answers the version its earlier attempt committed instead of storing another.
 */
export async function createVersion (context: CodeContext, input: NewCodeVersion, identity: WriteIdentity): Promise<{ created: boolean, codeVersion: CodeVersionRecord }> {
  const { s3, bucket, config, versions, latest, pendingLatest } = context
  const { projectId, videoId } = input
  const { bytes, text } = checkContent(input.content, config.maxCodeBytes)
  const filename = resolveFilename(videoId, input.filename, input.sceneNumber)
  const prepared: Prepared = { bytes, text, filename, ...describeFile(filename), sha256: sha256Hex(bytes) }
  if (input.lock !== undefined) await assertLockable(s3, bucket, input.lock)

  const top = await versions.latest('CODE', projectId, videoId)
  if (identity.mayExist) {
    const mine = await versions.commitOf('CODE', projectId, videoId, identity, top)
    if (mine !== undefined) return { created: true, codeVersion: toCodeVersion(mine) }
  }
  const topVersion = (top?.version as number | undefined) ?? 0
  // An edit must name the latest: a writer that worked on stale code hears so, even if it ended where the latest is.
  if (input.baseVersion !== undefined && input.baseVersion !== topVersion) {
    throw conflict(`version ${input.baseVersion} is not the latest; the latest is ${topVersion}`, { latestVersion: topVersion })
  }
  if (sameFile(top, prepared.sha256, filename)) return { created: false, codeVersion: await existingVersion(context, projectId, videoId, top, input.lock) }

  const key = codeObjectKey(projectId, videoId, identity.token, filename)
  await putObject(context, input, prepared, key)
  let outcome
  try {
    outcome = await commitVersion(context, input, prepared, key, identity, top === undefined)
  } catch (error) {
    // Only a write that cannot land any more may take its object along; an unknown outcome leaves it to reconcile.
    if (!(error instanceof OutcomeUnknown) && !identity.mayExist) await discardObject(context, key)
    throw error
  }
  const { committed, videoStatus } = outcome
  if (committed.reused === true) {
    if (committed.inDoubt !== true && !identity.mayExist) await discardObject(context, key)
    return { created: false, codeVersion: await existingVersion(context, projectId, videoId, committed.item, input.lock) }
  }
  const record = toCodeVersion(committed.item)
  const published = await versions.publish('CODE', projectId, videoId, record.version, identity.token, {
    latestCodeSha256: record.sha256,
    latestCodeKey: record.key,
    ...(videoStatus === 'created' ? { status: 'code_ready' } : {})
  })
  if (published === 'gone') {
    // The video was deleted while this version was committed: its DELETE may not have seen the item (and took the
    // object along), so the version goes with it instead of outliving the video without its bytes.
    await discardObject(context, key)
    latest.forget(cacheKeyOf(projectId, videoId))
    throw deletedWhileStoring('CODE', projectId, videoId)
  }
  // A lookup that started before this commit must not answer requests that arrive after it.
  pendingLatest.delete(cacheKeyOf(projectId, videoId))
  latest.offer(cacheKeyOf(projectId, videoId), { version: record.version, record, content: text })
  if (!committed.recovered) recordUploadBytes('code', record.sizeBytes)
  return { created: true, codeVersion: record }
}
