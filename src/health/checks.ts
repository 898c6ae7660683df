import { randomUUID } from 'node:crypto'
import { DeleteObjectCommand, HeadBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb'
import { DeleteCommand, PutCommand } from '@aws-sdk/lib-dynamodb'
import type { AwsClients } from '../aws/clients.js'
import type { Config } from '../config.js'
import { encryptionParams } from '../aws/encryption.js'
import { recordBestEffortFailure } from '../http/metrics.js'
import type { BucketCheckType, ReadinessType, TableCheckType } from '../../schemas/health.js'
import fp from 'fastify-plugin'

/** A check slower than this still works but marks the service degraded. */
const SLOW_CHECK_MS = 1000

async function withTimeout<T> (timeoutMs: number, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController()
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      controller.abort()
      reject(new Error(`no answer within ${timeoutMs} ms`))
    }, timeoutMs)
  })
  try {
    return await Promise.race([run(controller.signal), timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** A short, safe reason: the SDK error name or HTTP status, never a stack or credentials. */
function reason (error: unknown): string {
  const failure = error as { name?: string, message?: string, code?: string, $metadata?: { httpStatusCode?: number } }
  if (failure.message?.startsWith('no answer within') === true) return failure.message
  if (failure.code !== undefined) return failure.code
  const status = failure.$metadata?.httpStatusCode
  return status !== undefined ? `${failure.name ?? 'Error'} (HTTP ${status})` : failure.name ?? 'Error'
}

/** Where the canary object goes: outside videos/, code/ and staging/, one key per replica. */
export const CANARY_PREFIX = 'health/canary-'

/** A failure that retrying cannot cure (access denied, missing resource, KMS): readiness says the service cannot write. */
function isRefusal (error: unknown): boolean {
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode
  return status !== undefined && status >= 400 && status < 500 && !/Throttl|SlowDown|RequestTimeout|TooManyRequests/.test((error as { name?: string }).name ?? '')
}

/** The readiness an anonymous caller sees when API keys are configured: statuses only, no names or reasons. */
export function withoutDetails (readiness: ReadinessType): ReadinessType {
  const strip = <T extends { status: ReadinessType['overallStatus'], latencyMs: number }>(check: T) => ({ status: check.status, latencyMs: check.latencyMs })
  return {
    overallStatus: readiness.overallStatus,
    timestamp: readiness.timestamp,
    services: { s3Video: strip(readiness.services.s3Video), s3Code: strip(readiness.services.s3Code), dynamodb: strip(readiness.services.dynamodb) },
    detail: 'bucket and table names and failure reasons are shown to callers with a valid API key (Authorization: Bearer <key>)'
  }
}

export function createHealthChecker ({ aws, config, log }: { aws: AwsClients, config: Config, log?: Parameters<typeof recordBestEffortFailure>[2] }) {
  const timed = async <T extends object>(check: (signal: AbortSignal) => Promise<T>): Promise<T & { latencyMs: number }> => {
    const started = performance.now()
    const result = await withTimeout(config.healthTimeoutMs, check)
    return { ...result, latencyMs: Math.round(performance.now() - started) }
  }
  const replica = randomUUID()
  // When each dependency last took the canary write and delete; only successes are kept (for healthWriteCheckMs).
  const writable = new Map<string, number>()
  const writeCheckDue = (target: string): boolean => {
    if (config.healthWriteCheckMs <= 0) return false
    const at = writable.get(target)
    return at === undefined || Date.now() - at >= config.healthWriteCheckMs
  }

  /**
   * Writes a tiny object and deletes it again (by its version, so a versioned bucket keeps nothing): a refused write
   * means the service cannot store anything, whatever HeadBucket says. Answers a reason when it cannot write.
   */
  const canaryObject = async (bucket: string, abortSignal: AbortSignal): Promise<{ refused?: string, undeletable?: string }> => {
    const key = `${CANARY_PREFIX}${replica}`
    let versionId: string | undefined
    try {
      ({ VersionId: versionId } = await aws.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'render-store readiness canary\n', ContentType: 'text/plain', ...encryptionParams(config) }), { abortSignal }))
    } catch (error) {
      if (isRefusal(error)) return { refused: `writes are refused: PutObject answered ${reason(error)}` }
      throw error
    }
    try {
      // IAM: s3:DeleteObjectVersion (the canary's own version, in a versioned bucket)
      await aws.s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }), { abortSignal })
    } catch (error) {
      if (isRefusal(error)) return { undeletable: `writes work but deletes are refused: DeleteObject answered ${reason(error)}` }
      throw error
    }
    return {}
  }

  /**
   * The canary, after the availability check succeeded, bounded by the same timeout (so a probe takes at most twice
   * it): only a refusal counts; an answer that never came is not remembered as a success, and is tried again next time.
   */
  const canary = async <T extends { refused?: string }>(target: string, run: (signal: AbortSignal) => Promise<T>): Promise<T | undefined> => {
    if (!writeCheckDue(target)) return undefined
    try {
      const result = await withTimeout(config.healthTimeoutMs, run)
      if (result.refused === undefined) writable.set(target, Date.now())
      return result
    } catch (error) {
      recordBestEffortFailure('health-canary', error, log)
      return undefined
    }
  }
  const writeState = (target: string, refused: string | undefined): { writable?: boolean, writeCheckedAt?: string } => {
    if (refused !== undefined) return { writable: false }
    const at = writable.get(target)
    return at === undefined ? {} : { writable: true, writeCheckedAt: new Date(at).toISOString() }
  }

  const checkBucket = async (bucket: string): Promise<BucketCheckType> => {
    const started = performance.now()
    try {
      const { latencyMs } = await timed(async (abortSignal) => await aws.s3.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal }))
      const { refused, undeletable } = await canary(bucket, async (abortSignal) => await canaryObject(bucket, abortSignal)) ?? {}
      const state = writeState(bucket, refused)
      if (refused !== undefined) return { status: 'unhealthy', bucket, latencyMs, ...state, error: refused }
      if (undeletable !== undefined) return { status: 'degraded', bucket, latencyMs, ...state, error: undeletable }
      return { status: latencyMs > SLOW_CHECK_MS ? 'degraded' : 'healthy', bucket, latencyMs, ...state }
    } catch (error) {
      return { status: 'unhealthy', bucket, latencyMs: Math.round(performance.now() - started), error: reason(error) }
    }
  }

  /** Puts and deletes one item (with a TTL, should the delete not happen): a refused write is a table the service cannot use. */
  const canaryItem = async (abortSignal: AbortSignal): Promise<{ refused?: string }> => {
    const key = { pk: 'HEALTH#canary', sk: replica }
    try {
      await aws.ddb.send(new PutCommand({ TableName: config.table, Item: { ...key, expiresAtEpoch: Math.floor(Date.now() / 1000) + 3600 } }), { abortSignal })
      await aws.ddb.send(new DeleteCommand({ TableName: config.table, Key: key }), { abortSignal })
      return {}
    } catch (error) {
      if (isRefusal(error)) return { refused: `writes are refused: ${reason(error)}` }
      throw error
    }
  }

  const checkTable = async (): Promise<TableCheckType> => {
    const started = performance.now()
    const target = `table:${config.table}`
    try {
      const { Table, latencyMs } = await timed(async (abortSignal) => await aws.dynamodb.send(new DescribeTableCommand({ TableName: config.table }), { abortSignal }))
      const tableStatus = Table?.TableStatus ?? 'UNKNOWN'
      const { refused } = tableStatus === 'ACTIVE' ? await canary(target, canaryItem) ?? {} : {}
      const state = writeState(target, refused)
      if (refused !== undefined) return { status: 'unhealthy', table: config.table, tableStatus, latencyMs, ...state, error: refused }
      const status = tableStatus === 'ACTIVE' ? (latencyMs > SLOW_CHECK_MS ? 'degraded' : 'healthy') : tableStatus === 'UPDATING' ? 'degraded' : 'unhealthy'
      return { status, table: config.table, tableStatus, latencyMs, ...state }
    } catch (error) {
      return { status: 'unhealthy', table: config.table, latencyMs: Math.round(performance.now() - started), error: reason(error) }
    }
  }

  const checkAll = async (): Promise<ReadinessType> => {
    const [s3Video, s3Code, dynamodb] = await Promise.all([checkBucket(config.videoBucket), checkBucket(config.codeBucket), checkTable()])
    const statuses = [s3Video.status, s3Code.status, dynamodb.status]
    // Without the table nothing works; without both buckets nothing is stored; one bucket alone still serves the
    // other half. A refused canary write is a configuration fault (IAM, bucket or key policy) no retry cures: unhealthy.
    const refused = [s3Video, s3Code, dynamodb].some((check) => check.writable === false)
    const unhealthy = refused || dynamodb.status === 'unhealthy' || (s3Video.status === 'unhealthy' && s3Code.status === 'unhealthy')
    const overallStatus = unhealthy ? 'unhealthy' : statuses.every((status) => status === 'healthy') ? 'healthy' : 'degraded'
    return { overallStatus, timestamp: new Date().toISOString(), services: { s3Video, s3Code, dynamodb } }
  }

  // One check in flight at a time and its result reused briefly, so a probe storm does not become an S3 storm.
  let cached: { result: Promise<ReadinessType>, settledAt?: number } | undefined
  return {
    async readiness (): Promise<ReadinessType> {
      const stale = cached?.settledAt !== undefined && Date.now() - cached.settledAt >= config.healthCacheMs
      if (cached === undefined || stale) {
        const entry: { result: Promise<ReadinessType>, settledAt?: number } = { result: checkAll() }
        entry.result.finally(() => { entry.settledAt = Date.now() }).catch((error: unknown) => { recordBestEffortFailure('health-readiness', error, log) })
        cached = entry
      }
      return await cached.result
    }
  }
}

export type HealthChecker = ReturnType<typeof createHealthChecker>

declare module 'fastify' {
  interface FastifyInstance {
    health: HealthChecker
  }
}

export default fp(async function healthPlugin (app) {
  app.decorate('health', createHealthChecker({ aws: app.aws, config: app.config, log: app.log }))
}, { name: 'health', dependencies: ['aws'] })
