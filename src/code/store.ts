// Code versions: bytes in S3 under a key unique to the write, one item per version in DynamoDB written once and
// conditionally (src/versions/store.ts), so a version exists exactly when its item does and a repeated write finds its own.
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { createTwoFilesPatch } from 'diff'
import type { AwsClients } from '../aws/clients.js'
import type { Config } from '../config.js'
import { conflict, notFound, serviceUnavailable } from '../errors.js'
import { ensureVideoRecord, MAX_VERSION, readVideoRecord, versionSortKey, videoKey } from '../table/video-item.js'
import { createVersions, OutcomeUnknown, type WriteIdentity } from '../versions/store.js'
import { checkContent, describeFile, resolveFilename, sha256Hex } from './files.js'
import { createLatestCache } from './latest-cache.js'
import { recordBestEffortFailure, recordCodeCache, recordUploadBytes } from '../http/metrics.js'
import { applyObjectLock, assertLockable, isLocked, nextLockState, objectLockParameters } from './object-lock.js'
import { codeObjectKey, decodeCodeCursor, encodeCodeCursor, toCodeVersion, type CodeVersionRecord } from './records.js'
import type { CodeLockRequestType } from '../../schemas/code.js'
import fp from 'fastify-plugin'

export type { CodeVersionRecord } from './records.js'

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
const sameFile = (item: Record<string, unknown> | undefined, sha256: string, filename: string): item is Record<string, unknown> =>
  item !== undefined && item.sha256 === sha256 && item.filename === filename

export function createCodeStore ({ aws, config, log }: { aws: AwsClients, config: Config, log?: { warn: (object: object, message: string) => void } }) {
  const { s3, ddb } = aws
  const table = config.table
  const bucket = config.codeBucket
  const versions = createVersions({ ddb, table, commitDeadlineMs: config.commitDeadlineMs })
  const pendingLatest = new Map<string, Promise<CodeVersionRecord>>()
  const latest = createLatestCache<LatestEntry>({ ttlMs: config.codeCacheTtlMs, sizeOf: (entry) => 1024 + (entry.content?.length ?? 0) })

  const readVideoItem = async (projectId: string, videoId: string): Promise<Record<string, unknown> | undefined> =>
    await readVideoRecord(ddb, table, projectId, videoId)

  /** One version's record (without content); 404 for an unknown video or version. */
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

  /** The version item itself (the latest is the highest one): one read, then the reason when there is none. */
  async function lookupVersion (projectId: string, videoId: string, version: VersionSelector): Promise<CodeVersionRecord> {
    const item = version === 'latest' ? await versions.latest('CODE', projectId, videoId) : await versions.get('CODE', projectId, videoId, version)
    if (item === undefined) {
      if (await readVideoItem(projectId, videoId) === undefined) throw notFound(`video ${projectId}/${videoId} does not exist`)
      if (version === 'latest') throw notFound(`video ${projectId}/${videoId} has no code yet`)
      const top = (await versions.latest('CODE', projectId, videoId))?.version as number | undefined
      throw notFound(`code version ${version} of ${projectId}/${videoId} does not exist; the latest is ${top ?? 'none'}`)
    }
    const record = toCodeVersion(item)
    if (version === 'latest') latest.offer(cacheKeyOf(projectId, videoId), { version: record.version, record })
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
    if (await readVideoItem(projectId, videoId) === undefined) throw notFound(`video ${projectId}/${videoId} does not exist`)
    const { Items = [], LastEvaluatedKey } = await ddb.send(new QueryCommand({
      TableName: table,
      KeyConditionExpression: 'pk = :pk AND sk BETWEEN :first AND :last',
      ExpressionAttributeValues: { ':pk': videoKey(projectId, videoId).pk, ':first': versionSortKey('CODE', 1), ':last': versionSortKey('CODE', MAX_VERSION) },
      ScanIndexForward: false,
      ConsistentRead: true,
      Limit: limit,
      ExclusiveStartKey: exclusiveStartKey
    }))
    const items = Items.map(toCodeVersion)
    // Versions run 1..latest without gaps: a page that reached version 1 is the last one.
    return { items, nextCursor: items.length === 0 || items.at(-1)?.version === 1 ? null : encodeCodeCursor(LastEvaluatedKey) }
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

  async function existingVersion (projectId: string, videoId: string, item: Record<string, unknown>, lock: CodeLockRequestType | undefined): Promise<CodeVersionRecord> {
    if (lock !== undefined) return await lockVersion(projectId, videoId, item.version as number, lock)
    return toCodeVersion(item)
  }

  /** Removes the object of a write that will never be a version (best effort: reconcile removes what stays). */
  async function discardObject (key: string): Promise<void> {
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })).catch((cleanup: unknown) => { recordBestEffortFailure('code-object-cleanup', cleanup, log) })
  }

  /**
   * Stores a new version: created, or (not created) the latest when the content equals it. The bytes go first, under
   * a key only this write uses; the version exists once its item is committed. A repeat of a write (same identity)
   * answers the version its earlier attempt committed instead of storing another.
   */
  async function createVersion (input: NewCodeVersion, identity: WriteIdentity): Promise<{ created: boolean, codeVersion: CodeVersionRecord }> {
    const { projectId, videoId } = input
    const { bytes, text } = checkContent(input.content, config.maxCodeBytes)
    const filename = resolveFilename(videoId, input.filename, input.sceneNumber)
    const { contentType, language } = describeFile(filename)
    const sha256 = sha256Hex(bytes)
    if (input.lock !== undefined) await assertLockable(s3, bucket, input.lock)

    const top = await versions.latest('CODE', projectId, videoId)
    if (identity.mayExist) {
      const mine = top?.commitToken === identity.token ? top : await versions.findByToken('CODE', projectId, videoId, identity)
      if (mine !== undefined) return { created: true, codeVersion: toCodeVersion(mine) }
    }
    const topVersion = (top?.version as number | undefined) ?? 0
    // An edit must name the latest: a writer that worked on stale code hears so, even if it ended where the latest is.
    if (input.baseVersion !== undefined && input.baseVersion !== topVersion) {
      throw conflict(`version ${input.baseVersion} is not the latest; the latest is ${topVersion}`, { latestVersion: topVersion })
    }
    if (sameFile(top, sha256, filename)) return { created: false, codeVersion: await existingVersion(projectId, videoId, top, input.lock) }

    const key = codeObjectKey(projectId, videoId, identity.token, filename)
    const lock = input.lock === undefined ? undefined : nextLockState(undefined, input.lock)
    await s3.send(new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: bytes,
      ContentType: contentType,
      ContentLength: bytes.length,
      ChecksumSHA256: Buffer.from(sha256, 'hex').toString('base64'),
      Metadata: { sha256, project: projectId, video: videoId },
      ...encryption(config),
      ...objectLockParameters(input.lock)
    }))
    let committed
    let videoStatus: unknown
    try {
      // The first version creates the video record; later ones find it there (a DELETE since is caught by advance).
      if (top === undefined) videoStatus = (await ensureVideoRecord(ddb, table, projectId, videoId)).status
      committed = await versions.commit({
        kind: 'CODE',
        projectId,
        videoId,
        identity,
        expectedLatest: input.baseVersion,
        // Writers of the same content that raced past the check above: the first commits, the rest answer its version.
        reuse: (latestItem) => sameFile(latestItem, sha256, filename),
        build: (version) => ({
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
    } catch (error) {
      // Only a write that cannot land any more may take its object along; an unknown outcome leaves it to reconcile.
      if (!(error instanceof OutcomeUnknown) && !identity.mayExist) {
        await discardObject(key)
      }
      throw error
    }
    if (committed.reused === true) {
      if (committed.inDoubt !== true && !identity.mayExist) await discardObject(key)
      return { created: false, codeVersion: await existingVersion(projectId, videoId, committed.item, input.lock) }
    }
    const record = toCodeVersion(committed.item)
    const advanced = await versions.advance('CODE', projectId, videoId, record.version, {
      latestCodeSha256: record.sha256,
      latestCodeKey: record.key,
      ...(videoStatus === 'created' ? { status: 'code_ready' } : {})
    }).catch((error: unknown) => { recordBestEffortFailure('code-latest-pointer', error, log) })
    if (advanced === 'gone') {
      // The video was deleted while this version was committed: its DELETE may not have seen the item (and took the
      // object along), so the version goes with it instead of outliving the video without its bytes.
      await versions.withdraw('CODE', projectId, videoId, record.version, identity.token)
      await discardObject(key)
      latest.forget(cacheKeyOf(projectId, videoId))
      throw conflict(`video ${projectId}/${videoId} was deleted (or a DELETE of it began and has not finished) while this code version was being stored; nothing was kept`)
    }
    // A lookup that started before this commit must not answer requests that arrive after it.
    pendingLatest.delete(cacheKeyOf(projectId, videoId))
    latest.offer(cacheKeyOf(projectId, videoId), { version: record.version, record, content: text })
    if (!committed.recovered) recordUploadBytes('code', record.sizeBytes)
    return { created: true, codeVersion: record }
  }

  return { createVersion, getVersion, withContent, listVersions, diffVersions, lockVersion }
}

export type CodeStore = ReturnType<typeof createCodeStore>

declare module 'fastify' {
  interface FastifyInstance {
    codeStore: CodeStore
  }
}

export default fp(async function codeStorePlugin (app) {
  app.decorate('codeStore', createCodeStore({ aws: app.aws, config: app.config, log: app.log }))
}, { name: 'code-store', dependencies: ['aws'] })
