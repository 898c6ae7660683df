// Code versions: bytes in S3 under a key unique to the write, one item per version in DynamoDB written once and
// conditionally (src/versions/), so a version exists exactly when its item does and a repeated write finds its own.
// Reading here; writing a new version: write.ts.
import { GetObjectCommand } from '@aws-sdk/client-s3'
import { UpdateCommand } from '@aws-sdk/lib-dynamodb'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import type { AwsClients } from '../aws/clients.js'
import type { Config } from '../config.js'
import { notFound, serviceUnavailable } from '../errors.js'
import { versionKey } from '../table/keys.js'
import { readVideoRecord } from '../table/video-record.js'
import { createVersions, type VersionedObjectsContext } from '../versions/store.js'
import { createLatestCache, type LatestCache } from './latest-cache.js'
import { recordCodeCache } from '../http/metrics.js'
import { applyObjectLock, assertLockable, isLocked, nextLockState } from './object-lock.js'
import { decodeCodeCursor, encodeCodeCursor, toCodeVersion, type CodeVersionRecord, type CodeVersionView } from './records.js'
import { createVersion } from './write.js'
import type { CodeLockRequestType } from '../../schemas/code.js'
import fp from 'fastify-plugin'
import { bindContext } from '../stores.js'

export type { CodeVersionRecord, CodeVersionView } from './records.js'
export type { NewCodeVersion } from './write.js'

interface LatestEntry {
  version: number
  record: CodeVersionRecord
  content?: string
  view?: CodeVersionView
}

export type VersionSelector = number | 'latest'

export interface CodeContext extends VersionedObjectsContext {
  /** this replica's memory of each video's latest version, and the lookups of it in flight */
  latest: LatestCache<LatestEntry>
  pendingLatest: Map<string, Promise<CodeVersionRecord>>
}

export const cacheKeyOf = (projectId: string, videoId: string): string => `${projectId}/${videoId}`

/** One version's record (without content); 404 for an unknown video or version. */
export async function getVersion (context: CodeContext, projectId: string, videoId: string, version: VersionSelector): Promise<CodeVersionRecord> {
  const { config, latest, pendingLatest } = context
  if (version !== 'latest' || config.codeCacheTtlMs === 0) return await lookupVersion(context, projectId, videoId, version)
  const cacheKey = cacheKeyOf(projectId, videoId)
  const cached = latest.get(cacheKey)
  recordCodeCache(cached !== undefined)
  if (cached !== undefined) return cached.record
  // Concurrent misses share one lookup, so an expiring entry does not send every waiting request to storage.
  let pending = pendingLatest.get(cacheKey)
  if (pending === undefined) {
    pending = lookupVersion(context, projectId, videoId, 'latest').finally(() => { if (pendingLatest.get(cacheKey) === pending) pendingLatest.delete(cacheKey) })
    pendingLatest.set(cacheKey, pending)
  }
  return await pending
}

/** The version item itself (the latest is the highest one): one read, then the reason when there is none. */
async function lookupVersion ({ ddb, table, versions, latest }: CodeContext, projectId: string, videoId: string, version: VersionSelector): Promise<CodeVersionRecord> {
  const item = version === 'latest' ? await versions.latest('CODE', projectId, videoId) : await versions.get('CODE', projectId, videoId, version)
  if (item === undefined) {
    if (await readVideoRecord(ddb, table, projectId, videoId) === undefined) throw notFound(`video ${projectId}/${videoId} does not exist`)
    if (version === 'latest') throw notFound(`video ${projectId}/${videoId} has no code yet`)
    const top = (await versions.latest('CODE', projectId, videoId))?.version as number | undefined
    throw notFound(`code version ${version} of ${projectId}/${videoId} does not exist; the latest is ${top ?? 'none'}`)
  }
  const record = toCodeVersion(item)
  if (version === 'latest') latest.offer(cacheKeyOf(projectId, videoId), { version: record.version, record })
  return record
}

async function readContent ({ s3 }: CodeContext, record: CodeVersionRecord): Promise<string> {
  const { Body } = await s3.send(new GetObjectCommand({ Bucket: record.bucket, Key: record.key }))
  if (Body === undefined) throw serviceUnavailable('the code object could not be read; retry shortly')
  return await Body.transformToString('utf-8')
}

async function presign ({ s3, config }: CodeContext, record: CodeVersionRecord): Promise<{ downloadUrl: string, expiresAt: string }> {
  const expiresAt = new Date(Date.now() + config.presignExpiresSeconds * 1000).toISOString()
  const downloadUrl = await getSignedUrl(s3, new GetObjectCommand({ Bucket: record.bucket, Key: record.key }), { expiresIn: config.presignExpiresSeconds })
  return { downloadUrl, expiresAt }
}

/** A version with its content and a download URL; the latest one comes from this replica's cache when it can. */
export async function withContent (context: CodeContext, record: CodeVersionRecord): Promise<CodeVersionView> {
  const { latest } = context
  const cacheKey = cacheKeyOf(record.projectId, record.videoId)
  const cached = latest.get(cacheKey)
  const current = cached !== undefined && cached.version === record.version && cached.record.sha256 === record.sha256 ? cached : undefined
  if (current?.view !== undefined) return current.view
  const [content, download] = await Promise.all([current?.content ?? readContent(context, record), presign(context, record)])
  // One immutable view per cached version, so callers may memoise work done on it (its JSON).
  const view = Object.freeze({ ...record, content, ...download })
  if (current !== undefined) latest.offer(cacheKey, { ...current, content, view })
  return view
}

export async function listVersions ({ ddb, table, versions }: CodeContext, projectId: string, videoId: string, { limit, cursor }: { limit: number, cursor?: string }): Promise<{ items: CodeVersionRecord[], nextCursor: string | null }> {
  const exclusiveStartKey = cursor === undefined ? undefined : decodeCodeCursor(cursor, projectId, videoId)
  if (await readVideoRecord(ddb, table, projectId, videoId) === undefined) throw notFound(`video ${projectId}/${videoId} does not exist`)
  const page = await versions.page('CODE', projectId, videoId, limit, exclusiveStartKey)
  const items = page.items.map(toCodeVersion)
  // Versions run 1..latest without gaps: a page that reached version 1 is the last one.
  return { items, nextCursor: items.length === 0 || items.at(-1)?.version === 1 ? null : encodeCodeCursor(page.lastKey) }
}

/** Unified diff from one version to another (either may be `latest`). */
export async function diffVersions (context: CodeContext, projectId: string, videoId: string, version: VersionSelector, from: VersionSelector): Promise<string> {
  const [target, base] = await Promise.all([getVersion(context, projectId, videoId, version), getVersion(context, projectId, videoId, from)])
  const [targetText, baseText] = await Promise.all([readContent(context, target), readContent(context, base)])
  // Loaded on the first diff, not at every start.
  const { createTwoFilesPatch } = await import('diff')
  return createTwoFilesPatch(`a/${base.filename}`, `b/${target.filename}`, baseText, targetText, `v${base.version}`, `v${target.version}`)
}

/** Applies retention or a legal hold where the bucket has Object Lock, and records it; otherwise a 409 and no change. */
export async function lockVersion (context: CodeContext, projectId: string, videoId: string, version: VersionSelector, request: CodeLockRequestType): Promise<CodeVersionRecord> {
  const { s3, ddb, table, latest } = context
  const record = await getVersion(context, projectId, videoId, version)
  await assertLockable(s3, record.bucket, request)
  await applyObjectLock(s3, record.bucket, record.key, request)
  const lock = nextLockState(record.lock, request)
  const { Attributes } = await ddb.send(new UpdateCommand({
    TableName: table,
    Key: versionKey('CODE', projectId, videoId, record.version),
    UpdateExpression: 'SET #lock = :lock, locked = :locked',
    ConditionExpression: 'attribute_exists(pk)',
    ExpressionAttributeNames: { '#lock': 'lock' },
    ExpressionAttributeValues: { ':lock': lock, ':locked': isLocked(lock) },
    ReturnValues: 'ALL_NEW'
  }))
  latest.forget(cacheKeyOf(projectId, videoId))
  return toCodeVersion(Attributes ?? {})
}

export function createCodeStore ({ aws, config, log }: { aws: AwsClients, config: Config, log?: CodeContext['log'] }) {
  const context: CodeContext = {
    s3: aws.s3,
    ddb: aws.ddb,
    table: config.table,
    bucket: config.codeBucket,
    config,
    versions: createVersions({ ddb: aws.ddb, table: config.table, commitDeadlineMs: config.commitDeadlineMs, log }),
    latest: createLatestCache<LatestEntry>({ ttlMs: config.codeCacheTtlMs, sizeOf: (entry) => 1024 + (entry.content?.length ?? 0) }),
    pendingLatest: new Map(),
    log
  }
  return bindContext(context, { createVersion, getVersion, withContent, listVersions, diffVersions, lockVersion })
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
