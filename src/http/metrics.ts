// The service's Prometheus metrics, in one registry per process; stores record into them through the functions below.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export const registry = new Registry()
collectDefaultMetrics({ register: registry, prefix: 'render_store_' })

export const httpRequests = new Counter({
  name: 'render_store_http_requests_total',
  help: 'HTTP requests answered, by method, route template and status code',
  labelNames: ['method', 'route', 'status_code'] as const,
  registers: [registry]
})

export const httpRequestDuration = new Histogram({
  name: 'render_store_http_request_duration_seconds',
  help: 'HTTP request latency, by method, route template and status code',
  labelNames: ['method', 'route', 'status_code'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  registers: [registry]
})

/** What an upload carries: a render through the service, a scene clip, a direct-to-S3 session, or code. */
export type UploadKind = 'render' | 'scene' | 'direct' | 'code'
export type UploadOutcome = 'completed' | 'failed' | 'aborted'

export const uploadBytes = new Counter({
  name: 'render_store_upload_bytes_total',
  help: 'bytes received and stored, by upload kind',
  labelNames: ['kind'] as const,
  registers: [registry]
})

export const uploadDuration = new Histogram({
  name: 'render_store_upload_duration_seconds',
  help: 'time from the first byte to a stored version, by upload kind and outcome',
  labelNames: ['kind', 'outcome'] as const,
  buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900],
  registers: [registry]
})

export const uploadsInFlight = new Gauge({
  name: 'render_store_uploads_in_flight',
  help: 'uploads being received right now, by upload kind',
  labelNames: ['kind'] as const,
  registers: [registry]
})

export const awsCalls = new Counter({
  name: 'render_store_aws_calls_total',
  help: 'S3 and DynamoDB calls, by service, command and outcome (ok or the error name)',
  labelNames: ['service', 'command', 'outcome'] as const,
  registers: [registry]
})

export const awsCallErrors = new Counter({
  name: 'render_store_aws_call_errors_total',
  help: 'S3 and DynamoDB calls that failed after the SDK gave up retrying, by service, command and error name',
  labelNames: ['service', 'command', 'error'] as const,
  registers: [registry]
})

export const awsCallRetries = new Counter({
  name: 'render_store_aws_call_retries_total',
  help: 'SDK retries (attempts beyond the first) of S3 and DynamoDB calls, by service and command',
  labelNames: ['service', 'command'] as const,
  registers: [registry]
})

export const codeCacheLookups = new Counter({
  name: 'render_store_code_cache_lookups_total',
  help: 'code content cache lookups, by result (hit or miss); hit rate = hit / (hit + miss)',
  labelNames: ['result'] as const,
  registers: [registry]
})

/** Counts bytes of an upload as they arrive (call per chunk or once at the end, not both). */
export function recordUploadBytes (kind: UploadKind, bytes: number): void {
  if (bytes > 0) uploadBytes.inc({ kind }, bytes)
}

/** Marks an upload as started; the returned function ends it exactly once with its outcome. */
export function startUpload (kind: UploadKind): (outcome: UploadOutcome) => void {
  uploadsInFlight.inc({ kind })
  const stopTimer = uploadDuration.startTimer({ kind })
  let ended = false
  return (outcome) => {
    if (ended) return
    ended = true
    uploadsInFlight.dec({ kind })
    stopTimer({ outcome })
  }
}

/** Records one lookup in the code content cache. */
export function recordCodeCache (hit: boolean): void {
  codeCacheLookups.inc({ result: hit ? 'hit' : 'miss' })
}

export const bestEffortFailures = new Counter({
  name: 'render_store_best_effort_failures_total',
  help: 'work done after the answer was decided that failed (cleanup, progress, pointer moves, idempotency records), by operation',
  labelNames: ['operation'] as const,
  registers: [registry]
})

export const idempotentRequests = new Counter({
  name: 'render_store_idempotent_requests_total',
  help: 'writes sent with an Idempotency-Key, by outcome (run, replay, busy, mismatch)',
  labelNames: ['outcome'] as const,
  registers: [registry]
})

/** Logs and counts a best-effort step that failed: it changes no answer, but it must leave a trace. */
export function recordBestEffortFailure (operation: string, error: unknown, log?: { warn: (object: object, message: string) => void }): void {
  bestEffortFailures.inc({ operation })
  log?.warn({ err: error, operation }, `best-effort ${operation} failed`)
}
