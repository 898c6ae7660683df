// Opening a direct upload session: one presigned PUT for small files, a multipart upload (URLs on demand) for large.
import { randomUUID } from 'node:crypto'
import { AbortMultipartUploadCommand, CreateMultipartUploadCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import type { Config } from '../../config.js'
import { isDependencyUnavailable, payloadTooLarge, unsupportedMediaType } from '../../errors.js'
import { recordBestEffortFailure } from '../../http/metrics.js'
import { encryptionParams, stagingKey, uploadObjectKey } from '../../renders/store.js'
import { DIRECT_CONTENT_TYPES, completeByOf, directPartSize, urlExpiry, type DirectContext, type DirectUploadPlan } from './common.js'

export interface StartRequest {
  projectId: string
  videoId: string
  sizeBytes: number
  contentType: string
  sha256?: string
  title?: string
  durationSeconds?: number
  resolution?: string
}

/** SSE headers stay headers (S3 does not take them from the query string) and are signed like Content-Type. */
const UNHOISTABLE = new Set(['x-amz-server-side-encryption', 'x-amz-server-side-encryption-aws-kms-key-id'])

/**
 * The headers a client must send with its single PUT, signed into the URL; SSE ones only where configured.
 * Parts take none: their object's encryption was set by CreateMultipartUpload, and an unsigned x-amz-* header
 * would break the part's signature.
 */
function signedHeaders (config: Config, contentType: string): Record<string, string> {
  const sse = encryptionParams(config)
  return {
    'Content-Type': contentType,
    ...(sse.ServerSideEncryption === undefined ? {} : { 'x-amz-server-side-encryption': sse.ServerSideEncryption }),
    ...(sse.SSEKMSKeyId === undefined ? {} : { 'x-amz-server-side-encryption-aws-kms-key-id': sse.SSEKMSKeyId })
  }
}

/** The checks that need no storage (413 too large, 415 not a video type): the container type and its extension. */
export function checkedStart (config: Config, { sizeBytes, contentType }: Pick<StartRequest, 'sizeBytes' | 'contentType'>): { type: string, ext: string } {
  if (sizeBytes > config.maxVideoBytes) throw payloadTooLarge(`sizeBytes ${sizeBytes} is over the maximum of ${config.maxVideoBytes} bytes`)
  const type = contentType.split(';')[0].trim().toLowerCase()
  const ext = DIRECT_CONTENT_TYPES[type]
  if (ext === undefined) throw unsupportedMediaType(`contentType must be one of ${Object.keys(DIRECT_CONTENT_TYPES).join(', ')}`)
  return { type, ext }
}

/**
 * Opens a session. Below DIRECT_MULTIPART_THRESHOLD: one presigned PUT, signed now (one URL costs nothing), the
 * session living two URL lifetimes as before. From it: a multipart upload with no URLs yet; the client asks for part
 * URLs (POST .../parts, at most 100 at a time) as it goes, and the session lives DIRECT_SESSION_TTL_SECONDS. Either
 * takes a slot of the project's and the video's cap first (429 + Retry-After when one is full).
 */
export async function startDirect (ctx: DirectContext, request: StartRequest): Promise<DirectUploadPlan> {
  const { config } = ctx
  const { projectId, videoId, sizeBytes, sha256, title, durationSeconds, resolution } = request
  const { type, ext } = checkedStart(config, request)
  const uploadId = randomUUID()
  // A single PUT lands in staging and is copied once verified (its URL stays live); multipart parts are assembled
  // straight at the upload's own key (once assembled, no part URL can change the object).
  const multipart = sizeBytes >= config.directMultipartThreshold
  const key = multipart ? uploadObjectKey(projectId, videoId, uploadId, ext) : stagingKey(projectId, videoId, uploadId, ext)
  // A single PUT: completing is allowed for one more URL lifetime, so an upload started just before expiry can finish.
  const ttlSeconds = multipart ? (config.directSessionTtlSeconds ?? config.presignExpiresSeconds * 2) : config.presignExpiresSeconds * 2
  const completeByEpoch = Math.floor(Date.now() / 1000) + ttlSeconds
  const details = { ...(title === undefined ? {} : { title }), ...(durationSeconds === undefined ? {} : { durationSeconds }), ...(resolution === undefined ? {} : { resolution }) }
  const opening: Opening = {
    base: { projectId, videoId, mode: 'direct' as const, contentType: type, totalBytes: sizeBytes, uploadId, ttlSeconds },
    attributes: { method: 'PUT', key, ext, ...(sha256 === undefined ? {} : { sha256: sha256.toLowerCase() }), ...(Object.keys(details).length === 0 ? {} : { details }) }
  }
  await ctx.slots.claim({ projectId, videoId, uploadId }, completeByEpoch)
  try {
    return multipart ? await openMultipart(ctx, opening) : await openSinglePut(ctx, opening)
  } catch (error) {
    // No session stored (or unknown): its slot goes back; one kept for a session that exists lapses at completeBy.
    if (!isDependencyUnavailable(error)) {
      await ctx.slots.release({ projectId, videoId, uploadId }).catch((cleanup: unknown) => { recordBestEffortFailure('upload-slot-release', cleanup, ctx.log) })
    }
    throw error
  }
}

interface Opening {
  base: { projectId: string, videoId: string, mode: 'direct', contentType: string, totalBytes: number, uploadId: string, ttlSeconds: number }
  attributes: { method: string, key: string, ext: string, sha256?: string, details?: Record<string, unknown> }
}

/** One presigned PUT into staging, signed now. */
async function openSinglePut (ctx: DirectContext, { base, attributes }: Opening): Promise<DirectUploadPlan> {
  const { config } = ctx
  const expiresIn = config.presignExpiresSeconds
  const expiresAt = new Date(Date.now() + expiresIn * 1000).toISOString()
  const command = new PutObjectCommand({ Bucket: ctx.bucket, Key: attributes.key, ContentType: base.contentType, ContentLength: base.totalBytes, ...encryptionParams(config) })
  const url = await getSignedUrl(ctx.s3, command, { expiresIn, signableHeaders: new Set(['content-type', 'content-length']), unhoistableHeaders: UNHOISTABLE })
  const session = await ctx.sessions.create({ ...base, attributes: { ...attributes, urlExpiresAt: expiresAt } })
  return { uploadId: base.uploadId, method: 'PUT', url, headers: signedHeaders(config, base.contentType), expiresAt, completeBy: completeByOf(session) }
}

/** A multipart upload at the upload's own key, no URLs yet (POST .../parts signs them). */
async function openMultipart (ctx: DirectContext, { base, attributes }: Opening): Promise<DirectUploadPlan> {
  const { s3, bucket, config } = ctx
  const partSize = directPartSize(base.totalBytes, config.partSize)
  const partCount = Math.ceil(base.totalBytes / partSize)
  const { UploadId: s3UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: attributes.key, ContentType: base.contentType, ...encryptionParams(config) }))
  if (s3UploadId === undefined) throw new Error('S3 answered CreateMultipartUpload without an UploadId')
  try {
    const session = await ctx.sessions.create({ ...base, attributes: { ...attributes, method: 'MULTIPART', s3UploadId, partSize, partCount } })
    const completeBy = completeByOf(session)
    return { uploadId: base.uploadId, method: 'MULTIPART', partSize, partCount, headers: {}, expiresAt: urlExpiry(ctx, Date.now(), session).toISOString(), completeBy }
  } catch (error) {
    // Only a session that was certainly not stored takes its multipart upload along; otherwise reconcile decides.
    if (!isDependencyUnavailable(error)) {
      await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: attributes.key, UploadId: s3UploadId })).catch((cleanup: unknown) => { recordBestEffortFailure('multipart-abort', cleanup, ctx.log) })
    }
    throw error
  }
}
