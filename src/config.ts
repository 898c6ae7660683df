import { resolve } from 'node:path'
import { Type, type Static } from 'typebox'
import { schemaCheck, type SchemaCheck } from './schema-check.js'

// Every variable the service reads, with what it expects; a bad value stops start-up naming the variable.
export const EnvSchema = Type.Object({
  AWS_REGION: Type.String({ default: 'us-east-1', minLength: 1, description: 'AWS region' }),
  AWS_S3_VIDEO_BUCKET: Type.Optional(Type.String({ pattern: '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$', description: 'S3 bucket for rendered videos' })),
  AWS_S3_CODE_BUCKET: Type.Optional(Type.String({ pattern: '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$', description: 'S3 bucket for generated code' })),
  AWS_DYNAMODB_TABLE: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.-]{3,255}$', description: 'DynamoDB metadata table' })),
  AWS_ENDPOINT_URL: Type.Optional(Type.String({ format: 'uri', description: 'endpoint for every AWS service' })),
  AWS_ENDPOINT_URL_S3: Type.Optional(Type.String({ format: 'uri', description: 'S3 endpoint' })),
  AWS_ENDPOINT_URL_DYNAMODB: Type.Optional(Type.String({ format: 'uri', description: 'DynamoDB endpoint' })),
  AWS_MAX_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 10, default: 3, description: 'SDK attempts per call (adaptive retry mode)' }),
  AWS_KMS_KEY_ID: Type.Optional(Type.String({ minLength: 1, description: 'KMS key for SSE-KMS' })),
  S3_SSE: Type.Optional(Type.Union([Type.Literal('AES256'), Type.Literal('aws:kms'), Type.Literal('none')], { description: 'server-side encryption: AES256, aws:kms or none' })),
  HOST: Type.String({ default: '127.0.0.1', minLength: 1 }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000, description: 'listening port' }),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((level) => Type.Literal(level)), { default: 'info', description: 'one of fatal, error, warn, info, debug, trace, silent' }),
  LOG_FORMAT: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('pretty')], { description: 'json or pretty' })),
  DATA_DIR: Type.String({ default: '.data', minLength: 1, description: 'where the embedded S3 and DynamoDB keep their data' }),
  MAX_VIDEO_BYTES: Type.Integer({ minimum: 1, maximum: 5 * 1024 ** 4, default: 5 * 1024 ** 3, description: 'largest accepted video in bytes (at most 5 TiB, the largest S3 object)' }),
  MAX_CODE_BYTES: Type.Integer({ minimum: 1, maximum: 100 * 1024 ** 2, default: 1024 ** 2, description: 'largest accepted code file in bytes' }),
  UPLOAD_PART_SIZE: Type.Integer({ minimum: 5 * 1024 ** 2, maximum: 5 * 1024 ** 3, default: 8 * 1024 ** 2, description: 'multipart part size in bytes (>= 5 MiB)' }),
  UPLOAD_QUEUE_SIZE: Type.Integer({ minimum: 1, maximum: 64, default: 3, description: 'parts uploaded concurrently per upload' }),
  MAX_CONCURRENT_UPLOADS: Type.Integer({ minimum: 1, maximum: 1000, default: 16, description: 'proxied uploads at once per replica' }),
  PRESIGN_EXPIRES_SECONDS: Type.Integer({ minimum: 1, maximum: 604800, default: 900, description: 'presigned URL lifetime in seconds' }),
  DIRECT_MULTIPART_THRESHOLD: Type.Integer({ minimum: 5 * 1024 ** 2, maximum: 5 * 1024 ** 3, default: 100 * 1024 ** 2, description: 'direct uploads of at least this many bytes get presigned multipart parts instead of one PUT' }),
  TUS_EXPIRES_SECONDS: Type.Integer({ minimum: 60, maximum: 30 * 24 * 3600, default: 24 * 3600, description: 'a tus upload that receives no PATCH for this long expires (Upload-Expires)' }),
  DIRECT_SESSION_TTL_SECONDS: Type.Integer({ minimum: 60, maximum: 604800, default: 86400, description: 'how long a direct multipart upload session lives (its completeBy); part URLs are signed on demand within it' }),
  MAX_OPEN_UPLOADS_PER_PROJECT: Type.Integer({ minimum: 0, maximum: 100000, default: 200, description: 'open direct upload sessions per project (429 past it); 0 for no cap' }),
  UPLOAD_SESSION_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 256, default: 2, description: 'direct upload session openings and part-URL signings this replica runs at once; more wait their turn, so a burst of them leaves the event loop to other requests' }),
  MAX_OPEN_UPLOADS_PER_VIDEO: Type.Integer({ minimum: 0, maximum: 10000, default: 8, description: 'open direct upload sessions per video (429 past it); 0 for no cap' }),
  UPLOAD_LEASE_MS: Type.Integer({ minimum: 1000, maximum: 600000, default: 30000, description: 'an upload session whose replica stops renewing it for this long reads failed (abandoned)' }),
  IDEMPOTENCY_LEASE_MS: Type.Integer({ minimum: 1000, maximum: 600000, default: 30000, description: 'a keyed request whose replica stops renewing it for this long may be run again by a repeat' }),
  COMPLETE_WAIT_MS: Type.Integer({ minimum: 0, maximum: 50000, default: 10000, description: 'how long complete works before answering 202 and going on in the background' }),
  COMMIT_DEADLINE_MS: Type.Integer({ minimum: 100, maximum: 50000, default: 15000, description: 'how long a version commit may wait for contention or an unreachable table before 503' }),
  CODE_CACHE_TTL_MS: Type.Integer({ minimum: 0, maximum: 60000, default: 2000, description: 'how long this replica reuses a latest-code lookup (0: off)' }),
  HEALTH_TIMEOUT_MS: Type.Integer({ minimum: 50, maximum: 60000, default: 2000, description: 'timeout of each readiness check' }),
  HEALTH_CACHE_MS: Type.Integer({ minimum: 0, maximum: 60000, default: 1500, description: 'how long a readiness result is reused' }),
  HEALTH_WRITE_CHECK_MS: Type.Integer({ minimum: 0, maximum: 3600000, default: 30000, description: 'readiness writes and deletes a small canary object per bucket and a canary item at most this often (a success is reused this long); 0 turns the canary off' }),
  HEALTH_DETAILS: Type.Union([Type.Literal('authenticated'), Type.Literal('public')], { default: 'authenticated', description: 'who sees bucket and table names and error reasons in /health/ready when API keys are configured: authenticated (callers with a valid key) or public' }),
  CODE_OBJECT_LOCK: Type.Boolean({ default: false, description: 'npm run setup creates the code bucket with S3 Object Lock (and versioning), so code versions can be locked; cannot be undone' }),
  NONCURRENT_VERSION_EXPIRY_DAYS: Type.Integer({ minimum: 1, maximum: 36500, default: 30, description: 'npm run setup: days after which S3 removes object versions that are no longer current (versioned buckets), and then their expired delete markers' }),
  SHUTDOWN_GRACE_MS: Type.Integer({ minimum: 0, maximum: 600000, default: 10000, description: 'how long in-flight requests may finish on SIGTERM' }),
  API_KEYS_FILE: Type.Optional(Type.String({ minLength: 1, description: 'JSON file of API key hashes' })),
  ALLOW_ANONYMOUS: Type.Boolean({ default: false, description: 'true lets the service run without API keys against AWS' }),
  RATE_LIMIT_MAX: Type.Integer({ minimum: 0, maximum: 1000000, default: 1200, description: 'requests per key (or IP) per window; 0 turns rate limiting off' }),
  RATE_LIMIT_STORE: Type.Optional(Type.Union([Type.Literal('memory'), Type.Literal('dynamodb')], { description: 'where rate-limit counts live: dynamodb (the metadata table, shared by every replica; the default against AWS) or memory (per replica; the default embedded)' })),
  RATE_LIMIT_WINDOW: Type.String({ pattern: '^[0-9]+ ?(ms|s|m|h)?$', default: '1m', description: 'rate limit window: milliseconds, or a number with ms, s, m or h' }),
  CORS_ORIGINS: Type.Optional(Type.String({ minLength: 1, description: 'comma-separated origins allowed by CORS, or *; CORS is off when unset' })),
  MAX_HEADER_BYTES: Type.Integer({ minimum: 1024, maximum: 1024 ** 2, default: 16 * 1024, description: 'largest total size of request headers' }),
  HEADERS_TIMEOUT_MS: Type.Integer({ minimum: 1000, maximum: 600000, default: 30000, description: 'time a client has to send all request headers' }),
  SOCKET_IDLE_TIMEOUT_MS: Type.Integer({ minimum: 1000, maximum: 3600000, default: 60000, description: 'a connection with no bytes either way for this long is closed' }),
  REQUEST_TIMEOUT_MS: Type.Integer({ minimum: 0, maximum: 86400000, default: 7200000, description: 'longest time to receive a whole request (uploads included); 0 for none' }),
  OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: Type.Integer({ minimum: 0, maximum: 60000, default: 1000, description: 'event loop delay above which requests get 503; 0 turns it off' }),
  OVERLOAD_MAX_HEAP_BYTES: Type.Integer({ minimum: 0, default: 0, description: 'heap use above which requests get 503; 0 turns it off' }),
  MAX_CONNECTIONS: Type.Integer({ minimum: 1, maximum: 1000000, default: 2048, description: 'open connections per replica; more are closed at once' }),
  MIN_BODY_BYTES_PER_SECOND: Type.Integer({ minimum: 0, maximum: 1073741824, default: 256, description: 'a request body arriving slower than this (averaged over BODY_RATE_WINDOW_MS) is cut with 408; 0 turns it off' }),
  BODY_RATE_WINDOW_MS: Type.Integer({ minimum: 100, maximum: 3600000, default: 30000, description: 'the window the minimum body rate is measured over' }),
  SSE_MAX_PER_CLIENT: Type.Integer({ minimum: 1, maximum: 100000, default: 10, description: 'progress streams (SSE) open at once per API key (or address without keys) on one replica; 429 past it' }),
  SSE_MAX_PER_REPLICA: Type.Integer({ minimum: 1, maximum: 100000, default: 1000, description: 'progress streams (SSE) open at once on one replica; 429 past it' }),
  METRICS_TOKEN: Type.Optional(Type.String({ minLength: 16, maxLength: 512, description: 'when set, GET /metrics needs Authorization: Bearer <token> and shows every series' })),
  METRICS_OPEN_DETAIL: Type.Boolean({ default: false, description: 'true shows anonymous /metrics callers error series too (per-route 401/403 counts, storage error names)' })
})
export type Env = Static<typeof EnvSchema>

export interface Config {
  /** embedded: local S3 and DynamoDB started by the service; aws: whatever the SDK configuration points at */
  mode: 'embedded' | 'aws'
  region: string
  videoBucket: string
  codeBucket: string
  table: string
  s3Endpoint?: string
  dynamodbEndpoint?: string
  maxAttempts: number
  sse: { algorithm: 'AES256' | 'aws:kms' | 'none', kmsKeyId?: string }
  host: string
  port: number
  logLevel: string
  prettyLogs: boolean
  dataDir: string
  maxVideoBytes: number
  maxCodeBytes: number
  partSize: number
  queueSize: number
  maxConcurrentUploads: number
  presignExpiresSeconds: number
  directMultipartThreshold: number
  /** lifetime of a direct multipart session (DIRECT_SESSION_TTL_SECONDS) */
  directSessionTtlSeconds: number
  /** open direct upload sessions allowed per project and per video; 0: no cap */
  uploadCaps: { perProject: number, perVideo: number }
  /** session openings and part signings run at once per replica (UPLOAD_SESSION_CONCURRENCY) */
  uploadSessionConcurrency?: number
  codeCacheTtlMs: number
  uploadLeaseMs: number
  tusExpiresSeconds: number
  idempotencyLeaseMs: number
  completeWaitMs: number
  commitDeadlineMs: number
  healthTimeoutMs: number
  healthCacheMs: number
  /** readiness canary: how long a successful write check is reused (0: no canary) */
  healthWriteCheckMs: number
  /** who sees readiness details (names, reasons) when API keys are configured */
  healthDetails: 'authenticated' | 'public'
  /** setup: create the code bucket with Object Lock */
  codeObjectLock: boolean
  /** setup: lifecycle rule removing noncurrent versions after this many days */
  noncurrentVersionExpiryDays: number
  shutdownGraceMs: number
  apiKeysFile?: string
  allowAnonymous: boolean
  rateLimit: { max: number, windowMs: number, store?: 'memory' | 'dynamodb' }
  corsOrigins: string[]
  limits: { maxHeaderBytes: number, headersTimeoutMs: number, socketIdleTimeoutMs: number, requestTimeoutMs: number }
  overload: { maxEventLoopDelayMs: number, maxHeapBytes: number }
  /** /metrics: a bearer token that unlocks it (and its full detail), and whether anonymous callers see error detail */
  metrics?: { token?: string, openDetail: boolean }
  /** progress streams: caps (429 past them) and the shared poll interval of one upload */
  /** against slow or many clients: connections per replica and the minimum rate of a request body */
  edge?: { maxConnections: number, minBodyBytesPerSecond: number, bodyRateWindowMs: number }
  progressStreams?: { maxPerClient: number, maxPerReplica: number, pollMs?: number }
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

const EMBEDDED_DEFAULTS = { videoBucket: 'render-store-videos', codeBucket: 'render-store-code', table: 'VideoMetadata' }

function describe (key: string): string {
  const schema = (EnvSchema.properties as Record<string, { description?: string, type?: string, minimum?: number, maximum?: number, pattern?: string, format?: string, minLength?: number, anyOf?: Array<{ const?: unknown }> }>)[key]
  if (schema === undefined) return 'a valid value'
  // A choice of words (S3_SSE, LOG_LEVEL): the words are the whole answer.
  if (schema.anyOf !== undefined && schema.anyOf.every((option) => option.const !== undefined)) return `one of ${schema.anyOf.map((option) => String(option.const)).join(', ')}`
  const parts: string[] = []
  if (schema.type === 'integer') parts.push(`an integer${schema.minimum !== undefined ? ` from ${schema.minimum}` : ''}${schema.maximum !== undefined ? ` to ${schema.maximum}` : ''}`)
  else if (schema.type === 'boolean') parts.push('true or false')
  else if (schema.format === 'uri') parts.push('a URL such as http://127.0.0.1:4566')
  else if (schema.pattern !== undefined) parts.push(`text matching ${schema.pattern}`)
  else if (schema.type === 'string') parts.push('a non-empty value')
  if (schema.description !== undefined) parts.push(`(${schema.description})`)
  return parts.join(' ') || 'a valid value'
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60000, h: 3600000 }

/** '1500', '30s', '1 m' -> milliseconds (the pattern in EnvSchema has already checked the shape). */
function durationMs (value: string): number {
  const [, amount, unit = 'ms'] = /^([0-9]+) ?(ms|s|m|h)?$/.exec(value) ?? []
  return Number(amount) * UNIT_MS[unit]
}

let checkEnv: SchemaCheck | undefined

/** Reads and validates the environment; throws ConfigError with one line naming the variable at fault. */
export function loadConfig (environment: NodeJS.ProcessEnv = process.env): Config {
  const raw: Record<string, string> = {}
  for (const key of Object.keys(EnvSchema.properties)) {
    const value = environment[key]
    if (value !== undefined && value !== '') raw[key] = value
  }
  const given: Record<string, unknown> = { ...raw }
  // Booleans as environments spell them: true/false in any case, and 1/0.
  for (const [key, schema] of Object.entries(EnvSchema.properties)) {
    if ((schema as { type?: string }).type !== 'boolean' || given[key] === undefined) continue
    const spelled = String(given[key]).toLowerCase()
    given[key] = spelled === '1' ? 'true' : spelled === '0' ? 'false' : spelled
  }
  checkEnv ??= schemaCheck(EnvSchema, { coerce: true })
  const firstError = checkEnv(given) // coerces numbers and fills in defaults, in place
  if (firstError !== undefined) {
    const key = firstError.instancePath.replace(/^\//, '').split('/')[0]
    throw new ConfigError(`Invalid configuration: ${key}=${JSON.stringify(raw[key] ?? '')} must be ${describe(key)}`)
  }
  const env = given as Env
  const awsConfigured = [env.AWS_S3_VIDEO_BUCKET, env.AWS_S3_CODE_BUCKET, env.AWS_DYNAMODB_TABLE,
    env.AWS_ENDPOINT_URL, env.AWS_ENDPOINT_URL_S3, env.AWS_ENDPOINT_URL_DYNAMODB].some((value) => value !== undefined)
  if (awsConfigured && (env.AWS_S3_VIDEO_BUCKET === undefined || env.AWS_S3_CODE_BUCKET === undefined)) {
    throw new ConfigError('Invalid configuration: AWS_S3_VIDEO_BUCKET and AWS_S3_CODE_BUCKET must both be set when any AWS bucket, table or endpoint is configured')
  }
  if (env.S3_SSE === 'aws:kms' && env.AWS_KMS_KEY_ID === undefined) {
    throw new ConfigError('Invalid configuration: AWS_KMS_KEY_ID must be set when S3_SSE=aws:kms')
  }
  const mode = awsConfigured ? 'aws' : 'embedded'
  const algorithm = env.S3_SSE ?? (env.AWS_KMS_KEY_ID !== undefined ? 'aws:kms' : 'AES256')
  return {
    mode,
    region: env.AWS_REGION,
    videoBucket: env.AWS_S3_VIDEO_BUCKET ?? EMBEDDED_DEFAULTS.videoBucket,
    codeBucket: env.AWS_S3_CODE_BUCKET ?? EMBEDDED_DEFAULTS.codeBucket,
    table: env.AWS_DYNAMODB_TABLE ?? EMBEDDED_DEFAULTS.table,
    s3Endpoint: env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL,
    dynamodbEndpoint: env.AWS_ENDPOINT_URL_DYNAMODB ?? env.AWS_ENDPOINT_URL,
    maxAttempts: env.AWS_MAX_ATTEMPTS,
    sse: { algorithm, kmsKeyId: algorithm === 'aws:kms' ? env.AWS_KMS_KEY_ID : undefined },
    host: env.HOST,
    port: env.PORT,
    logLevel: env.LOG_LEVEL,
    prettyLogs: env.LOG_FORMAT === undefined ? mode === 'embedded' && process.stdout.isTTY === true : env.LOG_FORMAT === 'pretty',
    dataDir: resolve(env.DATA_DIR),
    maxVideoBytes: env.MAX_VIDEO_BYTES,
    maxCodeBytes: env.MAX_CODE_BYTES,
    partSize: env.UPLOAD_PART_SIZE,
    queueSize: env.UPLOAD_QUEUE_SIZE,
    maxConcurrentUploads: env.MAX_CONCURRENT_UPLOADS,
    presignExpiresSeconds: env.PRESIGN_EXPIRES_SECONDS,
    directMultipartThreshold: env.DIRECT_MULTIPART_THRESHOLD,
    directSessionTtlSeconds: env.DIRECT_SESSION_TTL_SECONDS,
    uploadCaps: { perProject: env.MAX_OPEN_UPLOADS_PER_PROJECT, perVideo: env.MAX_OPEN_UPLOADS_PER_VIDEO },
    uploadSessionConcurrency: env.UPLOAD_SESSION_CONCURRENCY,
    codeCacheTtlMs: env.CODE_CACHE_TTL_MS,
    uploadLeaseMs: env.UPLOAD_LEASE_MS,
    tusExpiresSeconds: env.TUS_EXPIRES_SECONDS,
    idempotencyLeaseMs: env.IDEMPOTENCY_LEASE_MS,
    completeWaitMs: env.COMPLETE_WAIT_MS,
    commitDeadlineMs: env.COMMIT_DEADLINE_MS,
    healthTimeoutMs: env.HEALTH_TIMEOUT_MS,
    healthCacheMs: env.HEALTH_CACHE_MS,
    healthWriteCheckMs: env.HEALTH_WRITE_CHECK_MS,
    healthDetails: env.HEALTH_DETAILS,
    codeObjectLock: env.CODE_OBJECT_LOCK,
    noncurrentVersionExpiryDays: env.NONCURRENT_VERSION_EXPIRY_DAYS,
    shutdownGraceMs: env.SHUTDOWN_GRACE_MS,
    apiKeysFile: env.API_KEYS_FILE,
    allowAnonymous: env.ALLOW_ANONYMOUS,
    rateLimit: { max: env.RATE_LIMIT_MAX, windowMs: durationMs(env.RATE_LIMIT_WINDOW), store: env.RATE_LIMIT_STORE ?? (mode === 'aws' ? 'dynamodb' : 'memory') },
    corsOrigins: (env.CORS_ORIGINS ?? '').split(',').map((origin) => origin.trim()).filter(Boolean),
    limits: { maxHeaderBytes: env.MAX_HEADER_BYTES, headersTimeoutMs: env.HEADERS_TIMEOUT_MS, socketIdleTimeoutMs: env.SOCKET_IDLE_TIMEOUT_MS, requestTimeoutMs: env.REQUEST_TIMEOUT_MS },
    overload: { maxEventLoopDelayMs: env.OVERLOAD_MAX_EVENT_LOOP_DELAY_MS, maxHeapBytes: env.OVERLOAD_MAX_HEAP_BYTES },
    metrics: { token: env.METRICS_TOKEN, openDetail: env.METRICS_OPEN_DETAIL },
    edge: { maxConnections: env.MAX_CONNECTIONS, minBodyBytesPerSecond: env.MIN_BODY_BYTES_PER_SECOND, bodyRateWindowMs: env.BODY_RATE_WINDOW_MS },
    progressStreams: { maxPerClient: env.SSE_MAX_PER_CLIENT, maxPerReplica: env.SSE_MAX_PER_REPLICA }
  }
}
