// tus uploads: the state of each upload lives on its upload session item in DynamoDB (offset, part ETags, the held
// incomplete part, the PATCH lease) and its bytes in one S3 multipart upload, so any replica continues an upload
// another one started. Parts are cut at fixed offsets (n × part size), so a PATCH that is lost or refused only ever
// leaves parts a later PATCH at the same offset overwrites. Bytes below a whole part wait in an "incomplete part"
// object (as @tus/s3-store keeps one), under a key unique to the PATCH that wrote it. When the last byte arrives
// the parts are assembled and the object becomes the next render version through the exactly-once commit.
import { createHash, randomUUID, type Hash } from 'node:crypto'
import type { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, DeleteObjectCommand,
  GetObjectCommand, PutObjectCommand, UploadPartCommand
} from '@aws-sdk/client-s3'
import { UpdateCommand } from '@aws-sdk/lib-dynamodb'
import { LRUCache } from 'lru-cache'
import type { AwsClients } from '../../aws/clients.js'
import type { Config } from '../../config.js'
import { HttpProblem, badRequest, notFound, payloadTooLarge, serviceUnavailable, unsupportedMediaType } from '../../errors.js'
import { recordBestEffortFailure, recordUploadBytes } from '../../http/metrics.js'
import { encryptionParams, uploadObjectKey, type RenderVersion, type RenderVersions } from '../../renders/store.js'
import { toSession, type UploadSession, type UploadSessions } from '../sessions.js'
import { OutcomeUnknown, type WriteIdentity } from '../../versions/store.js'
import { SNIFF_BYTES, sniffVideoContainer } from '../../renders/container.js'
import { isConditionFailure, itemBehindFailedCondition, uploadSortKey, videoKey } from '../../table/video-item.js'
import { checksumMismatch, detailsOf, offsetMismatch, uploadGone, uploadLocked, type ChecksumAlgorithm } from './protocol.js'

const MIB = 1024 * 1024
const MAX_PARTS = 10_000
const COMPLETED_TTL_SECONDS = 7 * 24 * 3600
/** How long a HEAD waits for a PATCH that holds the upload (a client's cut connection its replica has yet to notice). */
const HEAD_WAIT_MS = 3000
const PROGRESS_MS = 1000

/** What HEAD, POST and PATCH answer with. */
export interface TusUploadState {
  uploadId: string
  offset: number
  length: number
  expiresAt: Date
  metadata: Record<string, string>
  /** set once the upload is a render version */
  renderVersion?: number
}

interface TusItem {
  session: UploadSession
  offset: number
  length: number
  partSize: number
  parts: string[]
  heldKey?: string
  heldBytes: number
  s3UploadId?: string
  key?: string
  ext?: string
  contentType: string
  metadata: Record<string, string>
  assembled: boolean
  sha256?: string
  leaseUntil: number
}

export interface TusBody {
  stream: Readable
  /** Content-Length when sent */
  declaredLength?: number
  /** fires when the client goes away before the body has arrived */
  signal: AbortSignal
}

const readItem = (item: Record<string, unknown>, now = Date.now()): TusItem => {
  const session = toSession(item, now)
  return {
    session,
    offset: Number(item.tusOffset ?? 0),
    length: Number(item.totalBytes ?? 0),
    partSize: Number(item.tusPartSize),
    parts: (item.tusParts as string[] | undefined) ?? [],
    heldKey: item.tusHeldKey as string | undefined,
    heldBytes: Number(item.tusHeldBytes ?? 0),
    s3UploadId: item.s3UploadId as string | undefined,
    key: item.key as string | undefined,
    ext: item.ext as string | undefined,
    contentType: String(item.contentType ?? 'application/octet-stream'),
    metadata: (item.tusMetadata as Record<string, string> | undefined) ?? {},
    assembled: item.tusAssembled === true,
    sha256: item.sha256 as string | undefined,
    leaseUntil: Number(item.tusLeaseUntil ?? 0)
  }
}

/** Part size so that no upload needs more than 10,000 parts: at least the configured size, whole MiB. */
export const tusPartSize = (length: number, configured: number): number =>
  Math.ceil(Math.max(configured, Math.ceil(length / MAX_PARTS)) / MIB) * MIB

/** The client left mid-body: what arrived is kept, nobody is there to read an answer. */
class ClientGone extends Error {}

export function createTusUploads ({ aws, config, sessions, renders, log }: {
  aws: AwsClients, config: Config, sessions: UploadSessions, renders: RenderVersions, log?: { warn: (object: object, message: string) => void }
}) {
  const { s3, ddb } = aws
  const table = config.table
  const bucket = config.videoBucket
  const leaseMs = sessions.leaseMs
  const expirySeconds = config.tusExpiresSeconds
  /**
   * SHA-256 of what an upload holds, kept by the replica that received its bytes, while its PATCHes stay here. A
   * PATCH that resumes on another replica (or after a restart) finds none: then the assembled object is read once at
   * completion and hashed (node's hash state cannot be stored in DynamoDB).
   */
  const hashes = new LRUCache<string, { offset: number, hash: Hash }>({ max: 1000, ttl: expirySeconds * 1000 })

  const keyOf = (projectId: string, videoId: string, uploadId: string): { pk: string, sk: string } =>
    ({ pk: videoKey(projectId, videoId).pk, sk: uploadSortKey(uploadId) })
  const expiresAtEpoch = (): number => Math.floor(Date.now() / 1000) + expirySeconds

  const stateOf = (tus: TusItem): TusUploadState => ({
    uploadId: tus.session.uploadId,
    offset: tus.offset,
    length: tus.length,
    expiresAt: new Date(tus.session.expiresAtEpoch * 1000),
    metadata: tus.metadata,
    renderVersion: tus.session.renderVersion
  })

  /** Opens an upload (tus creation): a session item holding the tus state; no S3 call until bytes arrive. */
  async function create ({ projectId, videoId, length, metadata, filetype }: { projectId: string, videoId: string, length: number, metadata: Record<string, string>, filetype?: string }): Promise<TusUploadState> {
    if (length > config.maxVideoBytes) throw payloadTooLarge(`Upload-Length ${length} is over the maximum of ${config.maxVideoBytes} bytes`)
    if (length === 0) throw badRequest('Upload-Length must be at least 1: an empty upload is no video')
    detailsOf(metadata)
    const session = await sessions.create({
      projectId,
      videoId,
      mode: 'proxied',
      status: 'pending',
      contentType: filetype ?? 'application/octet-stream',
      totalBytes: length,
      ttlSeconds: expirySeconds,
      attributes: { protocol: 'tus', tusOffset: 0, tusParts: [], tusHeldBytes: 0, tusPartSize: tusPartSize(length, config.partSize), tusMetadata: metadata }
    })
    return { uploadId: session.uploadId, offset: 0, length, expiresAt: new Date(session.expiresAtEpoch * 1000), metadata }
  }

  async function read (projectId: string, videoId: string, uploadId: string): Promise<TusItem> {
    const item = await itemBehindFailedCondition(ddb, table, keyOf(projectId, videoId, uploadId), undefined)
    if (item === undefined || item.protocol !== 'tus') throw notFound(`video ${projectId}/${videoId} has no tus upload ${uploadId}`)
    return readItem(item)
  }

  /** An upload that can take no more bytes: 410 (cleaning up an expired one first), or its render when completed. */
  async function refuseClosed (tus: TusItem): Promise<void> {
    const { status, uploadId } = tus.session
    if (status === 'expired') {
      await expire(tus)
      throw uploadGone(uploadId, `expired at ${new Date(tus.session.expiresAtEpoch * 1000).toISOString()}`)
    }
    if (status === 'aborted') throw uploadGone(uploadId, 'was terminated')
    if (status === 'failed') throw uploadGone(uploadId, `failed: ${tus.session.lastError ?? 'unknown'}`)
  }

  /**
   * Takes the upload's PATCH lease in one conditional update (and, for PATCH, checks Upload-Offset in the same
   * condition), so two replicas never append at one offset. Answers the item as it is now held.
   */
  async function lock (projectId: string, videoId: string, uploadId: string, options: { offset?: number, uploading?: boolean }): Promise<{ tus: TusItem, owner: string }> {
    const now = Date.now()
    const owner = randomUUID()
    const values: Record<string, unknown> = {
      ':tus': 'tus', ':pending': 'pending', ':uploading': 'uploading', ':now_s': Math.floor(now / 1000), ':now_ms': now,
      ':lease': now + leaseMs, ':owner': owner, ':updated': new Date(now).toISOString(), ':expires': expiresAtEpoch()
    }
    let condition = 'protocol = :tus AND #status IN (:pending, :uploading) AND expiresAtEpoch >= :now_s AND (attribute_not_exists(tusLeaseUntil) OR tusLeaseUntil < :now_ms)'
    if (options.offset !== undefined) {
      condition += ' AND tusOffset = :offset'
      values[':offset'] = options.offset
    }
    const set = ['tusLeaseUntil = :lease', 'tusLeaseOwner = :owner', 'updatedAt = :updated', 'expiresAtEpoch = :expires']
    if (options.uploading === true) set.push('#status = :uploading')
    const key = keyOf(projectId, videoId, uploadId)
    try {
      const { Attributes } = await ddb.send(new UpdateCommand({
        TableName: table,
        Key: key,
        UpdateExpression: `SET ${set.join(', ')}`,
        ConditionExpression: condition,
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: values,
        ReturnValues: 'ALL_NEW',
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD'
      }))
      return { tus: readItem(Attributes ?? {}, now), owner }
    } catch (error) {
      if (!isConditionFailure(error)) throw error
      const item = await itemBehindFailedCondition(ddb, table, key, error)
      if (item === undefined || item.protocol !== 'tus') throw notFound(`video ${projectId}/${videoId} has no tus upload ${uploadId}`)
      const tus = readItem(item, now)
      await refuseClosed(tus)
      if (tus.session.status === 'completed') {
        if (options.offset !== undefined && options.offset !== tus.length) throw offsetMismatch(options.offset, tus.length)
        throw new AlreadyCompleted(tus)
      }
      if (tus.leaseUntil >= now) throw uploadLocked(uploadId, tus.leaseUntil, now)
      if (options.offset !== undefined && tus.offset !== options.offset) throw offsetMismatch(options.offset, tus.offset)
      // Changed between the update and the read (a lease just ended): try once more.
      return await lock(projectId, videoId, uploadId, options)
    }
  }

  /** Writes the upload's state under the lease (false when the lease is no longer this holder's). */
  async function save (tus: TusItem, owner: string, set: Record<string, unknown>, remove: string[] = []): Promise<boolean> {
    const names: Record<string, string> = {}
    const values: Record<string, unknown> = { ':owner': owner }
    const clauses = Object.entries(set).map(([name, value], index) => {
      names[`#s${index}`] = name
      values[`:s${index}`] = value
      return `#s${index} = :s${index}`
    })
    const removals = remove.map((name, index) => { names[`#r${index}`] = name; return `#r${index}` })
    try {
      await ddb.send(new UpdateCommand({
        TableName: table,
        Key: keyOf(tus.session.projectId, tus.session.videoId, tus.session.uploadId),
        UpdateExpression: `SET ${clauses.join(', ')}${removals.length > 0 ? ` REMOVE ${removals.join(', ')}` : ''}`,
        ConditionExpression: 'tusLeaseOwner = :owner',
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values
      }))
      return true
    } catch (error) {
      if (isConditionFailure(error)) return false
      throw error
    }
  }

  const deleteKey = async (key: string | undefined): Promise<void> => {
    if (key === undefined) return
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })).catch((error: unknown) => { recordBestEffortFailure('tus-object-cleanup', error, log) })
  }

  async function readHeld (tus: TusItem): Promise<Buffer> {
    if (tus.heldKey === undefined || tus.heldBytes === 0) return Buffer.alloc(0)
    const { Body } = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: tus.heldKey, Range: `bytes=0-${tus.heldBytes - 1}` }))
    const bytes = Buffer.from(await (Body as { transformToByteArray: () => Promise<Uint8Array> }).transformToByteArray())
    if (bytes.length !== tus.heldBytes) throw serviceUnavailable(`the held part of upload ${tus.session.uploadId} has ${bytes.length} bytes, not ${tus.heldBytes}`)
    return bytes
  }

  /** Leaves nothing of an upload in S3: its multipart upload and its held part (its assembled object only if asked). */
  async function discardBytes (tus: TusItem, { object = false }: { object?: boolean } = {}): Promise<void> {
    if (tus.s3UploadId !== undefined && !tus.assembled && tus.key !== undefined) {
      await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: tus.key, UploadId: tus.s3UploadId })).catch((error: unknown) => { recordBestEffortFailure('tus-multipart-abort', error, log) })
    }
    await deleteKey(tus.heldKey)
    if (object) await deleteKey(tus.key)
  }

  /** Marks an expired upload expired (unless someone holds it) and removes its bytes. */
  async function expire (tus: TusItem): Promise<void> {
    try {
      await ddb.send(new UpdateCommand({
        TableName: table,
        Key: keyOf(tus.session.projectId, tus.session.videoId, tus.session.uploadId),
        UpdateExpression: 'SET #status = :expired, updatedAt = :now',
        ConditionExpression: '#status IN (:pending, :uploading, :expired) AND expiresAtEpoch < :now_s AND (attribute_not_exists(tusLeaseUntil) OR tusLeaseUntil < :now_ms)',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':expired': 'expired', ':pending': 'pending', ':uploading': 'uploading', ':now': new Date().toISOString(), ':now_s': Math.floor(Date.now() / 1000), ':now_ms': Date.now() }
      }))
    } catch (error) {
      if (isConditionFailure(error)) return
      throw error
    }
    if (!tus.assembled) await discardBytes(tus)
  }

  /** The upload as HEAD reports it; an assembled upload whose commit did not finish is committed first. */
  async function status (projectId: string, videoId: string, uploadId: string): Promise<TusUploadState> {
    let tus = await read(projectId, videoId, uploadId)
    // A PATCH holds it (often the client's own cut connection, whose bytes are being saved): wait a little for it.
    for (const deadline = Date.now() + HEAD_WAIT_MS; tus.leaseUntil >= Date.now() && Date.now() < deadline;) {
      await sleep(100)
      tus = await read(projectId, videoId, uploadId)
    }
    await refuseClosed(tus)
    if (tus.assembled && tus.session.status !== 'completed') {
      try {
        const { tus: held, owner } = await lock(projectId, videoId, uploadId, {})
        return await finish(held, owner, undefined)
      } catch (error) {
        if (error instanceof AlreadyCompleted) return stateOf(error.tus)
        throw error
      }
    }
    return stateOf(tus)
  }

  /** Terminates an upload: its bytes go and the session reads aborted. A completed upload is a render version: 409. */
  async function terminate (projectId: string, videoId: string, uploadId: string): Promise<void> {
    let held: { tus: TusItem, owner: string }
    try {
      held = await lock(projectId, videoId, uploadId, {})
    } catch (error) {
      if (error instanceof AlreadyCompleted) throw new HttpProblem(409, 'Conflict', `upload ${uploadId} is complete and is render version ${error.tus.session.renderVersion ?? '?'}; delete that instead`)
      throw error
    }
    const { tus, owner } = held
    if (tus.assembled) {
      // Its commit may have landed without being recorded: then it is a render version, not an upload to drop.
      const render = await renders.committedBy(projectId, videoId, identityOf(tus))
      if (render !== undefined) {
        await recordCompleted(tus, render)
        throw new HttpProblem(409, 'Conflict', `upload ${uploadId} is complete and is render version ${render.version}; delete that instead`)
      }
    }
    if (!await save(tus, owner, { status: 'aborted', tusLeaseUntil: 0, updatedAt: new Date().toISOString() })) throw uploadLocked(uploadId, Date.now() + 1000)
    hashes.delete(uploadId)
    await discardBytes(tus, { object: tus.assembled })
  }

  const identityOf = (tus: TusItem): WriteIdentity => ({ token: `tus-${tus.session.uploadId}`, mayExist: true, since: Date.parse(tus.session.createdAt) })

  async function recordCompleted (tus: TusItem, render: RenderVersion): Promise<void> {
    await sessions.finish(tus.session, {
      status: 'completed',
      bytesUploaded: render.sizeBytes,
      renderVersion: render.version,
      attributes: { sha256: render.sha256, tusOffset: tus.length, tusLeaseUntil: 0, expiresAtEpoch: Math.floor(Date.now() / 1000) + COMPLETED_TTL_SECONDS }
    }).catch((error: unknown) => { recordBestEffortFailure('session-finish', error, log) })
  }

  /** SHA-256 of the assembled object, read back from S3 (when no replica saw every byte), and its size. */
  async function hashStored (key: string): Promise<{ sha256: string, size: number }> {
    const { Body } = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
    const hash = createHash('sha256')
    let size = 0
    for await (const chunk of Body as AsyncIterable<Buffer>) {
      hash.update(chunk)
      size += chunk.length
    }
    return { sha256: hash.digest('hex'), size }
  }

  /**
   * The last step, under the lease: the parts are assembled (if not yet), the object hashed (from the replica's
   * running hash, or read back), and committed as the next render version exactly once (token tus-{uploadId}).
   */
  async function finish (tus: TusItem, owner: string, sha256: string | undefined): Promise<TusUploadState> {
    const { projectId, videoId, uploadId } = tus.session
    const key = tus.key as string
    try {
      if (!tus.assembled) throw new Error(`upload ${uploadId} is not assembled`)
      let digest = sha256 ?? tus.sha256
      if (digest === undefined) {
        const stored = await hashStored(key)
        if (stored.size !== tus.length) throw new HttpProblem(500, 'Internal Server Error', `the assembled upload has ${stored.size} bytes, not ${tus.length}`)
        digest = stored.sha256
        await save(tus, owner, { sha256: digest })
      }
      const { render, recovered } = await renders.commit(identityOf(tus), {
        projectId,
        videoId,
        stored: { key, ext: tus.ext as string, sizeBytes: tus.length, sha256: digest, contentType: tus.contentType },
        details: { ...detailsOf(tus.metadata), uploadId }
      })
      if (!recovered) recordUploadBytes('render', render.sizeBytes)
      hashes.delete(uploadId)
      await recordCompleted(tus, render)
      return { ...stateOf(tus), offset: tus.length, renderVersion: render.version }
    } catch (error) {
      if (error instanceof HttpProblem && error.statusCode === 409 && !(error instanceof OutcomeUnknown)) {
        // The video was deleted while this upload was committed: nothing is kept.
        await sessions.finish(tus.session, { status: 'failed', lastError: error.message, attributes: { tusLeaseUntil: 0 } }).catch(() => {})
        await deleteKey(key)
        throw error
      }
      // Stays assembled: the next HEAD or PATCH completes it (the commit finds an earlier one by its token).
      await save(tus, owner, { tusLeaseUntil: 0 }).catch(() => false)
      throw error
    }
  }

  /** Sniffs the head of the upload and opens its S3 multipart upload at the key the render will have. */
  async function openMultipart (tus: TusItem, owner: string, head: Buffer): Promise<void> {
    const container = sniffVideoContainer(head.subarray(0, SNIFF_BYTES))
    if (container === undefined) throw new NotAVideo()
    const key = uploadObjectKey(tus.session.projectId, tus.session.videoId, tus.session.uploadId, container.ext)
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({
      Bucket: bucket, Key: key, ContentType: container.contentType, Metadata: { 'upload-ext': container.ext }, ...encryptionParams(config)
    }))
    Object.assign(tus, { key, ext: container.ext, contentType: container.contentType, s3UploadId: UploadId })
    if (!await save(tus, owner, { key, ext: container.ext, contentType: container.contentType, s3UploadId: UploadId })) throw new LeaseLost()
  }

  async function uploadPart (tus: TusItem, partNumber: number, body: Buffer): Promise<string> {
    const { ETag } = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: tus.key, UploadId: tus.s3UploadId, PartNumber: partNumber, Body: body, ContentLength: body.length }))
    if (ETag === undefined) throw new Error(`S3 answered part ${partNumber} without an ETag`)
    return ETag
  }

  /**
   * One PATCH (or the body of a creation-with-upload): appends at `offset` under the lease. Whole parts go to S3 as
   * they fill (config.queueSize at once) and, without a checksum, are recorded as they land, so a replica that dies
   * mid-PATCH loses at most the bytes after the last part; a client that leaves keeps everything that arrived.
   * With Upload-Checksum nothing is recorded until the whole body arrived and matched (460 otherwise).
   */
  async function append ({ projectId, videoId, uploadId, offset, body, checksum }: {
    projectId: string, videoId: string, uploadId: string, offset: number, body: TusBody, checksum?: { algorithm: ChecksumAlgorithm, digest: string }
  }): Promise<TusUploadState> {
    let held: { tus: TusItem, owner: string }
    try {
      held = await lock(projectId, videoId, uploadId, { offset, uploading: true })
    } catch (error) {
      if (error instanceof AlreadyCompleted) { body.stream.resume(); return stateOf(error.tus) }
      throw error
    }
    const { tus, owner } = held
    if (tus.assembled) { body.stream.resume(); return await finish(tus, owner, undefined) }
    if (body.declaredLength !== undefined && offset + body.declaredLength > tus.length) {
      await save(tus, owner, { tusLeaseUntil: 0 }).catch(() => false)
      throw payloadTooLarge(`the body would take the upload to ${offset + body.declaredLength} bytes, past its Upload-Length of ${tus.length}`)
    }

    const partSize = tus.partSize
    const firstNewPart = tus.parts.length + 1
    const cached = hashes.get(uploadId)
    const hash = offset === 0 ? createHash('sha256') : cached?.offset === offset ? cached.hash.copy() : undefined
    const check = checksum === undefined ? undefined : createHash(checksum.algorithm)
    let pending: Buffer[] = []
    let pendingBytes = 0
    let received = 0
    let nextPart = firstNewPart
    const landed = new Map<number, string>()
    const inFlight = new Set<Promise<void>>()
    let partFailure: unknown
    let leaseLost = false
    let leaseUntil = Date.now() + leaseMs
    let recordedParts = tus.parts.length
    let gone = false
    let sniffed = false
    const onAbort = (): void => { gone = true; body.stream.destroy() }
    body.signal.addEventListener('abort', onAbort, { once: true })
    if (body.signal.aborted) onAbort()

    /** The parts recorded so far plus the new ones that landed without a gap. */
    const contiguousParts = (): string[] => {
      const parts = [...tus.parts]
      for (let number = firstNewPart; landed.has(number); number++) parts.push(landed.get(number) as string)
      return parts
    }

    // Renews the lease about once a second, with the progress any replica reports and, without a checksum, the parts.
    let ticking = false
    const tick = async (): Promise<void> => {
      if (ticking) return
      ticking = true
      try {
        const until = Date.now() + leaseMs
        const set: Record<string, unknown> = { tusLeaseUntil: until, bytesUploaded: offset + received, updatedAt: new Date().toISOString() }
        const remove: string[] = []
        const parts = contiguousParts()
        if (check === undefined && parts.length > recordedParts) {
          Object.assign(set, { tusParts: parts, tusOffset: parts.length * partSize, tusHeldBytes: 0 })
          remove.push('tusHeldKey')
        }
        if (await save(tus, owner, set, remove)) {
          leaseUntil = until
          recordedParts = Math.max(recordedParts, (set.tusParts as string[] | undefined)?.length ?? 0)
        } else {
          leaseLost = true
          body.stream.destroy()
        }
      } catch (error) {
        recordBestEffortFailure('tus-lease', error, log)
      } finally {
        ticking = false
      }
    }
    const timer = setInterval(() => { void tick() }, Math.min(PROGRESS_MS, Math.floor(leaseMs / 3)))
    timer.unref()

    const sendPart = async (bytes: Buffer): Promise<void> => {
      if (tus.s3UploadId === undefined) await openMultipart(tus, owner, bytes)
      while (inFlight.size >= config.queueSize) await Promise.race(inFlight)
      if (partFailure !== undefined) throw partFailure
      if (leaseLost || Date.now() > leaseUntil) throw new LeaseLost()
      const number = nextPart++
      const sending = uploadPart(tus, number, bytes).then((etag) => { landed.set(number, etag) }, (error: unknown) => { partFailure ??= error })
        .finally(() => { inFlight.delete(sending) })
      inFlight.add(sending)
    }

    let failure: unknown
    try {
      if (tus.heldBytes > 0) {
        const bytes = await readHeld(tus)
        pending.push(bytes)
        pendingBytes += bytes.length
      }
      for await (const chunk of body.stream as AsyncIterable<Buffer>) {
        if (offset + received + chunk.length > tus.length) throw payloadTooLarge(`the body takes the upload past its Upload-Length of ${tus.length}`)
        hash?.update(chunk)
        check?.update(chunk)
        pending.push(chunk)
        pendingBytes += chunk.length
        received += chunk.length
        // Refuse what is no video as soon as its head is here (once: the head is all it looks at).
        if (!sniffed && tus.s3UploadId === undefined && pendingBytes >= Math.min(SNIFF_BYTES, tus.length)) {
          if (sniffVideoContainer(Buffer.concat(pending).subarray(0, SNIFF_BYTES)) === undefined) throw new NotAVideo()
          sniffed = true
        }
        while (pendingBytes >= partSize) {
          const joined = pending.length === 1 ? pending[0] : Buffer.concat(pending)
          const part = joined.subarray(0, partSize)
          const rest = joined.length > partSize ? Buffer.from(joined.subarray(partSize)) : undefined
          pending = rest === undefined ? [] : [rest]
          pendingBytes = rest?.length ?? 0
          await sendPart(part)
        }
      }
    } catch (error) {
      const code = (error as { code?: string }).code
      failure = gone || code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' ? new ClientGone() : error
    } finally {
      body.signal.removeEventListener('abort', onAbort)
    }
    if (!gone && body.signal.aborted) { gone = true; failure ??= new ClientGone() }

    try {
      await Promise.allSettled([...inFlight])
      clearInterval(timer)
      while (ticking) await sleep(5)
      if (failure instanceof NotAVideo) {
        await save(tus, owner, { status: 'failed', lastError: failure.message, tusLeaseUntil: 0 }).catch(() => false)
        await discardBytes(tus)
        throw unsupportedMediaType(failure.message)
      }
      if (leaseLost) throw new LeaseLost()
      const parts = contiguousParts()
      const allLanded = partFailure === undefined && parts.length === nextPart - 1
      const end = offset + received
      // With a checksum, only a whole body that matches counts: anything else leaves the upload as it was.
      if (check !== undefined) {
        const bodyComplete = failure === undefined && partFailure === undefined
        if (!bodyComplete || check.digest('base64') !== checksum?.digest) {
          await save(tus, owner, { tusLeaseUntil: 0, bytesUploaded: offset }).catch(() => false)
          if (bodyComplete) throw checksumMismatch(checksum?.algorithm ?? '')
          throw failure ?? partFailure
        }
      }
      if (failure !== undefined && !(failure instanceof ClientGone)) {
        // A refusal of ours (413): keep what arrived before it, as for a client that left.
        if (!(failure instanceof HttpProblem && failure.statusCode < 500)) throw failure
      }
      if (!allLanded) {
        // Some part did not land: only the parts up to the first gap are kept; the client resumes from there.
        hashes.delete(uploadId)
        const newParts = parts.length - tus.parts.length
        const set: Record<string, unknown> = { tusLeaseUntil: 0, tusParts: parts, updatedAt: new Date().toISOString() }
        if (newParts > 0) Object.assign(set, { tusOffset: parts.length * partSize, tusHeldBytes: 0, bytesUploaded: parts.length * partSize })
        else set.bytesUploaded = tus.offset
        await save(tus, owner, set, newParts > 0 ? ['tusHeldKey'] : [])
        if (newParts > 0) await deleteKey(tus.heldKey)
        throw partFailure
      }
      const remainder = pending.length === 1 ? pending[0] : Buffer.concat(pending)
      if (end === tus.length) {
        // The last byte is here: the remainder is the last part (S3 takes a short last part), then assembly.
        if (remainder.length > 0 || parts.length === 0) {
          if (tus.s3UploadId === undefined) await openMultipart(tus, owner, remainder)
          parts.push(await uploadPart(tus, parts.length + 1, remainder))
        }
        await s3.send(new CompleteMultipartUploadCommand({
          Bucket: bucket, Key: tus.key, UploadId: tus.s3UploadId,
          MultipartUpload: { Parts: parts.map((etag, index) => ({ PartNumber: index + 1, ETag: etag })) }
        }))
        const sha256 = hash?.digest('hex')
        tus.assembled = true
        tus.offset = end
        if (!await save(tus, owner, { tusAssembled: true, tusOffset: end, tusParts: parts, tusHeldBytes: 0, bytesUploaded: end, ...(sha256 === undefined ? {} : { sha256 }) }, ['tusHeldKey'])) throw new LeaseLost()
        await deleteKey(tus.heldKey)
        return await finish(tus, owner, sha256)
      }
      // Not the end: what does not fill a part waits in a new held object until the next PATCH.
      let heldKey: string | undefined
      if (remainder.length > 0) {
        heldKey = `videos/${projectId}/${videoId}/uploads/${uploadId}/tus-incomplete-part-${randomUUID()}`
        await s3.send(new PutObjectCommand({ Bucket: bucket, Key: heldKey, Body: remainder, ContentLength: remainder.length, ContentType: 'application/octet-stream', ...encryptionParams(config) }))
      }
      const saved = await save(tus, owner, {
        tusOffset: end, tusParts: parts, tusHeldBytes: remainder.length, bytesUploaded: end, tusLeaseUntil: 0, updatedAt: new Date().toISOString(),
        ...(heldKey === undefined ? {} : { tusHeldKey: heldKey })
      }, heldKey === undefined ? ['tusHeldKey'] : [])
      if (!saved) { await deleteKey(heldKey); throw new LeaseLost() }
      if (tus.heldKey !== undefined && tus.heldKey !== heldKey) await deleteKey(tus.heldKey)
      if (hash !== undefined) hashes.set(uploadId, { offset: end, hash })
      else hashes.delete(uploadId)
      if (failure !== undefined) throw failure
      return { ...stateOf(tus), offset: end }
    } catch (error) {
      clearInterval(timer)
      if (error instanceof LeaseLost) {
        hashes.delete(uploadId)
        throw uploadLocked(uploadId, Date.now() + 1000)
      }
      if (!(error instanceof HttpProblem && error.statusCode < 500) && !(error instanceof ClientGone)) {
        hashes.delete(uploadId)
        await save(tus, owner, { tusLeaseUntil: 0 }).catch(() => false)
      }
      throw error
    }
  }

  return { create, status, append, terminate, read: async (projectId: string, videoId: string, uploadId: string) => stateOf(await read(projectId, videoId, uploadId)) }
}

/** The upload is already a render version (a repeated last PATCH, a HEAD after completion). */
class AlreadyCompleted extends Error {
  constructor (readonly tus: TusItem) { super('completed') }
}
class NotAVideo extends Error {
  constructor () { super('the upload is not a recognised video container (MP4, MOV, WebM, MKV or AVI)') }
}
class LeaseLost extends Error {
  constructor () { super('the lease on this upload was lost') }
}
export { ClientGone as TusClientGone }

export type TusUploads = ReturnType<typeof createTusUploads>
