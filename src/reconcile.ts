// `npm run reconcile [-- --fix] [--deep] [--grace-minutes=15]`: compares both buckets with the table. Finds objects no committed record
// points at (orphans), committed records whose object is missing or differs in size or sha256 (broken), and
// versions a video record counts but has no item for (missing). --fix deletes orphans and marks broken records.
import { createHash } from 'node:crypto'
import { pathToFileURL } from 'node:url'
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3'
import { ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb'
import { createAwsClients, type AwsClients } from './aws/clients.js'
import { ConfigError, loadConfig, type Config } from './config.js'
import { startEmbeddedAws } from './local/embedded.js'
import { versionSortKey } from './video-records.js'

export interface ReconcileOptions {
  fix?: boolean
  /** also download each object and hash it (else sha256 is compared where the object carries it in metadata) */
  deep?: boolean
  /** objects younger than this are left alone: a write may still be in flight (default 15 minutes) */
  graceMs?: number
  /** staging/ objects younger than this are pending direct uploads (default one day) */
  stagingGraceMs?: number
  now?: number
}

interface StoredObject { bucket: string, key: string, sizeBytes: number, lastModified?: string }
interface RecordRef { pk: string, sk: string, bucket: string, key: string, sizeBytes: number, sha256: string }
export interface BrokenRecord extends RecordRef { problem: 'missing-object' | 'size' | 'sha256', actual?: number | string }

export interface ReconcileReport {
  checkedAt: string
  buckets: string[]
  table: string
  objects: number
  records: number
  unverifiedHashes: number
  orphans: StoredObject[]
  brokenRecords: BrokenRecord[]
  missingRecords: Array<{ pk: string, sk: string }>
  fixed?: { deletedObjects: number, markedBroken: number }
}

const VERSION_SK = /^(CODE|RENDER)#(\d{9})(#SCENE#\d{5})?$/
const isMissing = (error: unknown): boolean => {
  const failure = error as { name?: string, $metadata?: { httpStatusCode?: number } }
  return failure.name === 'NotFound' || failure.name === 'NoSuchKey' || failure.$metadata?.httpStatusCode === 404
}

async function listObjects (aws: AwsClients, bucket: string): Promise<StoredObject[]> {
  const objects: StoredObject[] = []
  let token: string | undefined
  do {
    const page = await aws.s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }))
    for (const object of page.Contents ?? []) {
      if (object.Key !== undefined) objects.push({ bucket, key: object.Key, sizeBytes: object.Size ?? 0, lastModified: object.LastModified?.toISOString() })
    }
    token = page.IsTruncated === true ? page.NextContinuationToken : undefined
  } while (token !== undefined)
  return objects
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

/** The committed version records (code, render, scene) and the version items a video record counts but lacks. */
function committedRecords (items: Array<Record<string, unknown>>): { records: RecordRef[], broken: number, missing: Array<{ pk: string, sk: string }> } {
  const videos = new Map<string, Record<string, unknown>>()
  for (const item of items) if (item.sk === 'VIDEO') videos.set(item.pk as string, item)
  const present = new Set(items.map((item) => `${item.pk as string}|${item.sk as string}`))
  const records: RecordRef[] = []
  let broken = 0
  for (const item of items) {
    const match = VERSION_SK.exec(String(item.sk))
    if (match === null) continue
    const video = videos.get(item.pk as string)
    const latest = (video?.[match[1] === 'CODE' ? 'latestCodeVersion' : 'latestRenderVersion'] as number | undefined) ?? 0
    // Above the video's latest is a write not yet committed (or abandoned): never visible, so not a record.
    if (Number(match[2]) > latest || typeof item.key !== 'string') continue
    if (item.status === 'broken') { broken++; continue }
    records.push({ pk: item.pk as string, sk: item.sk as string, bucket: String(item.bucket), key: item.key, sizeBytes: Number(item.sizeBytes), sha256: String(item.sha256) })
  }
  const missing: Array<{ pk: string, sk: string }> = []
  for (const [pk, video] of videos) {
    for (const kind of ['CODE', 'RENDER'] as const) {
      const latest = (video[kind === 'CODE' ? 'latestCodeVersion' : 'latestRenderVersion'] as number | undefined) ?? 0
      for (let version = 1; version <= latest; version++) {
        const sk = versionSortKey(kind, version)
        if (!present.has(`${pk}|${sk}`)) missing.push({ pk, sk })
      }
    }
  }
  return { records, broken, missing }
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

/** The check itself, on any clients and configuration; the tests call it after every fault. */
export async function reconcile ({ aws, config }: { aws: AwsClients, config: Config }, options: ReconcileOptions = {}): Promise<ReconcileReport> {
  const now = options.now ?? Date.now()
  const graceMs = options.graceMs ?? 15 * 60_000
  const stagingGraceMs = options.stagingGraceMs ?? 24 * 3_600_000
  const buckets = [...new Set([config.videoBucket, config.codeBucket])]
  const [items, ...listings] = await Promise.all([scanTable(aws, config.table), ...buckets.map(async (bucket) => await listObjects(aws, bucket))])
  const objects = listings.flat()
  const { records, missing } = committedRecords(items)

  const referenced = new Set(records.map((record) => `${record.bucket}|${record.key}`))
  // Every version item (committed or broken) protects its object: a broken record's object is evidence, not litter.
  for (const item of items) if (VERSION_SK.test(String(item.sk)) && typeof item.key === 'string') referenced.add(`${String(item.bucket)}|${item.key}`)
  const orphans = objects.filter((object) => {
    if (referenced.has(`${object.bucket}|${object.key}`)) return false
    const age = now - Date.parse(object.lastModified ?? new Date(now).toISOString())
    return age >= (object.key.startsWith('staging/') ? stagingGraceMs : graceMs)
  })

  const brokenRecords: BrokenRecord[] = []
  let unverifiedHashes = 0
  for (const record of records) {
    const { broken, hashVerified } = await checkRecord(aws, record, options.deep === true)
    if (broken !== undefined) brokenRecords.push(broken)
    else if (!hashVerified) unverifiedHashes++
  }

  const report: ReconcileReport = {
    checkedAt: new Date(now).toISOString(),
    buckets,
    table: config.table,
    objects: objects.length,
    records: records.length,
    unverifiedHashes,
    orphans,
    brokenRecords,
    missingRecords: missing
  }
  if (options.fix === true) {
    for (const orphan of orphans) await aws.s3.send(new DeleteObjectCommand({ Bucket: orphan.bucket, Key: orphan.key }))
    for (const record of brokenRecords) {
      await aws.ddb.send(new UpdateCommand({
        TableName: config.table,
        Key: { pk: record.pk, sk: record.sk },
        UpdateExpression: 'SET #status = :broken, brokenReason = :reason, brokenAt = :now',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':broken': 'broken', ':reason': record.problem, ':now': new Date(now).toISOString() }
      }))
    }
    report.fixed = { deletedObjects: orphans.length, markedBroken: brokenRecords.length }
  }
  return report
}

export const isClean = (report: ReconcileReport): boolean =>
  report.orphans.length === 0 && report.brokenRecords.length === 0 && report.missingRecords.length === 0

/** CLI: in embedded mode without endpoints it opens DATA_DIR itself, so the server must be stopped (or point it at the server's emulators). */
async function main (): Promise<void> {
  const fix = process.argv.includes('--fix')
  const deep = process.argv.includes('--deep')
  const graceArg = process.argv.find((arg) => arg.startsWith('--grace-minutes='))
  const graceMs = graceArg === undefined ? undefined : Number(graceArg.split('=')[1]) * 60_000
  if (graceMs !== undefined && !(graceMs >= 0)) throw new ConfigError('--grace-minutes= must be a number of minutes >= 0')
  let config = loadConfig()
  let close = async (): Promise<void> => {}
  if (config.mode === 'embedded' && (config.s3Endpoint === undefined || config.dynamodbEndpoint === undefined)) {
    const embedded = await startEmbeddedAws({ dataDir: config.dataDir, buckets: [config.videoBucket, config.codeBucket] })
    config = { ...config, s3Endpoint: embedded.s3.endpoint, dynamodbEndpoint: embedded.dynamodb.endpoint }
    close = embedded.close
  }
  const aws = createAwsClients(config)
  try {
    const report = await reconcile({ aws, config }, { fix, deep, graceMs })
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
