// Direct-to-S3 uploads: the client PUTs the bytes to presigned URLs; the service only signs, then verifies the
// staged object (size, part ETags, container, SHA-256) before it becomes a render version.
import { createHash, randomUUID } from 'node:crypto'
import { access } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, DeleteObjectCommand,
  GetObjectCommand, HeadObjectCommand, PutObjectCommand, UploadPartCommand
} from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import type { AwsClients } from '../aws/clients.js'
import type { Config } from '../config.js'
import { HttpProblem, badRequest, conflict, isDependencyUnavailable, notFound, payloadTooLarge, unsupportedMediaType } from '../errors.js'
import { recordBestEffortFailure, recordUploadBytes } from '../http/metrics.js'
import { encryptionParams, stagingKey, uploadObjectKey, type RenderVersion, type RenderVersions } from '../renders/store.js'
import { SessionBusy, type UploadSession, type UploadSessions } from './sessions.js'
import { createPartLister, expectedPartSize, type PartListing, type ReceivedPart } from './parts.js'
import { createUploadSlots } from './slots.js'
import { createPartSigner } from '../aws/part-signer.js'
import { OutcomeUnknown, type WriteIdentity } from '../versions/store.js'
import { SNIFF_BYTES, sniffVideoContainer, type VideoContainer } from '../renders/container.js'

/** The containers the service stores, by the content type a client declares. */
export const DIRECT_CONTENT_TYPES: Record<string, string> = {
  'video/mp4': 'mp4',
  'video/quicktime': 'mov',
  'video/webm': 'webm',
  'video/x-matroska': 'mkv',
  'video/x-msvideo': 'avi'
}

const MIB = 1024 * 1024
const MAX_PARTS = 10_000
/** Part URLs signed per request at most (POST .../parts). */
export const MAX_PARTS_PER_REQUEST = 100
/** Signing yields to the event loop after this much work, so no request holds it longer (see bench/direct-signing.ts). */
const SIGN_SLICE_MS = 4
const COMPLETED_TTL_SECONDS = 7 * 24 * 3600

export type DirectMethod = 'PUT' | 'MULTIPART'

export interface DirectUploadPlan {
  uploadId: string
  method: DirectMethod
  url?: string
  /** no longer filled for new sessions: part URLs come from POST .../parts (kept in the type for older callers) */
  parts?: Array<{ partNumber: number, url: string, sizeBytes: number }>
  partSize?: number
  partCount?: number
  headers: Record<string, string>
  expiresAt: string
  completeBy: string
}

export interface UploadState {
  uploadId: string
  videoId: string
  mode: 'proxied' | 'direct'
  method?: DirectMethod
  status: UploadSession['status']
  bytesUploaded: number
  totalBytes?: number
  contentType: string
  partSize?: number
  partCount?: number
  sha256?: string
  expiresAt?: string
  completeBy: string
  renderVersion?: number
  lastError?: string
  failureReason?: string
  retryCount: number
  createdAt: string
  updatedAt: string
  /** multipart sessions that are pending: the parts S3 holds so far */
  parts?: ReceivedPart[]
  /** where `parts` came from: ListParts, the embedded S3's own part store, or unavailable (this S3 cannot list) */
  partsSource?: PartListing['source']
}

export interface SignedPart { partNumber: number, url: string, headers: Record<string, string>, expiresAt: string, sizeBytes: number }

/** The one mapping from a session item to the API: S3 keys and upload ids stay inside. */
export function toUploadState (session: UploadSession): UploadState {
  const optional = <T>(name: string): T | undefined => session[name] as T | undefined
  return {
    uploadId: session.uploadId,
    videoId: session.videoId,
    mode: session.mode,
    method: optional('method'),
    status: session.status,
    bytesUploaded: session.bytesUploaded,
    totalBytes: session.totalBytes,
    contentType: session.contentType,
    partSize: optional('partSize'),
    partCount: optional('partCount'),
    sha256: optional('sha256'),
    expiresAt: optional('urlExpiresAt'),
    completeBy: completeByOf(session),
    renderVersion: session.renderVersion,
    lastError: session.lastError,
    failureReason: session.failureReason,
    retryCount: session.retryCount,
    createdAt: session.createdAt,
    updatedAt: session.updatedAt
  }
}

export interface ReportedPart { partNumber: number, etag: string }

/** Part size so that no upload needs more than 10,000 parts: at least the configured size, whole MiB. */
export function directPartSize (sizeBytes: number, configuredPartSize: number): number {
  const needed = Math.max(configuredPartSize, Math.ceil(sizeBytes / MAX_PARTS))
  return Math.ceil(needed / MIB) * MIB
}

/** A verification failure: the staged object is unusable, so it is deleted and the session fails. */
class RejectedObject extends HttpProblem {}
const rejected = (status: 400 | 415, detail: string): RejectedObject =>
  new RejectedObject(status, status === 415 ? 'Unsupported Media Type' : 'Bad Request', detail)

const completeByOf = (session: UploadSession): string => new Date(session.expiresAtEpoch * 1000).toISOString()

const normalEtag = (etag: string): string => etag.replaceAll('"', '').trim().toLowerCase()


export function createDirectUploads ({ aws, config, sessions, renders, log }: { aws: AwsClients, config: Config, sessions: UploadSessions, renders: RenderVersions, log?: { warn: (object: object, message: string) => void } }) {
  const { s3 } = aws
  const bucket = config.videoBucket

  /**
   * The headers a client must send with its single PUT, signed into the URL; SSE ones only where configured.
   * Parts take none: their object's encryption was set by CreateMultipartUpload, and an unsigned x-amz-* header
   * would break the part's signature.
   */
  function signedHeaders (contentType: string): Record<string, string> {
    const sse = encryptionParams(config)
    return {
      'Content-Type': contentType,
      ...(sse.ServerSideEncryption === undefined ? {} : { 'x-amz-server-side-encryption': sse.ServerSideEncryption }),
      ...(sse.SSEKMSKeyId === undefined ? {} : { 'x-amz-server-side-encryption-aws-kms-key-id': sse.SSEKMSKeyId })
    }
  }

  // SSE headers stay headers (S3 does not take them from the query string) and are signed like Content-Type.
  const UNHOISTABLE = new Set(['x-amz-server-side-encryption', 'x-amz-server-side-encryption-aws-kms-key-id'])

  async function findDirect (projectId: string, videoId: string, uploadId: string): Promise<UploadSession> {
    const session = await sessions.get(projectId, videoId, uploadId)
    if (session === undefined) throw notFound(`upload ${uploadId} of video ${projectId}/${videoId} does not exist`)
    if (session.mode !== 'direct') throw conflict(`upload ${uploadId} goes through the service, not direct to S3`)
    return session
  }

  const slots = createUploadSlots({ ddb: aws.ddb, table: config.table, caps: config.uploadCaps ?? { perProject: 0, perVideo: 0 } })
  const partLister = createPartLister({ s3, config })

  /** Gives back a session's cap slots once it ended; best effort (a slot left behind lapses at its completeBy). */
  const releaseSlots = (session: UploadSession): void => {
    slots.release(session).catch((error: unknown) => { recordBestEffortFailure('upload-slot-release', error, log) })
  }

  /**
   * Opens a session. Below DIRECT_MULTIPART_THRESHOLD: one presigned PUT, signed now (one URL costs nothing), the
   * session living two URL lifetimes as before. From it: a multipart upload with no URLs yet; the client asks for part
   * URLs (POST .../parts, at most 100 at a time) as it goes, and the session lives DIRECT_SESSION_TTL_SECONDS. Either
   * takes a slot of the project's and the video's cap first (429 + Retry-After when one is full).
   */
  async function start ({ projectId, videoId, sizeBytes, contentType, sha256, title, durationSeconds, resolution }: { projectId: string, videoId: string, sizeBytes: number, contentType: string, sha256?: string, title?: string, durationSeconds?: number, resolution?: string }): Promise<DirectUploadPlan> {
    if (sizeBytes > config.maxVideoBytes) throw payloadTooLarge(`sizeBytes ${sizeBytes} is over the maximum of ${config.maxVideoBytes} bytes`)
    const type = contentType.split(';')[0].trim().toLowerCase()
    const ext = DIRECT_CONTENT_TYPES[type]
    if (ext === undefined) throw unsupportedMediaType(`contentType must be one of ${Object.keys(DIRECT_CONTENT_TYPES).join(', ')}`)
    const uploadId = randomUUID()
    // A single PUT lands in staging and is copied once verified (its URL stays live); multipart parts are assembled
    // straight at the upload's own key (once assembled, no part URL can change the object).
    const multipart = sizeBytes >= config.directMultipartThreshold
    const key = multipart ? uploadObjectKey(projectId, videoId, uploadId, ext) : stagingKey(projectId, videoId, uploadId, ext)
    const now = Date.now()
    // A single PUT: completing is allowed for one more URL lifetime, so an upload started just before expiry can finish.
    const ttlSeconds = multipart ? (config.directSessionTtlSeconds ?? config.presignExpiresSeconds * 2) : config.presignExpiresSeconds * 2
    const completeByEpoch = Math.floor(now / 1000) + ttlSeconds
    const details = { ...(title === undefined ? {} : { title }), ...(durationSeconds === undefined ? {} : { durationSeconds }), ...(resolution === undefined ? {} : { resolution }) }
    const base = { projectId, videoId, mode: 'direct' as const, contentType: type, totalBytes: sizeBytes, uploadId, ttlSeconds }
    const attributes = { method: 'PUT', key, ext, ...(sha256 === undefined ? {} : { sha256: sha256.toLowerCase() }), ...(Object.keys(details).length === 0 ? {} : { details }) }
    await slots.claim({ projectId, videoId, uploadId }, completeByEpoch)
    try {
      if (!multipart) {
        const expiresIn = config.presignExpiresSeconds
        const expiresAt = new Date(now + expiresIn * 1000).toISOString()
        const url = await getSignedUrl(s3, new PutObjectCommand({ Bucket: bucket, Key: key, ContentType: type, ContentLength: sizeBytes, ...encryptionParams(config) }), {
          expiresIn, signableHeaders: new Set(['content-type', 'content-length']), unhoistableHeaders: UNHOISTABLE
        })
        const session = await sessions.create({ ...base, attributes: { ...attributes, urlExpiresAt: expiresAt } })
        return { uploadId, method: 'PUT', url, headers: signedHeaders(type), expiresAt, completeBy: completeByOf(session) }
      }
      const partSize = directPartSize(sizeBytes, config.partSize)
      const partCount = Math.ceil(sizeBytes / partSize)
      const { UploadId: s3UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: type, ...encryptionParams(config) }))
      if (s3UploadId === undefined) throw new Error('S3 answered CreateMultipartUpload without an UploadId')
      try {
        const session = await sessions.create({ ...base, attributes: { ...attributes, method: 'MULTIPART', s3UploadId, partSize, partCount } })
        const completeBy = completeByOf(session)
        return { uploadId, method: 'MULTIPART', partSize, partCount, headers: {}, expiresAt: urlExpiry(Date.now(), session).toISOString(), completeBy }
      } catch (error) {
        // Only a session that was certainly not stored takes its multipart upload along; otherwise reconcile decides.
        if (!isDependencyUnavailable(error)) await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: s3UploadId })).catch((cleanup: unknown) => { recordBestEffortFailure('multipart-abort', cleanup, log) })
        throw error
      }
    } catch (error) {
      // No session stored (or unknown): its slot goes back; one kept for a session that exists lapses at completeBy.
      if (!isDependencyUnavailable(error)) await slots.release({ projectId, videoId, uploadId }).catch(() => {})
      throw error
    }
  }

  /** When a URL signed now stops working: PRESIGN_EXPIRES_SECONDS from now, but never after the session's completeBy. */
  function urlExpiry (now: number, session: UploadSession): Date {
    return new Date(Math.min(now + config.presignExpiresSeconds * 1000, session.expiresAtEpoch * 1000))
  }

  /**
   * Signs UploadPart URLs for the given part numbers of a pending multipart session, on demand. The first URL goes
   * through the SDK's getSignedUrl (endpoint, path style, signing region as for every other call); the rest reuse its
   * address, date and region with one derived signing key (src/aws/part-signer.ts: one SHA-256 and one HMAC per URL).
   * Signing yields to the event loop every SIGN_SLICE_MS, so no request blocks other requests for longer.
   */
  async function signParts ({ projectId, videoId, uploadId, partNumbers }: { projectId: string, videoId: string, uploadId: string, partNumbers: number[] }): Promise<SignedPart[]> {
    const session = await findDirect(projectId, videoId, uploadId)
    if (session.method !== 'MULTIPART') throw conflict(`upload ${uploadId} has one PUT URL (given when it was opened), no parts`)
    if (session.status === 'expired') throw new HttpProblem(410, 'Gone', `upload ${uploadId} expired at ${completeByOf(session)}; open a new one`)
    if (session.status !== 'pending') throw conflict(`upload ${uploadId} is ${session.status}; part URLs are only given while it is pending`)
    const partCount = session.partCount as number
    const unique = [...new Set(partNumbers)]
    if (unique.length !== partNumbers.length) throw badRequest('partNumbers lists a part more than once')
    if (unique.length > MAX_PARTS_PER_REQUEST) throw badRequest(`at most ${MAX_PARTS_PER_REQUEST} part URLs per request`)
    const outside = unique.filter((number) => !Number.isInteger(number) || number < 1 || number > partCount)
    if (outside.length > 0) throw badRequest(`this upload has parts 1..${partCount}; not ${outside.slice(0, 10).join(', ')}${outside.length > 10 ? ', ...' : ''}`)
    const now = Date.now()
    const expires = urlExpiry(now, session)
    const expiresIn = Math.floor((expires.getTime() - now) / 1000)
    if (expiresIn < 1) throw new HttpProblem(410, 'Gone', `upload ${uploadId} expires at ${completeByOf(session)}; too late for new part URLs`)
    const ref = { partSize: session.partSize as number, totalBytes: session.totalBytes as number }
    const key = session.key as string
    const s3UploadId = session.s3UploadId as string
    const expiresAt = expires.toISOString()
    const signed: SignedPart[] = []
    const [first, ...rest] = unique
    const firstSize = expectedPartSize(ref, first)
    const firstUrl = await getSignedUrl(s3, new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: s3UploadId, PartNumber: first, ContentLength: firstSize }), {
      expiresIn, signableHeaders: new Set(['content-length'])
    })
    signed.push({ partNumber: first, url: firstUrl, headers: {}, expiresAt, sizeBytes: firstSize })
    if (rest.length === 0) return signed
    // The rest: the first URL's address, date and region, the client's own credentials, one signing key.
    const template = new URL(firstUrl)
    const credential = (template.searchParams.get('X-Amz-Credential') ?? '').split('/')
    const identity = await (s3.config.credentials as () => Promise<{ accessKeyId: string, secretAccessKey: string, sessionToken?: string }>)()
    const presign = createPartSigner({ identity, region: credential[2], service: credential[3], amzDate: template.searchParams.get('X-Amz-Date') as string, expiresIn })
    const query: Record<string, string> = {}
    for (const [name, value] of template.searchParams) if (!name.startsWith('X-Amz-')) query[name] = value
    let slice = performance.now()
    for (const partNumber of rest) {
      if (performance.now() - slice > SIGN_SLICE_MS) {
        await yieldToEventLoop()
        slice = performance.now()
      }
      const sizeBytes = expectedPartSize(ref, partNumber)
      const url = presign({ method: 'PUT', origin: template.origin, host: template.host, path: template.pathname, query: { ...query, partNumber: String(partNumber) }, headers: { 'content-length': String(sizeBytes) } })
      signed.push({ partNumber, url, headers: {}, expiresAt, sizeBytes })
    }
    return signed
  }

  /** The reported parts must be exactly 1..partCount, once each (checked before S3 is asked). */
  function checkedParts (session: UploadSession, reported: ReportedPart[] | undefined): ReportedPart[] {
    const partCount = session.partCount as number
    if (reported === undefined || reported.length === 0) throw badRequest(`parts is required for a multipart upload: all ${partCount} of them with their ETags`)
    const sorted = [...reported].sort((a, b) => a.partNumber - b.partNumber)
    const numbers = sorted.map((part) => part.partNumber)
    if (numbers.length !== partCount || numbers.some((number, index) => number !== index + 1)) {
      throw badRequest(`parts must list every part 1..${partCount} exactly once; got ${numbers.length} part numbers`)
    }
    return sorted
  }

  /**
   * Reads the staged object once: SHA-256 of all of it, MD5 of each part (a part's ETag where SSE-KMS is not
   * used), the first bytes for the container check, and the byte count.
   */
  async function readStaged (key: string, partSize: number | undefined, ifMatch: string | undefined): Promise<{ sha256: string, partMd5s: string[], head: Buffer, bytes: number }> {
    // One stream: ranged reads 4 at once were slower on the embedded S3 (one process serving them all).
    const { Body } = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, IfMatch: ifMatch }))
    const sha = createHash('sha256')
    const partMd5s: string[] = []
    let part = createHash('md5')
    let inPart = 0
    let head = Buffer.alloc(0)
    let bytes = 0
    for await (const data of Body as Readable) {
      let chunk = data as Buffer
      sha.update(chunk)
      if (head.length < SNIFF_BYTES) head = Buffer.concat([head, chunk.subarray(0, SNIFF_BYTES - head.length)])
      bytes += chunk.length
      while (partSize !== undefined && chunk.length > 0) {
        const take = Math.min(chunk.length, partSize - inPart)
        part.update(chunk.subarray(0, take))
        inPart += take
        chunk = chunk.subarray(take)
        if (inPart === partSize) {
          partMd5s.push(part.digest('hex'))
          part = createHash('md5')
          inPart = 0
        }
      }
    }
    if (partSize !== undefined && inPart > 0) partMd5s.push(part.digest('hex'))
    return { sha256: sha.digest('hex'), partMd5s, head, bytes }
  }

  /** Checks the staged object against the session; throws RejectedObject when it cannot become a render. */
  /** Checks the staged object; answers its SHA-256 and the ETag it had, so what is copied is what was checked. */
  async function verify (session: UploadSession, parts: ReportedPart[], partsChecked = false): Promise<{ sha256: string, etag: string | undefined, container: VideoContainer }> {
    const key = session.key as string
    const totalBytes = session.totalBytes as number
    let stat
    try {
      stat = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))
    } catch (error) {
      if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) {
        throw badRequest('nothing has been uploaded to this session\'s URL yet')
      }
      throw error
    }
    if (stat.ContentLength !== totalBytes) throw rejected(400, `the uploaded object has ${stat.ContentLength ?? 0} bytes, not the ${totalBytes} the session was opened for`)
    if (stat.ContentType?.split(';')[0].trim().toLowerCase() !== session.contentType) {
      throw rejected(415, `the object was uploaded as ${stat.ContentType ?? 'no content type'}, not ${session.contentType}`)
    }
    const multipart = session.method === 'MULTIPART'
    // Part MD5s are recomputed only where nobody compared the report with the ETags S3 holds (S3 made those from the bytes).
    const partMd5s = multipart && !partsChecked && config.sse.algorithm !== 'aws:kms'
    const read = await readStaged(key, partMd5s ? session.partSize as number : undefined, stat.ETag)
    if (read.bytes !== totalBytes) throw rejected(400, `the uploaded object has ${read.bytes} bytes, not ${totalBytes}`)
    if (partMd5s) {
      const forged = parts.find((part, index) => normalEtag(part.etag) !== read.partMd5s[index])
      if (forged !== undefined) throw rejected(400, `part ${forged.partNumber}: its ETag does not match the bytes of that part of this upload`)
    }
    const container = sniffVideoContainer(read.head)
    if (container === undefined) throw rejected(415, 'the uploaded object is not a video container (MP4, MOV, WebM, MKV or AVI)')
    const expected = session.sha256 as string | undefined
    if (expected !== undefined && expected !== read.sha256) throw rejected(400, `the uploaded object's SHA-256 is ${read.sha256}, not the ${expected} given when the session was opened`)
    return { sha256: read.sha256, etag: stat.ETag, container }
  }

  /** Stitches the parts together on S3, once per session even when complete is retried. */
  async function assemble (session: UploadSession, parts: ReportedPart[]): Promise<UploadSession> {
    if (session.assembled === true) return session
    try {
      await s3.send(new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: session.key as string,
        UploadId: session.s3UploadId as string,
        MultipartUpload: { Parts: parts.map((part) => ({ PartNumber: part.partNumber, ETag: `"${normalEtag(part.etag)}"` })) }
      }))
    } catch (error) {
      // A completion that died after S3 assembled the object but before recording it: the object is there, whole.
      if (await assembledAlready(session)) return await sessions.finish(session, { attributes: { assembled: true, parts }, expectStatus: ['uploading'] })
      if (isDependencyUnavailable(error)) throw error
      // InvalidPart, InvalidPartOrder, EntityTooSmall, NoSuchUpload: the client's report does not fit this upload.
      throw badRequest('S3 refused to assemble the parts: report every part of this upload with the ETag S3 answered its PUT with')
    }
    return await sessions.finish(session, { attributes: { assembled: true, parts }, expectStatus: ['uploading'] })
  }

  async function discardStaged (session: UploadSession): Promise<void> {
    if (session.method === 'MULTIPART' && session.assembled !== true) {
      // Best effort: local S3 answers 405; real S3 drops the parts (and a lifecycle rule does it after a day).
      await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: session.key as string, UploadId: session.s3UploadId as string })).catch(() => {})
    }
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: session.key as string })).catch(() => {})
  }

  /**
   * Verifies the uploaded object and makes it the next render version: `render` once done (created: false when an
   * earlier complete did it), or `accepted` (answer 202) when the work takes longer than COMPLETE_WAIT_MS or another
   * request is doing it right now; the work goes on and GET of the session tells when it is done. Complete is
   * idempotent by itself: its commit token is the session's, so a repeat, or a takeover of a session whose replica
   * died, never makes a second version. An expired session is 410; an aborted or failed one 409.
   */
  async function complete ({ projectId, videoId, uploadId, parts, sha256 }: { projectId: string, videoId: string, uploadId: string, parts?: ReportedPart[], sha256?: string }): Promise<{ render: RenderVersion, created: boolean } | { accepted: UploadState }> {
    const session = await findDirect(projectId, videoId, uploadId)
    if (session.status === 'completed') return { render: await completedRender(session), created: false }
    if (session.status === 'expired') {
      // Past its expiry, but a completion that began in time may still be running, or may have committed without
      // recording it: a multipart object is assembled at the key its render names, so nothing is discarded then.
      if (completingNow(session)) return { accepted: { ...toUploadState(session), status: 'uploading' } }
      const committed = await ownCommit(session)
      if (committed !== undefined) return { render: committed, created: false }
      if (await expire(session)) throw new HttpProblem(410, 'Gone', `upload ${uploadId} expired at ${new Date(session.expiresAtEpoch * 1000).toISOString()}; open a new one`)
      return await complete({ projectId, videoId, uploadId, parts, sha256 })
    }
    // Being completed by another request whose replica is alive (a lapsed lease reads pending again).
    if (session.status === 'uploading') return { accepted: toUploadState(session) }
    if (session.status !== 'pending') throw conflict(`upload ${uploadId} is ${session.status}`)
    const reported = session.method === 'MULTIPART' ? checkedParts(session, parts) : []
    if (session.method === 'PUT' && parts !== undefined && parts.length > 0) throw badRequest('parts are for multipart uploads; this session has one PUT URL')
    const given = sha256?.toLowerCase()
    if (given !== undefined && typeof session.sha256 === 'string' && session.sha256 !== given) {
      throw badRequest(`sha256 ${given} is not the ${session.sha256} given when the session was opened`)
    }
    const partsChecked = session.method === 'MULTIPART' && session.assembled !== true && await checkAgainstStored(session, reported)

    let begun: UploadSession
    try {
      begun = (await sessions.begin(session, { expect: ['pending'], ...(given === undefined ? {} : { attributes: { sha256: given } }) })).session
    } catch (error) {
      const now = await sessions.get(projectId, videoId, uploadId)
      if (now?.status === 'completed') return { render: await completedRender(now), created: false }
      if (error instanceof SessionBusy && now !== undefined) return { accepted: toUploadState(now) }
      throw error
    }
    const work = finishUpload(begun, reported, partsChecked)
    let timer: ReturnType<typeof setTimeout> | undefined
    const late = new Promise<undefined>((resolve) => { timer = setTimeout(() => { resolve(undefined) }, config.completeWaitMs) })
    try {
      const done = await Promise.race([work, late])
      if (done !== undefined) return done
    } finally {
      clearTimeout(timer)
    }
    // Still verifying: the work goes on (its failures are recorded on the session), the client polls the session.
    work.catch(() => {})
    return { accepted: toUploadState(begun) }
  }

  /** The session's object becomes a render version, or the session says why not (rejected: failed; else pending). */
  async function finishUpload (session: UploadSession, reported: ReportedPart[], partsChecked = false): Promise<{ render: RenderVersion, created: boolean }> {
    const { projectId, videoId, uploadId } = session
    // Losing the lease means another complete may have taken the session over: it shares this attempt's final key and
    // commit token, so from then on this attempt deletes nothing and does not write the session's failure over it.
    let leaseLost = false
    const stopLease = sessions.keepAlive(session, { onLost: () => { leaseLost = true } })
    const identity = uploadIdentity(session)
    let finalKey = uploadObjectKey(projectId, videoId, uploadId, session.ext as string)
    let copied = false
    let committing = false
    try {
      // A repeat, or a takeover of a replica that died mid-way: its commit may be there already.
      let render = await renders.committedBy(projectId, videoId, identity)
      if (render === undefined) {
        if (session.method === 'MULTIPART') session = await assemble(session, reported)
        const { sha256, etag, container } = await verify(session, reported, partsChecked)
        // The bytes decide the container, not the declared type (as for proxied uploads): MP4 bytes declared
        // video/webm are stored as .mp4 with video/mp4 (a multipart object assembled under the declared extension is
        // copied once to the right one).
        finalKey = uploadObjectKey(projectId, videoId, uploadId, container.ext)
        if (session.key !== finalKey) {
          // A single PUT's URL may still be live: what is copied is what was checked (the ETag guard).
          await copyVerified(session.key as string, finalKey, { contentType: container.contentType, metadata: { 'project-id': projectId, 'video-id': videoId, 'upload-id': uploadId, sha256 }, ifMatch: etag })
          copied = true
        }
        committing = true
        const details = (session.details ?? {}) as { title?: string, durationSeconds?: number, resolution?: string }
        render = (await renders.commit(identity, {
          projectId,
          videoId,
          stored: { key: finalKey, ext: container.ext, sizeBytes: session.totalBytes as number, sha256, contentType: container.contentType },
          details: { ...details, uploadId }
        })).render
        recordUploadBytes('direct', render.sizeBytes)
      }
      if (session.key !== render.key) await renders.deleteObject(session.key as string)
      // The render version exists now: a session record that cannot be updated must not turn it into a failure.
      await recordCompleted(session, render)
      return { render, created: true }
    } catch (error) {
      const mayLand = committing && error instanceof OutcomeUnknown
      if (leaseLost) throw error
      if (copied && !mayLand && await renders.committedBy(projectId, videoId, identity).then((found) => found === undefined, () => false)) {
        await renders.deleteObject(finalKey)
      }
      if (error instanceof RejectedObject) {
        await discardStaged(session)
        await sessions.finish(session, { status: 'failed', lastError: error.message, attributes: { leaseUntil: 0 } }).then(() => { releaseSlots(session) }, (cleanup: unknown) => { recordBestEffortFailure('session-finish', cleanup, log) })
      } else {
        // The client's report was wrong or a dependency failed: the session stays open for another complete.
        const lastError = error instanceof HttpProblem && error.statusCode < 500 ? error.message : 'storage failed while completing the upload; complete again'
        // The lease goes with the attempt, so nobody reads this session as being completed any more.
        await sessions.finish(session, { status: 'pending', lastError, retryCount: session.retryCount + 1, attributes: { leaseUntil: 0 } }).catch((cleanup: unknown) => { recordBestEffortFailure('session-finish', cleanup, log) })
      }
      throw error
    } finally {
      stopLease()
    }
  }

  /** Copies a verified single-PUT object to its upload key; an object that changed since it was checked is a 409. */
  async function copyVerified (from: string, to: string, options: { contentType: string, metadata: Record<string, string>, ifMatch?: string }): Promise<void> {
    try {
      await renders.copyObject(from, to, options)
    } catch (error) {
      if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 412) {
        throw conflict('the uploaded object changed while it was being verified (it was PUT again); complete again to verify what is there now')
      }
      throw error
    }
  }

  async function completedRender (session: UploadSession): Promise<RenderVersion> {
    const render = await renders.get(session.projectId, session.videoId, session.renderVersion as number)
    if (render === undefined) throw conflict(`upload ${session.uploadId} completed, but its render version was deleted since`)
    return render
  }

  /** The identity of a session's own commit: its token is the uploadId, so every attempt finds the others' commit. */
  const uploadIdentity = (session: UploadSession): WriteIdentity => ({ token: `upload-${session.uploadId}`, mayExist: true, since: Date.parse(session.createdAt) })

  /** True while a completion of this session holds a live lease (it may still commit). */
  const completingNow = (session: UploadSession): boolean => typeof session.leaseUntil === 'number' && session.leaseUntil >= Date.now()

  /**
   * The render a completion of this session committed although the session does not say so (its replica died, or
   * the session update failed after the commit); the session is brought up to date. Sessions never begun have none.
   */
  async function ownCommit (session: UploadSession): Promise<RenderVersion | undefined> {
    if (session.leaseOwner === undefined) return undefined
    const render = await renders.committedBy(session.projectId, session.videoId, uploadIdentity(session))
    if (render !== undefined) await recordCompleted(session, render)
    return render
  }

  async function recordCompleted (session: UploadSession, render: RenderVersion): Promise<void> {
    await sessions.finish(session, {
      status: 'completed',
      bytesUploaded: render.sizeBytes,
      renderVersion: render.version,
      attributes: { sha256: render.sha256, expiresAtEpoch: Math.floor(Date.now() / 1000) + COMPLETED_TTL_SECONDS }
    }).catch((error: unknown) => { recordBestEffortFailure('session-finish', error, log) })
    releaseSlots(session)
  }

  /**
   * Records an expired session as expired, then leaves nothing of it in S3. False when the session changed under
   * us meanwhile (a completion took it): then nothing is discarded.
   */
  async function expire (session: UploadSession): Promise<boolean> {
    try {
      await sessions.finish(session, { status: 'expired', expectStatus: ['pending', 'uploading', 'expired'] })
    } catch (error) {
      if (error instanceof HttpProblem && error.statusCode === 409) return false
      throw error
    }
    releaseSlots(session)
    await discardStaged(session)
    return true
  }

  /** Aborts an open session: its parts and staged object go, the session reads aborted. Idempotent. */
  async function abort ({ projectId, videoId, uploadId }: { projectId: string, videoId: string, uploadId: string }): Promise<void> {
    const session = await findDirect(projectId, videoId, uploadId)
    if (session.status === 'aborted') return
    if (session.status === 'completed') throw conflict(`upload ${uploadId} is completed; delete its render version instead`)
    if (session.status === 'uploading' || (session.status === 'expired' && completingNow(session))) throw conflict(`upload ${uploadId} is being completed`)
    // A completion that committed without recording it made the object a render's: that is no open session to abort.
    if (await ownCommit(session) !== undefined) throw conflict(`upload ${uploadId} is completed; delete its render version instead`)
    await discardStaged(session)
    await sessions.finish(session, { status: 'aborted', expectStatus: ['pending', 'failed'] })
    releaseSlots(session)
  }

  /** A session as the API shows it (proxied uploads too: their state is readable here as well). */
  async function state ({ projectId, videoId, uploadId }: { projectId: string, videoId: string, uploadId: string }): Promise<UploadState> {
    const session = await sessions.get(projectId, videoId, uploadId)
    if (session === undefined) throw notFound(`upload ${uploadId} of video ${projectId}/${videoId} does not exist`)
    const answer = toUploadState(session)
    if (session.mode === 'direct' && session.method === 'MULTIPART' && session.status === 'pending' && session.assembled !== true) {
      const listing = await listParts(session)
      answer.partsSource = listing.source
      if (listing.parts !== undefined) answer.parts = listing.parts
    }
    return answer
  }

  /** The parts S3 holds for a multipart session (ListParts, or the embedded S3's part store). */
  async function listParts (session: UploadSession): Promise<PartListing & { gone?: boolean }> {
    try {
      return await partLister.list({ key: session.key as string, s3UploadId: session.s3UploadId as string, partSize: session.partSize as number, totalBytes: session.totalBytes as number })
    } catch (error) {
      // The multipart upload is gone (assembled by a completion that died before recording it, or aborted).
      if ((error as { name?: string }).name === 'NoSuchUpload') return { source: 'ListParts', parts: [], gone: true }
      throw error
    }
  }

  /**
   * Checks a complete's report against the parts S3 holds, before S3 is asked to assemble them (the embedded S3
   * crashes on a part it does not have): parts never uploaded are a 409 naming them, ETags that differ a 400.
   * Where S3 cannot list parts, or the upload is already assembled, S3 itself decides at assembly.
   */
  async function checkAgainstStored (session: UploadSession, reported: ReportedPart[]): Promise<boolean> {
    const listing = await listParts(session)
    if (listing.parts === undefined || listing.gone === true) return false
    if (listing.source === 'embedded-store' && listing.parts.length === 0 && !(await embeddedUploadExists(session))) return false
    const stored = new Map(listing.parts.map((part) => [part.partNumber, part]))
    const missing = reported.filter((part) => !stored.has(part.partNumber)).map((part) => part.partNumber)
    if (missing.length > 0) {
      throw conflict(`parts never uploaded (or still being uploaded): ${missing.slice(0, 20).join(', ')}${missing.length > 20 ? `, ... (${missing.length} in all)` : ''}; PUT them, then complete again`, { missingParts: missing.slice(0, 1000) })
    }
    const differing = reported.filter((part) => normalEtag(stored.get(part.partNumber)?.etag ?? '') !== normalEtag(part.etag)).map((part) => part.partNumber)
    if (differing.length > 0) {
      throw badRequest(`parts ${differing.slice(0, 20).join(', ')}${differing.length > 20 ? ', ...' : ''}: the ETag reported is not the one S3 holds for that part (GET the session for the stored ETags)`)
    }
    return true
  }

  /** True when the session's object exists with all its bytes and its multipart upload is no longer open. */
  async function assembledAlready (session: UploadSession): Promise<boolean> {
    const listing = await listParts(session).catch(() => undefined)
    if (listing?.gone !== true && !(listing?.source === 'embedded-store' && !(await embeddedUploadExists(session)))) return false
    const stat = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: session.key as string })).catch(() => undefined)
    return stat?.ContentLength === session.totalBytes
  }

  /** Whether the embedded S3 still has this multipart upload open (its directory exists). */
  async function embeddedUploadExists (session: UploadSession): Promise<boolean> {
    return await access(join(config.dataDir, 's3', bucket, '._S3rver_uploads', session.s3UploadId as string)).then(() => true, () => false)
  }

  return { start, complete, abort, state, signParts }
}

export type DirectUploads = ReturnType<typeof createDirectUploads>
