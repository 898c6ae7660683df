// Code versions: numbered by a per-video claim, bytes in S3, one item per version in DynamoDB, and the video
// record's latestCodeVersion as the only pointer readers follow (so an unfinished write is never visible).
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { DeleteCommand, GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { createTwoFilesPatch } from 'diff'
import type { AwsClients } from './aws/clients.js'
import type { Config } from './config.js'
import { notFound, serviceUnavailable } from './errors.js'
import { createVersionClaims, readVideoRecord, versionSortKey, videoKey, type VersionClaim } from './video-records.js'
import { checkContent, describeFile, resolveFilename, sha256Hex } from './code/files.js'
import { createLatestCache } from './code/latest-cache.js'
import { recordCodeCache, recordUploadBytes } from './metrics.js'
import { applyObjectLock, assertLockable, isLocked, nextLockState, objectLockParameters } from './code/object-lock.js'
import { codeObjectKey, decodeCodeCursor, encodeCodeCursor, toCodeVersion, type CodeVersionRecord } from './code/records.js'
import type { CodeLockRequestType } from '../schemas/code.js'

export type { CodeVersionRecord } from './code/records.js'

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

export interface CodeVersionView extends CodeVersionRecord {
  content: string
  downloadUrl: string
  expiresAt: string
}

interface LatestEntry {
  version: number
  record: CodeVersionRecord
  content?: string
  view?: CodeVersionView
}

type VersionSelector = number | 'latest'

const cacheKeyOf = (projectId: string, videoId: string): string => `${projectId}/${videoId}`

function encryption (config: Config): Record<string, string> {
  if (config.sse.algorithm === 'none') return {}
  if (config.sse.algorithm === 'aws:kms') return { ServerSideEncryption: 'aws:kms', ...(config.sse.kmsKeyId === undefined ? {} : { SSEKMSKeyId: config.sse.kmsKeyId }) }
  return { ServerSideEncryption: 'AES256' }
}

/** The latest version's file is this content under this file name (a resend of the latest is not a new version). */
function isLatest (record: Record<string, unknown> | undefined, sha256: string, filename: string): record is Record<string, unknown> & { latestCodeVersion: number } {
  return record !== undefined && typeof record.latestCodeVersion === 'number' && record.latestCodeSha256 === sha256 &&
    typeof record.latestCodeKey === 'string' && record.latestCodeKey.endsWith(`/${filename}`)
}

export function createCodeStore ({ aws, config }: { aws: AwsClients, config: Config }) {
  const { s3, ddb } = aws
  const table = config.table
  const bucket = config.codeBucket
  const claims = createVersionClaims({ ddb, table })
  const pendingLatest = new Map<string, Promise<CodeVersionRecord>>()
  const latest = createLatestCache<LatestEntry>({ ttlMs: config.codeCacheTtlMs, sizeOf: (entry) => 1024 + (entry.content?.length ?? 0) })

  const readVideoItem = async (projectId: string, videoId: string): Promise<Record<string, unknown> | undefined> =>
    await readVideoRecord(ddb, table, projectId, videoId)

  async function readVersionItem (projectId: string, videoId: string, version: number): Promise<CodeVersionRecord | undefined> {
    const { Item } = await ddb.send(new GetCommand({
      TableName: table,
      Key: { pk: videoKey(projectId, videoId).pk, sk: versionSortKey('CODE', version) },
      ConsistentRead: true
    }))
    return Item === undefined ? undefined : toCodeVersion(Item)
  }

  /** The committed latest version number of a video; 404 when the video is unknown. */
  async function latestVersionOf (projectId: string, videoId: string): Promise<number> {
    const record = await readVideoItem(projectId, videoId)
    if (record === undefined) throw notFound(`video ${projectId}/${videoId} does not exist`)
    return (record.latestCodeVersion as number | undefined) ?? 0
  }

  /** One committed version's record (without content); 404 for an unknown video or version. */
  async function getVersion (projectId: string, videoId: string, version: VersionSelector): Promise<CodeVersionRecord> {
    if (version !== 'latest' || config.codeCacheTtlMs === 0) return await lookupVersion(projectId, videoId, version)
    const cacheKey = cacheKeyOf(projectId, videoId)
    const cached = latest.get(cacheKey)
    recordCodeCache(cached !== undefined)
    if (cached !== undefined) return cached.record
    // Concurrent misses share one lookup, so an expiring entry does not send every waiting request to storage.
    let pending = pendingLatest.get(cacheKey)
    if (pending === undefined) {
      pending = lookupVersion(projectId, videoId, 'latest').finally(() => { if (pendingLatest.get(cacheKey) === pending) pendingLatest.delete(cacheKey) })
      pendingLatest.set(cacheKey, pending)
    }
    return await pending
  }

  async function lookupVersion (projectId: string, videoId: string, version: VersionSelector): Promise<CodeVersionRecord> {
    const cacheKey = cacheKeyOf(projectId, videoId)
    const latestVersion = await latestVersionOf(projectId, videoId)
    if (latestVersion === 0) throw notFound(`video ${projectId}/${videoId} has no code yet`)
    const wanted = version === 'latest' ? latestVersion : version
    if (wanted > latestVersion) throw notFound(`code version ${wanted} of ${projectId}/${videoId} does not exist; the latest is ${latestVersion}`)
    const record = await readVersionItem(projectId, videoId, wanted)
    if (record === undefined) throw notFound(`code version ${wanted} of ${projectId}/${videoId} does not exist`)
    if (wanted === latestVersion) latest.offer(cacheKey, { version: wanted, record })
    return record
  }

  async function readContent (record: CodeVersionRecord): Promise<string> {
    const { Body } = await s3.send(new GetObjectCommand({ Bucket: record.bucket, Key: record.key }))
    if (Body === undefined) throw serviceUnavailable('the code object could not be read; retry shortly')
    return await Body.transformToString('utf-8')
  }

  async function presign (record: CodeVersionRecord): Promise<{ downloadUrl: string, expiresAt: string }> {
    const expiresAt = new Date(Date.now() + config.presignExpiresSeconds * 1000).toISOString()
    const downloadUrl = await getSignedUrl(s3, new GetObjectCommand({ Bucket: record.bucket, Key: record.key }), { expiresIn: config.presignExpiresSeconds })
    return { downloadUrl, expiresAt }
  }

  /** A version with its content and a download URL; the latest one comes from this replica's cache when it can. */
  async function withContent (record: CodeVersionRecord): Promise<CodeVersionView> {
    const cacheKey = cacheKeyOf(record.projectId, record.videoId)
    const cached = latest.get(cacheKey)
    const current = cached !== undefined && cached.version === record.version && cached.record.sha256 === record.sha256 ? cached : undefined
    if (current?.view !== undefined) return current.view
    const [content, download] = await Promise.all([current?.content ?? readContent(record), presign(record)])
    // One immutable view per cached version, so callers may memoise work done on it (its JSON).
    const view = Object.freeze({ ...record, content, ...download })
    if (current !== undefined) latest.offer(cacheKey, { ...current, content, view })
    return view
  }

  async function listVersions (projectId: string, videoId: string, { limit, cursor }: { limit: number, cursor?: string }): Promise<{ items: CodeVersionRecord[], nextCursor: string | null }> {
    const exclusiveStartKey = cursor === undefined ? undefined : decodeCodeCursor(cursor, projectId, videoId)
    const latestVersion = await latestVersionOf(projectId, videoId)
    if (latestVersion === 0) return { items: [], nextCursor: null }
    // Bounded by the committed latest, so a version still being written never shows.
    const { Items = [], LastEvaluatedKey } = await ddb.send(new QueryCommand({
      TableName: table,
      KeyConditionExpression: 'pk = :pk AND sk BETWEEN :first AND :latest',
      ExpressionAttributeValues: { ':pk': videoKey(projectId, videoId).pk, ':first': versionSortKey('CODE', 1), ':latest': versionSortKey('CODE', latestVersion) },
      ScanIndexForward: false,
      Limit: limit,
      ExclusiveStartKey: exclusiveStartKey
    }))
    const items = Items.map(toCodeVersion)
    // Versions run 1..latest without gaps: a page that reached version 1 is the last one.
    return { items, nextCursor: items.at(-1)?.version === 1 ? null : encodeCodeCursor(LastEvaluatedKey) }
  }

  /** Unified diff from one version to another (either may be `latest`). */
  async function diffVersions (projectId: string, videoId: string, version: VersionSelector, from: VersionSelector): Promise<string> {
    const [target, base] = await Promise.all([getVersion(projectId, videoId, version), getVersion(projectId, videoId, from)])
    const [targetText, baseText] = await Promise.all([readContent(target), readContent(base)])
    return createTwoFilesPatch(`a/${base.filename}`, `b/${target.filename}`, baseText, targetText, `v${base.version}`, `v${target.version}`)
  }

  /** Applies retention or a legal hold where the bucket has Object Lock, and records it; otherwise a 409 and no change. */
  async function lockVersion (projectId: string, videoId: string, version: VersionSelector, request: CodeLockRequestType): Promise<CodeVersionRecord> {
    const record = await getVersion(projectId, videoId, version)
    await assertLockable(s3, record.bucket, request)
    await applyObjectLock(s3, record.bucket, record.key, request)
    const lock = nextLockState(record.lock, request)
    const { Attributes } = await ddb.send(new UpdateCommand({
      TableName: table,
      Key: { pk: videoKey(projectId, videoId).pk, sk: versionSortKey('CODE', record.version) },
      UpdateExpression: 'SET #lock = :lock, locked = :locked',
      ConditionExpression: 'attribute_exists(pk)',
      ExpressionAttributeNames: { '#lock': 'lock' },
      ExpressionAttributeValues: { ':lock': lock, ':locked': isLocked(lock) },
      ReturnValues: 'ALL_NEW'
    }))
    latest.forget(cacheKeyOf(projectId, videoId))
    return toCodeVersion(Attributes ?? {})
  }

  /**
   * Removes what a failed write left and frees its number, but only while the claim is still ours: a claim that
   * expired may have been taken by another writer, whose object now sits at the same key. What stays is invisible
   * (readers stop at the committed latest) and is overwritten by the next holder of the number.
   */
  async function discard (held: VersionClaim, key: string): Promise<void> {
    if (!await claims.holds(held).catch(() => true)) return
    await Promise.allSettled([
      ddb.send(new DeleteCommand({ TableName: table, Key: { pk: videoKey(held.projectId, held.videoId).pk, sk: versionSortKey('CODE', held.version) } })),
      s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }))
    ])
    await claims.release(held).catch(() => {})
  }

  async function existingVersion (projectId: string, videoId: string, version: number, lock: CodeLockRequestType | undefined): Promise<CodeVersionRecord> {
    if (lock !== undefined) return await lockVersion(projectId, videoId, version, lock)
    const record = await readVersionItem(projectId, videoId, version)
    if (record === undefined) throw serviceUnavailable('the latest code version is being changed; retry shortly', 1)
    return record
  }

  /**
   * Stores a new version: 201 semantics (created) or, when the content is the latest's, that version (not created).
   * Claim the number, write S3, write the item, then commit; any failure before the commit leaves nothing visible.
   */
  async function createVersion (input: NewCodeVersion): Promise<{ created: boolean, codeVersion: CodeVersionRecord }> {
    const { projectId, videoId } = input
    const { bytes, text } = checkContent(input.content, config.maxCodeBytes)
    const filename = resolveFilename(videoId, input.filename, input.sceneNumber)
    const { contentType, language } = describeFile(filename)
    const sha256 = sha256Hex(bytes)
    if (input.lock !== undefined) await assertLockable(s3, bucket, input.lock)

    const before = await readVideoItem(projectId, videoId)
    // The same content again is the existing version, unless the edit names a base that is not the latest: then the
    // writer worked on stale code and must hear so (409 from the claim), even if it ended where the latest is.
    const baseIsCurrent = input.baseVersion === undefined || input.baseVersion === (before?.latestCodeVersion ?? 0)
    if (baseIsCurrent && isLatest(before, sha256, filename)) {
      return { created: false, codeVersion: await existingVersion(projectId, videoId, before.latestCodeVersion, input.lock) }
    }
    const held = await claims.claim({ kind: 'CODE', projectId, videoId, expectedLatest: input.baseVersion })
    if (isLatest(held.previous, sha256, filename)) {
      await claims.release(held)
      return { created: false, codeVersion: await existingVersion(projectId, videoId, held.previous.latestCodeVersion, input.lock) }
    }

    const version = held.version
    const key = codeObjectKey(projectId, videoId, version, filename)
    const lock = input.lock === undefined ? undefined : nextLockState(undefined, input.lock)
    const record: CodeVersionRecord = {
      projectId,
      videoId,
      version,
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
    }
    try {
      await s3.send(new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: bytes,
        ContentType: contentType,
        ContentLength: bytes.length,
        ChecksumSHA256: Buffer.from(sha256, 'hex').toString('base64'),
        Metadata: { sha256, project: projectId, video: videoId, version: String(version) },
        ...encryption(config),
        ...objectLockParameters(input.lock)
      }))
      await ddb.send(new PutCommand({
        TableName: table,
        Item: { pk: videoKey(projectId, videoId).pk, sk: versionSortKey('CODE', version), kind: 'codeVersion', ...record }
      }))
    } catch (error) {
      await discard(held, key)
      throw error
    }

    const previousStatus = (held.previous?.status as string | undefined) ?? 'created'
    try {
      await claims.commit(held, {
        latestCodeSha256: sha256,
        latestCodeKey: key,
        ...(previousStatus === 'created' ? { status: 'code_ready' } : {})
      })
    } catch (error) {
      // claims.commit returns when a commit whose answer was lost did land; here it did not (or cannot be known).
      await discard(held, key)
      throw error
    }
    // A lookup that started before this commit must not answer requests that arrive after it.
    pendingLatest.delete(cacheKeyOf(projectId, videoId))
    latest.offer(cacheKeyOf(projectId, videoId), { version, record, content: text })
    recordUploadBytes('code', record.sizeBytes)
    return { created: true, codeVersion: record }
  }

  return { createVersion, getVersion, withContent, listVersions, diffVersions, lockVersion }
}

export type CodeStore = ReturnType<typeof createCodeStore>
