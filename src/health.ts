import { HeadBucketCommand } from '@aws-sdk/client-s3'
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb'
import type { AwsClients } from './aws/clients.js'
import type { Config } from './config.js'
import type { BucketCheckType, ReadinessType, TableCheckType } from '../schemas/health.js'

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

export function createHealthChecker ({ aws, config }: { aws: AwsClients, config: Config }) {
  const timed = async <T extends object>(check: (signal: AbortSignal) => Promise<T>): Promise<T & { latencyMs: number }> => {
    const started = performance.now()
    const result = await withTimeout(config.healthTimeoutMs, check)
    return { ...result, latencyMs: Math.round(performance.now() - started) }
  }

  const checkBucket = async (bucket: string): Promise<BucketCheckType> => {
    const started = performance.now()
    try {
      const { latencyMs } = await timed(async (abortSignal) => await aws.s3.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal }))
      return { status: latencyMs > SLOW_CHECK_MS ? 'degraded' : 'healthy', bucket, latencyMs }
    } catch (error) {
      return { status: 'unhealthy', bucket, latencyMs: Math.round(performance.now() - started), error: reason(error) }
    }
  }

  const checkTable = async (): Promise<TableCheckType> => {
    const started = performance.now()
    try {
      const { Table, latencyMs } = await timed(async (abortSignal) => await aws.dynamodb.send(new DescribeTableCommand({ TableName: config.table }), { abortSignal }))
      const tableStatus = Table?.TableStatus ?? 'UNKNOWN'
      const status = tableStatus === 'ACTIVE' ? (latencyMs > SLOW_CHECK_MS ? 'degraded' : 'healthy') : tableStatus === 'UPDATING' ? 'degraded' : 'unhealthy'
      return { status, table: config.table, tableStatus, latencyMs }
    } catch (error) {
      return { status: 'unhealthy', table: config.table, latencyMs: Math.round(performance.now() - started), error: reason(error) }
    }
  }

  const checkAll = async (): Promise<ReadinessType> => {
    const [s3Video, s3Code, dynamodb] = await Promise.all([checkBucket(config.videoBucket), checkBucket(config.codeBucket), checkTable()])
    const statuses = [s3Video.status, s3Code.status, dynamodb.status]
    // Without the table nothing works; without both buckets nothing is stored; one bucket alone still serves the other half.
    const unhealthy = dynamodb.status === 'unhealthy' || (s3Video.status === 'unhealthy' && s3Code.status === 'unhealthy')
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
        entry.result.finally(() => { entry.settledAt = Date.now() }).catch(() => {})
        cached = entry
      }
      return await cached.result
    }
  }
}

export type HealthChecker = ReturnType<typeof createHealthChecker>
