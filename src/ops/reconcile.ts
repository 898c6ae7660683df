// `npm run reconcile [-- --fix] [--deep] [--grace-minutes=15] [--staging-grace-minutes=1440]`: compares both buckets
// with the table, deciding only from what the records say. Finds
//   orphans:      objects no version item, scene item or live upload session names (older than the grace period);
//   broken:       version/scene items whose object is missing or differs in size or sha256;
//   missing:      version numbers below the highest one (or below the video's latest pointer) with no item: gaps;
//   lagging:      video records whose latestCodeVersion / latestRenderVersion is below their highest version item;
//   abandoned:    proxied sessions still `uploading` whose lease lapsed (their replica died), and their S3 multipart
//                 uploads; direct ones are only reported (they read pending: complete may be called again);
//   stale multipart uploads no live session owns, older than the grace period;
//   expired idempotency records, where the table has no TTL to remove them.
// --fix deletes orphans, marks broken records, advances lagging pointers, marks abandoned sessions failed
// (failureReason abandoned) and aborts their multipart uploads, and deletes expired idempotency records. It never
// deletes an object a version or scene item references, whatever its state.
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import {
  AbortMultipartUploadCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsCommand
} from '@aws-sdk/client-s3'
import { DescribeTimeToLiveCommand } from '@aws-sdk/client-dynamodb'
import { DeleteCommand, ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb'
import { createAwsClients, type AwsClients } from '../aws/clients.js'
import { ConfigError, loadConfig, type Config } from '../config.js'
import { PORTS_FILE, startEmbeddedAws } from '../local/embedded.js'
import { ABANDONED_ERROR, TERMINAL_UPLOAD_STATUSES, leaseLapsed, toSession } from '../uploads/sessions.js'
import { isConditionFailure, versionSortKey } from '../table/video-item.js'

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

interface StoredObject { bucket: string, key: string, sizeBytes: number, lastModified?: string }
interface RecordRef { pk: string, sk: string, bucket: string, key: string, sizeBytes: number, sha256: string }
export interface BrokenRecord extends RecordRef { problem: 'missing-object' | 'size' | 'sha256', actual?: number | string }
type Kind = 'CODE' | 'RENDER'

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
  orphans: StoredObject[]
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

const VERSION_SK = /^(CODE|RENDER)#(\d{9})$/
/** scene items: SCENE#{v}#{s} now, RENDER#{v}#SCENE#{s} before issue 10 */
const SCENE_SK = /^(?:SCENE#\d{9}#\d{5}|RENDER#\d{9}#SCENE#\d{5})$/
const LATEST: Record<Kind, string> = { CODE: 'latestCodeVersion', RENDER: 'latestRenderVersion' }

const statusOf = (error: unknown): number | undefined => (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode
const isMissing = (error: unknown): boolean => {
  const name = (error as { name?: string }).name
  return name === 'NotFound' || name === 'NoSuchKey' || statusOf(error) === 404
}
/** S3 that lacks a feature: s3rver answers 501 NotImplemented or 405 MethodNotAllowed. */
const isUnsupported = (error: unknown): boolean => {
  const name = (error as { name?: string }).name
  return name === 'NotImplemented' || name === 'MethodNotAllowed' || statusOf(error) === 501 || statusOf(error) === 405
}
const describeError = (error: unknown): string => `${(error as { name?: string }).name ?? 'Error'}${statusOf(error) === undefined ? '' : ` (${statusOf(error) ?? ''})`}`

/**
 * Every object of a bucket, page by page from the last key seen (ListObjects' Marker, which every S3 keeps): the
 * embedded s3rver builds ListObjectsV2 continuation tokens with a cipher only OpenSSL's legacy provider has
 * (--openssl-legacy-provider on Node 20+), so a V2 listing past one page answers 500 there, StartAfter or not.
 */
async function listObjects (aws: AwsClients, bucket: string, pageSize?: number): Promise<StoredObject[]> {
  const objects: StoredObject[] = []
  let after: string | undefined
  for (;;) {
    const page = await aws.s3.send(new ListObjectsCommand({ Bucket: bucket, Marker: after, MaxKeys: pageSize }))
    for (const object of page.Contents ?? []) {
      if (object.Key !== undefined) objects.push({ bucket, key: object.Key, sizeBytes: object.Size ?? 0, lastModified: object.LastModified?.toISOString() })
    }
    const last = page.Contents?.at(-1)?.Key
    if (page.IsTruncated !== true || last === undefined || last === after) return objects
    after = last
  }
}

/** Open multipart uploads of a bucket, or why this S3 cannot list them. */
async function listMultipartUploads (aws: AwsClients, bucket: string): Promise<{ uploads: OpenMultipartUpload[], unsupported?: string }> {
  const uploads: OpenMultipartUpload[] = []
  let keyMarker: string | undefined
  let uploadIdMarker: string | undefined
  try {
    for (;;) {
      const page = await aws.s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }))
      for (const upload of page.Uploads ?? []) {
        if (upload.Key !== undefined && upload.UploadId !== undefined) uploads.push({ bucket, key: upload.Key, uploadId: upload.UploadId, initiated: upload.Initiated?.toISOString() })
      }
      if (page.IsTruncated !== true) break
      keyMarker = page.NextKeyMarker
      uploadIdMarker = page.NextUploadIdMarker
    }
    return { uploads }
  } catch (error) {
    if (isUnsupported(error)) return { uploads, unsupported: `this S3 does not list multipart uploads: ListMultipartUploads answered ${describeError(error)}` }
    throw error
  }
}

async function scanTable (aws: AwsClients, table: string): Promise<Array<Record<string, unknown>>> {
  const items: Array<Record<string, unknown>> = []
  let startKey: Record<string, unknown> | undefined
  do {
    const page = await aws.ddb.send(new ScanCommand({ TableName: table, ConsistentRead: true, ExclusiveStartKey: startKey }))
    items.push(...(page.Items ?? []))
    startKey = page.LastEvaluatedKey
  } while (startKey !== undefined)
  return items
}

/** TTL status of the table: ENABLED where expired items go by themselves; anything else means reconcile removes them. */
async function ttlStatus (aws: AwsClients, table: string): Promise<string> {
  try {
    const { TimeToLiveDescription } = await aws.dynamodb.send(new DescribeTimeToLiveCommand({ TableName: table }))
    return TimeToLiveDescription?.TimeToLiveStatus ?? 'DISABLED'
  } catch (error) {
    return `unknown: ${describeError(error)}`
  }
}

/** Every string in an item (nested too), with s3://bucket/key paths also as their key: what it may name. */
function namedKeys (value: unknown, into: Set<string>): void {
  if (typeof value === 'string') {
    into.add(value)
    const path = /^s3:\/\/[^/]+\/(.+)$/.exec(value)
    if (path !== null) into.add(path[1])
  } else if (Array.isArray(value)) {
    for (const entry of value) namedKeys(entry, into)
  } else if (value !== null && typeof value === 'object') {
    for (const entry of Object.values(value)) namedKeys(entry, into)
  }
}

interface Classified {
  videos: Map<string, Record<string, unknown>>
  /** version and scene items */
  versionItems: Array<Record<string, unknown>>
  /** pk -> kind -> version -> item */
  versions: Map<string, Record<Kind, Map<number, Record<string, unknown>>>>
  sessions: Array<Record<string, unknown>>
  idempotency: Array<Record<string, unknown>>
}

function classify (items: Array<Record<string, unknown>>): Classified {
  const result: Classified = { videos: new Map(), versionItems: [], versions: new Map(), sessions: [], idempotency: [] }
  for (const item of items) {
    const pk = String(item.pk)
    const sk = String(item.sk)
    if (pk.startsWith('IDEMP#')) { result.idempotency.push(item); continue }
    if (sk === 'VIDEO') { result.videos.set(pk, item); continue }
    if (sk.startsWith('UPLOAD#')) { result.sessions.push(item); continue }
    if (SCENE_SK.test(sk)) { result.versionItems.push(item); continue }
    const match = VERSION_SK.exec(sk)
    if (match === null) continue
    result.versionItems.push(item)
    const byKind = result.versions.get(pk) ?? { CODE: new Map(), RENDER: new Map() }
    result.versions.set(pk, byKind)
    byKind[match[1] as Kind].set(Number(match[2]), item)
  }
  return result
}

/** Version gaps and lagging latest pointers, per video and kind. */
function versionFindings (classified: Classified): { missing: Array<{ pk: string, sk: string }>, lagging: LaggingLatest[] } {
  const missing: Array<{ pk: string, sk: string }> = []
  const lagging: LaggingLatest[] = []
  const pks = new Set([...classified.videos.keys(), ...classified.versions.keys()])
  for (const pk of [...pks].sort()) {
    const video = classified.videos.get(pk)
    for (const kind of ['CODE', 'RENDER'] as const) {
      const present = classified.versions.get(pk)?.[kind] ?? new Map<number, Record<string, unknown>>()
      const highest = Math.max(0, ...present.keys())
      const recorded = video?.[LATEST[kind]] as number | undefined
      if (video !== undefined && highest > (recorded ?? 0)) {
        lagging.push({ pk, projectId: video.projectId as string | undefined, videoId: video.videoId as string | undefined, kind, recorded: recorded ?? null, highest })
      }
      for (let version = 1; version <= Math.max(highest, recorded ?? 0); version++) {
        if (!present.has(version)) missing.push({ pk, sk: versionSortKey(kind, version) })
      }
    }
  }
  return { missing, lagging }
}

async function sha256Of (aws: AwsClients, bucket: string, key: string): Promise<string> {
  const { Body } = await aws.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
  const hash = createHash('sha256')
  for await (const chunk of Body as AsyncIterable<Uint8Array>) hash.update(chunk)
  return hash.digest('hex')
}

async function checkRecord (aws: AwsClients, record: RecordRef, deep: boolean): Promise<{ broken?: BrokenRecord, hashVerified: boolean }> {
  try {
    const head = await aws.s3.send(new HeadObjectCommand({ Bucket: record.bucket, Key: record.key }))
    if ((head.ContentLength ?? -1) !== record.sizeBytes) return { broken: { ...record, problem: 'size', actual: head.ContentLength }, hashVerified: false }
    const stated = head.Metadata?.sha256
    const actual = deep ? await sha256Of(aws, record.bucket, record.key) : stated
    if (actual !== undefined && actual !== record.sha256) return { broken: { ...record, problem: 'sha256', actual }, hashVerified: true }
    return { hashVerified: actual !== undefined }
  } catch (error) {
    if (isMissing(error)) return { broken: { ...record, problem: 'missing-object' }, hashVerified: false }
    throw error
  }
}

/**
 * The upload ids an object key may belong to: each folder segment and the file name without its extension
 * (videos/{p}/{v}/uploads/{id}/..., staging/{p}/{v}/{id}/..., videos/{p}/{v}/scenes/v{n}/{s}/{id}.ext).
 */
function uploadIdsIn (key: string): string[] {
  const segments = key.split('/')
  const file = segments.pop() ?? ''
  const dot = file.indexOf('.')
  return [...segments, dot === -1 ? file : file.slice(0, dot)]
}

/** Sets the pointer to the highest item (never lowers it) with what that version's commit would have set. */
async function advanceLatest (aws: AwsClients, config: Config, lag: LaggingLatest, item: Record<string, unknown>, video: Record<string, unknown> | undefined, now: number): Promise<boolean> {
  const set: Record<string, unknown> = { updatedAt: new Date(now).toISOString() }
  if (lag.kind === 'CODE') {
    if (typeof item.sha256 === 'string') set.latestCodeSha256 = item.sha256
    if (typeof item.key === 'string') set.latestCodeKey = item.key
    if ((video?.status ?? 'created') === 'created') set.status = 'code_ready'
  } else {
    if (typeof item.sha256 === 'string') set.latestRenderSha256 = item.sha256
    if (typeof item.key === 'string') set.latestRenderKey = item.key
    set.status = 'uploaded'
  }
  const names: Record<string, string> = { '#latest': LATEST[lag.kind] }
  const values: Record<string, unknown> = { ':version': lag.highest, ':one': 1 }
  const clauses = Object.entries(set).map(([name, value], index) => {
    names[`#a${index}`] = name
    values[`:a${index}`] = value
    return `#a${index} = :a${index}`
  })
  try {
    await aws.ddb.send(new UpdateCommand({
      TableName: config.table,
      Key: { pk: lag.pk, sk: 'VIDEO' },
      UpdateExpression: `SET #latest = :version, ${clauses.join(', ')} ADD revision :one`,
      ConditionExpression: 'attribute_exists(pk) AND (attribute_not_exists(#latest) OR #latest < :version)',
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values
    }))
    return true
  } catch (error) {
    // A writer advanced it meanwhile: nothing left to do.
    if (isConditionFailure(error)) return false
    throw error
  }
}

/** The check itself, on any clients and configuration; the tests call it after every fault. */
export async function reconcile ({ aws, config }: { aws: AwsClients, config: Config }, options: ReconcileOptions = {}): Promise<ReconcileReport> {
  const now = options.now ?? Date.now()
  const graceMs = options.graceMs ?? 15 * 60_000
  const stagingGraceMs = options.stagingGraceMs ?? 24 * 3_600_000
  const buckets = [...new Set([config.videoBucket, config.codeBucket])]
  const [items, ttl, ...listings] = await Promise.all([
    scanTable(aws, config.table),
    ttlStatus(aws, config.table),
    ...buckets.map(async (bucket) => await listObjects(aws, bucket, options.pageSize))
  ]) as [Array<Record<string, unknown>>, string, ...StoredObject[][]]
  const objects = listings.flat()
  const classified = classify(items)
  const { missing, lagging } = versionFindings(classified)

  // Sessions: which are live (their objects are in flight), which were abandoned by a replica that died.
  const liveUploads = new Set<string>()
  const liveNames = new Set<string>()
  const abandonedSessions: AbandonedSession[] = []
  const interruptedCompletions: AbandonedSession[] = []
  for (const item of classified.sessions) {
    const session = toSession(item, now)
    const uploadId = String(item.uploadId ?? String(item.sk).slice('UPLOAD#'.length))
    if (!TERMINAL_UPLOAD_STATUSES.includes(session.status)) {
      liveUploads.add(uploadId)
      namedKeys(item, liveNames)
    }
    if (leaseLapsed(item, now) && session.status !== 'expired') {
      const entry: AbandonedSession = {
        pk: String(item.pk), sk: String(item.sk), uploadId, projectId: item.projectId as string | undefined, videoId: item.videoId as string | undefined,
        mode: String(item.mode), leaseUntil: new Date(item.leaseUntil as number).toISOString()
      }
      if (item.mode === 'direct') interruptedCompletions.push(entry)
      else abandonedSessions.push(entry)
    }
  }

  // What the records name: every string of every version and scene item protects the object of that key.
  const referenced = new Set<string>()
  for (const item of classified.versionItems) namedKeys(item, referenced)
  const isOld = (object: { key: string, lastModified?: string }): boolean => {
    const age = now - Date.parse(object.lastModified ?? new Date(now).toISOString())
    return age >= (object.key.startsWith('staging/') ? stagingGraceMs : graceMs)
  }
  const ofLiveUpload = (key: string): boolean => liveNames.has(key) || uploadIdsIn(key).some((id) => liveUploads.has(id))
  const orphans = objects.filter((object) => !referenced.has(object.key) && !ofLiveUpload(object.key) && isOld(object))

  // Open multipart uploads: those of abandoned sessions, and any other no live session owns past the grace period.
  const multipart: ReconcileReport['multipartUploads'] = { supported: true, stale: [] }
  const abandonedIds = new Set(abandonedSessions.map((session) => session.uploadId))
  for (const bucket of buckets) {
    const { uploads, unsupported } = await listMultipartUploads(aws, bucket)
    if (unsupported !== undefined) { multipart.supported = false; multipart.reason = unsupported; continue }
    for (const upload of uploads) {
      const owner = uploadIdsIn(upload.key).find((id) => abandonedIds.has(id))
      if (owner !== undefined) { multipart.stale.push({ ...upload, sessionUploadId: owner }); continue }
      if (ofLiveUpload(upload.key) || liveNames.has(upload.uploadId)) continue
      if (isOld({ key: upload.key, lastModified: upload.initiated })) multipart.stale.push(upload)
    }
  }
  if (multipart.supported) {
    for (const session of abandonedSessions) session.multipartUploads = multipart.stale.filter((upload) => upload.sessionUploadId === session.uploadId).length
  }

  // The version and scene items, checked against their objects.
  const records: RecordRef[] = classified.versionItems
    .filter((item) => typeof item.key === 'string' && item.status !== 'broken')
    .map((item) => ({ pk: String(item.pk), sk: String(item.sk), bucket: String(item.bucket ?? (String(item.sk).startsWith('CODE#') ? config.codeBucket : config.videoBucket)), key: item.key as string, sizeBytes: Number(item.sizeBytes), sha256: String(item.sha256) }))
  const brokenRecords: BrokenRecord[] = []
  let unverifiedHashes = 0
  for (const record of records) {
    const { broken, hashVerified } = await checkRecord(aws, record, options.deep === true)
    if (broken !== undefined) brokenRecords.push(broken)
    else if (!hashVerified) unverifiedHashes++
  }

  // Idempotency records: kept 24 h by TTL; where the table has none, reconcile is what removes them.
  const ttlEnabled = ttl === 'ENABLED' || ttl === 'ENABLING'
  const expiredIdempotency = ttlEnabled ? [] : classified.idempotency.filter((item) => typeof item.expiresAtEpoch === 'number' && item.expiresAtEpoch * 1000 < now)

  const report: ReconcileReport = {
    checkedAt: new Date(now).toISOString(),
    buckets,
    table: config.table,
    objects: objects.length,
    records: records.length,
    unverifiedHashes,
    orphans,
    brokenRecords,
    missingRecords: missing,
    laggingLatest: lagging,
    abandonedSessions,
    interruptedCompletions,
    multipartUploads: multipart,
    idempotency: { records: classified.idempotency.length, ttl, expired: expiredIdempotency.length }
  }
  if (options.fix === true) {
    const fixed: NonNullable<ReconcileReport['fixed']> = { deletedObjects: 0, markedBroken: 0, advancedLatest: 0, markedAbandoned: 0, abortedMultipartUploads: 0, deletedIdempotencyRecords: 0 }
    const skipped: string[] = []
    for (const orphan of orphans) {
      await aws.s3.send(new DeleteObjectCommand({ Bucket: orphan.bucket, Key: orphan.key }))
      fixed.deletedObjects++
    }
    for (const record of brokenRecords) {
      await aws.ddb.send(new UpdateCommand({
        TableName: config.table,
        Key: { pk: record.pk, sk: record.sk },
        UpdateExpression: 'SET #status = :broken, brokenReason = :reason, brokenAt = :now',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':broken': 'broken', ':reason': record.problem, ':now': new Date(now).toISOString() }
      }))
      fixed.markedBroken++
    }
    for (const lag of lagging) {
      const item = classified.versions.get(lag.pk)?.[lag.kind].get(lag.highest) ?? {}
      if (await advanceLatest(aws, config, lag, item, classified.videos.get(lag.pk), now)) fixed.advancedLatest++
    }
    for (const session of abandonedSessions) {
      const stored = classified.sessions.find((item) => item.pk === session.pk && item.sk === session.sk)
      try {
        // Only while nobody renewed it since the scan: a replica that came back keeps its upload.
        await aws.ddb.send(new UpdateCommand({
          TableName: config.table,
          Key: { pk: session.pk, sk: session.sk },
          UpdateExpression: 'SET #status = :failed, failureReason = :abandoned, lastError = :error, updatedAt = :now',
          ConditionExpression: '#status = :uploading AND leaseUntil = :seen',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':failed': 'failed', ':abandoned': 'abandoned', ':error': ABANDONED_ERROR, ':now': new Date(now).toISOString(), ':uploading': 'uploading', ':seen': stored?.leaseUntil }
        }))
        fixed.markedAbandoned++
      } catch (error) {
        if (!isConditionFailure(error)) throw error
      }
    }
    for (const upload of multipart.stale) {
      try {
        await aws.s3.send(new AbortMultipartUploadCommand({ Bucket: upload.bucket, Key: upload.key, UploadId: upload.uploadId }))
        fixed.abortedMultipartUploads++
      } catch (error) {
        if (!isUnsupported(error) && (error as { name?: string }).name !== 'NoSuchUpload') throw error
        if (isUnsupported(error)) skipped.push(`AbortMultipartUpload answered ${describeError(error)}`)
      }
    }
    if (!multipart.supported && abandonedSessions.length > 0) {
      skipped.push(`multipart uploads of abandoned sessions were not aborted: ${multipart.reason ?? 'not supported'}; S3's lifecycle rule (AbortIncompleteMultipartUpload, 1 day) removes them where it runs`)
    }
    for (const item of expiredIdempotency) {
      try {
        await aws.ddb.send(new DeleteCommand({
          TableName: config.table,
          Key: { pk: item.pk, sk: item.sk },
          ConditionExpression: 'expiresAtEpoch < :now',
          ExpressionAttributeValues: { ':now': Math.floor(now / 1000) }
        }))
        fixed.deletedIdempotencyRecords++
      } catch (error) {
        if (!isConditionFailure(error)) throw error
      }
    }
    if (skipped.length > 0) fixed.skipped = [...new Set(skipped)]
    report.fixed = fixed
  }
  return report
}

/** Nothing --fix would change and nothing it cannot (gaps stay reported: a lost item cannot be invented). */
export const isClean = (report: ReconcileReport): boolean =>
  report.orphans.length === 0 && report.brokenRecords.length === 0 && report.missingRecords.length === 0 &&
  (report.laggingLatest ?? []).length === 0 && (report.abandonedSessions ?? []).length === 0 &&
  (report.multipartUploads?.stale ?? []).length === 0 && (report.idempotency?.expired ?? 0) === 0

function minutesArg (name: string): number | undefined {
  const arg = process.argv.find((value) => value.startsWith(`--${name}=`))
  if (arg === undefined) return undefined
  const ms = Number(arg.slice(name.length + 3)) * 60_000
  if (!(ms >= 0)) throw new ConfigError(`--${name}= must be a number of minutes >= 0`)
  return ms
}

/**
 * The embedded emulators of a service that runs on this DATA_DIR now (their ports are in DATA_DIR/embedded-ports.json
 * and both answer as S3 and DynamoDB do), so reconcile talks to them instead of opening the same data a second time.
 */
export async function runningEmbedded (dataDir: string): Promise<{ s3Endpoint: string, dynamodbEndpoint: string } | undefined> {
  let ports: { s3?: unknown, dynamodb?: unknown }
  try {
    ports = JSON.parse(readFileSync(join(dataDir, PORTS_FILE), 'utf8')) as typeof ports
  } catch {
    return undefined
  }
  if (!Number.isInteger(ports.s3) || !Number.isInteger(ports.dynamodb)) return undefined
  const s3Endpoint = `http://127.0.0.1:${ports.s3 as number}`
  const dynamodbEndpoint = `http://127.0.0.1:${ports.dynamodb as number}`
  const answers = async (url: string, init: RequestInit, pattern: RegExp): Promise<boolean> => {
    try {
      const response = await fetch(url, { ...init, signal: AbortSignal.timeout(3000) })
      return pattern.test(await response.text())
    } catch {
      return false // nothing listens there: the service is not running
    }
  }
  const [s3, dynamodb] = await Promise.all([
    answers(`${s3Endpoint}/`, {}, /ListAllMyBucketsResult/),
    answers(`${dynamodbEndpoint}/`, { method: 'POST', headers: { 'x-amz-target': 'DynamoDB_20120810.ListTables', 'content-type': 'application/x-amz-json-1.0' }, body: '{}' }, /__type/)
  ])
  return s3 && dynamodb ? { s3Endpoint, dynamodbEndpoint } : undefined
}

/**
 * CLI: in embedded mode without endpoints it uses the emulators of a service running on DATA_DIR, else starts its own
 * on DATA_DIR (two processes must never open the same emulator data).
 */
async function main (): Promise<void> {
  const fix = process.argv.includes('--fix')
  const deep = process.argv.includes('--deep')
  const graceMs = minutesArg('grace-minutes')
  const stagingGraceMs = minutesArg('staging-grace-minutes')
  let config = loadConfig()
  let close = async (): Promise<void> => {}
  const running = config.mode === 'embedded' && (config.s3Endpoint === undefined || config.dynamodbEndpoint === undefined) ? await runningEmbedded(config.dataDir) : undefined
  if (running !== undefined) {
    config = { ...config, ...running }
  } else if (config.mode === 'embedded' && (config.s3Endpoint === undefined || config.dynamodbEndpoint === undefined)) {
    const embedded = await startEmbeddedAws({ dataDir: config.dataDir, buckets: [config.videoBucket, config.codeBucket] })
    config = { ...config, s3Endpoint: embedded.s3.endpoint, dynamodbEndpoint: embedded.dynamodb.endpoint }
    close = embedded.close
  }
  const aws = createAwsClients(config)
  try {
    const report = await reconcile({ aws, config }, { fix, deep, graceMs, stagingGraceMs })
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`)
    process.exitCode = isClean(report) ? 0 : 1
  } finally {
    aws.destroy()
    await close()
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    process.stderr.write(`reconcile: ${error instanceof ConfigError ? error.message : (error as Error).message ?? String(error)}\n`)
    process.exitCode = error instanceof ConfigError ? 78 : 2
  })
}
