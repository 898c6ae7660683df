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
// The parts: report.ts (what it answers), scan.ts (what it reads), findings.ts (what it concludes), fix.ts (--fix).
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { createAwsClients, type AwsClients } from '../aws/clients.js'
import { ConfigError, loadConfig, type Config } from '../config.js'
import { PORTS_FILE, startEmbeddedAws } from '../local/embedded.js'
import { STAGING_ROOT } from '../table/keys.js'
import { classify, namedKeys, sessionFindings, uploadIdsIn, versionFindings } from './reconcile/findings.js'
import { applyFixes } from './reconcile/fix.js'
import type { AbandonedSession, BrokenRecord, ListedObject, OpenMultipartUpload, RecordRef, ReconcileOptions, ReconcileReport } from './reconcile/report.js'
import { checkRecord, listMultipartUploads, listObjects, scanTable, ttlStatus } from './reconcile/scan.js'

export type { AbandonedSession, BrokenRecord, LaggingLatest, ListedObject, OpenMultipartUpload, ReconcileOptions, ReconcileReport } from './reconcile/report.js'

/** Open multipart uploads: those of abandoned sessions, and any other no live session owns past the grace period. */
async function staleMultipartUploads (aws: AwsClients, buckets: string[], abandonedSessions: AbandonedSession[], isLive: (upload: OpenMultipartUpload) => boolean, isOld: (object: { key: string, lastModified?: string }) => boolean): Promise<ReconcileReport['multipartUploads']> {
  const multipart: ReconcileReport['multipartUploads'] = { supported: true, stale: [] }
  const abandonedIds = new Set(abandonedSessions.map((session) => session.uploadId))
  for (const bucket of buckets) {
    const { uploads, unsupported } = await listMultipartUploads(aws, bucket)
    if (unsupported !== undefined) { multipart.supported = false; multipart.reason = unsupported; continue }
    for (const upload of uploads) {
      const owner = uploadIdsIn(upload.key).find((id) => abandonedIds.has(id))
      if (owner !== undefined) { multipart.stale.push({ ...upload, sessionUploadId: owner }); continue }
      if (isLive(upload)) continue
      if (isOld({ key: upload.key, lastModified: upload.initiated })) multipart.stale.push(upload)
    }
  }
  if (multipart.supported) {
    for (const session of abandonedSessions) session.multipartUploads = multipart.stale.filter((upload) => upload.sessionUploadId === session.uploadId).length
  }
  return multipart
}

/** The version and scene items, checked against their objects. */
async function checkRecords (aws: AwsClients, records: RecordRef[], deep: boolean): Promise<{ brokenRecords: BrokenRecord[], unverifiedHashes: number }> {
  const brokenRecords: BrokenRecord[] = []
  let unverifiedHashes = 0
  for (const record of records) {
    const { broken, hashVerified } = await checkRecord(aws, record, deep)
    if (broken !== undefined) brokenRecords.push(broken)
    else if (!hashVerified) unverifiedHashes++
  }
  return { brokenRecords, unverifiedHashes }
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
  ]) as [Array<Record<string, unknown>>, string, ...ListedObject[][]]
  const objects = listings.flat()
  const classified = classify(items)
  const { missing, lagging } = versionFindings(classified)
  const { liveUploads, liveNames, abandonedSessions, interruptedCompletions } = sessionFindings(classified.sessions, now)

  // What the records name: every string of every version and scene item protects the object of that key.
  const referenced = new Set<string>()
  for (const item of classified.versionItems) namedKeys(item, referenced)
  const isOld = (object: { key: string, lastModified?: string }): boolean => {
    const age = now - Date.parse(object.lastModified ?? new Date(now).toISOString())
    return age >= (object.key.startsWith(STAGING_ROOT) ? stagingGraceMs : graceMs)
  }
  const ofLiveUpload = (key: string): boolean => liveNames.has(key) || uploadIdsIn(key).some((id) => liveUploads.has(id))
  const orphans = objects.filter((object) => !referenced.has(object.key) && !ofLiveUpload(object.key) && isOld(object))
  const multipart = await staleMultipartUploads(aws, buckets, abandonedSessions, (upload) => ofLiveUpload(upload.key) || liveNames.has(upload.uploadId), isOld)

  const records: RecordRef[] = classified.versionItems
    .filter((item) => typeof item.key === 'string' && item.status !== 'broken')
    .map((item) => ({ pk: String(item.pk), sk: String(item.sk), bucket: String(item.bucket ?? (String(item.sk).startsWith('CODE#') ? config.codeBucket : config.videoBucket)), key: item.key as string, sizeBytes: Number(item.sizeBytes), sha256: String(item.sha256) }))
  const { brokenRecords, unverifiedHashes } = await checkRecords(aws, records, options.deep === true)

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
  if (options.fix === true) await applyFixes(aws, config, report, classified, expiredIdempotency, now)
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
