// One tus PATCH (or the body of a creation-with-upload): bytes appended at the upload's offset under its lease. Parts
// are cut at fixed offsets (n × part size) and written from reused part buffers (PartWriter) while the body streams
// in, hashed once on the way; bytes below a whole part wait in a held object until the next PATCH.
import { createHash, randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { CompleteMultipartUploadCommand, CreateMultipartUploadCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { HttpProblem, payloadTooLarge, unsupportedMediaType } from '../../errors.js'
import { recordBestEffortFailure } from '../../http/metrics.js'
import { encryptionParams, uploadObjectKey } from '../../renders/store.js'
import { SNIFF_BYTES, sniffVideoContainer } from '../../renders/container.js'
import { PartWriter } from '../part-writer.js'
import { checksumMismatch, uploadLocked, type ChecksumAlgorithm } from './protocol.js'
import { AlreadyCompleted, LeaseLost, NotAVideo, TusClientGone, stateOf, type TusBody, type TusContext, type TusItem, type TusUploadState } from './item.js'
import { deleteKey, discardBytes, lock, readHeld, release, save } from './lease.js'
import { finish } from './commit.js'

const PROGRESS_MS = 1000

/** Sniffs the head of the upload and opens its S3 multipart upload at the key the render will have. */
async function openMultipart (ctx: TusContext, tus: TusItem, owner: string, head: Buffer): Promise<void> {
  const container = sniffVideoContainer(head.subarray(0, SNIFF_BYTES))
  if (container === undefined) throw new NotAVideo()
  const key = uploadObjectKey(tus.session.projectId, tus.session.videoId, tus.session.uploadId, container.ext)
  const { UploadId } = await ctx.aws.s3.send(new CreateMultipartUploadCommand({
    Bucket: ctx.config.videoBucket, Key: key, ContentType: container.contentType, Metadata: { 'upload-ext': container.ext }, ...encryptionParams(ctx.config)
  }))
  Object.assign(tus, { key, ext: container.ext, contentType: container.contentType, s3UploadId: UploadId })
  if (!await save(ctx, tus, owner, { key, ext: container.ext, contentType: container.contentType, s3UploadId: UploadId })) throw new LeaseLost()
}

/**
 * Appends at `offset` under the lease. Whole parts go to S3 as they fill (config.queueSize at once) and, without a
 * checksum, are recorded as they land, so a replica that dies mid-PATCH loses at most the bytes after the last part;
 * a client that leaves keeps everything that arrived. With Upload-Checksum nothing is recorded until the whole body
 * arrived and matched (460 otherwise).
 */
export async function append (ctx: TusContext, { projectId, videoId, uploadId, offset, body, checksum }: {
  projectId: string, videoId: string, uploadId: string, offset: number, body: TusBody, checksum?: { algorithm: ChecksumAlgorithm, digest: string }
}): Promise<TusUploadState> {
  let held: { tus: TusItem, owner: string }
  try {
    held = await lock(ctx, projectId, videoId, uploadId, { offset, uploading: true })
  } catch (error) {
    if (error instanceof AlreadyCompleted) { body.stream.resume(); return stateOf(error.tus) }
    throw error
  }
  const { tus, owner } = held
  if (tus.assembled) { body.stream.resume(); return await finish(ctx, tus, owner, undefined) }
  if (body.declaredLength !== undefined && offset + body.declaredLength > tus.length) {
    await release(ctx, tus, owner)
    throw payloadTooLarge(`the body would take the upload to ${offset + body.declaredLength} bytes, past its Upload-Length of ${tus.length}`)
  }

  const { hashes, config } = ctx
  const leaseMs = ctx.sessions.leaseMs
  const firstNewPart = tus.parts.length + 1
  const cached = hashes.get(uploadId)
  const hash = offset === 0 ? createHash('sha256') : cached?.offset === offset ? cached.hash.copy() : undefined
  const check = checksum === undefined ? undefined : createHash(checksum.algorithm)
  let received = 0
  let leaseLost = false
  let leaseUntil = Date.now() + leaseMs
  let recordedParts = tus.parts.length
  let gone = false
  let sniffed = tus.s3UploadId !== undefined
  let opening: Promise<void> | undefined
  const writer = new PartWriter({
    s3: ctx.aws.s3,
    bucket: config.videoBucket,
    partSize: tus.partSize,
    queueSize: config.queueSize,
    firstPartNumber: firstNewPart,
    beforePart: () => { if (leaseLost || Date.now() > leaseUntil) throw new LeaseLost() },
    target: async (first) => {
      if (tus.s3UploadId === undefined) await (opening ??= openMultipart(ctx, tus, owner, first))
      return { key: tus.key as string, uploadId: tus.s3UploadId as string }
    }
  })
  const onAbort = (): void => { gone = true; body.stream.destroy() }
  body.signal.addEventListener('abort', onAbort, { once: true })
  if (body.signal.aborted) onAbort()

  /** The parts recorded so far plus the new ones that landed without a gap. */
  const contiguousParts = (): string[] => [...tus.parts, ...writer.contiguous(firstNewPart)]

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
        Object.assign(set, { tusParts: parts, tusOffset: parts.length * tus.partSize, tusHeldBytes: 0 })
        remove.push('tusHeldKey')
      }
      if (await save(ctx, tus, owner, set, remove)) {
        leaseUntil = until
        recordedParts = Math.max(recordedParts, (set.tusParts as string[] | undefined)?.length ?? 0)
      } else {
        leaseLost = true
        body.stream.destroy()
      }
    } catch (error) {
      recordBestEffortFailure('tus-lease', error, ctx.log)
    } finally {
      ticking = false
    }
  }
  const timer = setInterval(() => { void tick() }, Math.min(PROGRESS_MS, Math.floor(leaseMs / 3)))
  timer.unref()

  /** Refuses what is no video as soon as its head is here (once: the head is all it looks at). */
  const sniff = (): void => {
    if (sniffed || !writer.unsent || offset + received < Math.min(SNIFF_BYTES, tus.length)) return
    if (sniffVideoContainer(writer.pending().subarray(0, SNIFF_BYTES)) === undefined) throw new NotAVideo()
    sniffed = true
  }

  let failure: unknown
  try {
    if (tus.heldBytes > 0) await writer.write(await readHeld(ctx, tus))
    sniff()
    for await (const chunk of body.stream as AsyncIterable<Buffer>) {
      if (offset + received + chunk.length > tus.length) throw payloadTooLarge(`the body takes the upload past its Upload-Length of ${tus.length}`)
      hash?.update(chunk)
      check?.update(chunk)
      received += chunk.length
      await writer.write(chunk)
      sniff()
    }
  } catch (error) {
    const code = (error as { code?: string }).code
    failure = gone || code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' ? new TusClientGone() : error
  } finally {
    body.signal.removeEventListener('abort', onAbort)
  }
  if (!gone && body.signal.aborted) { gone = true; failure ??= new TusClientGone() }

  try {
    await writer.idle()
    clearInterval(timer)
    while (ticking) await sleep(5)
    if (failure instanceof NotAVideo) {
      await release(ctx, tus, owner, { status: 'failed', lastError: failure.message })
      await discardBytes(ctx, tus)
      throw unsupportedMediaType(failure.message)
    }
    if (leaseLost || failure instanceof LeaseLost) throw new LeaseLost()
    const partFailure = writer.partFailure
    const parts = contiguousParts()
    const allLanded = !writer.failed && parts.length === writer.nextPart - 1
    const end = offset + received
    // With a checksum, only a whole body that matches counts: anything else leaves the upload as it was.
    if (check !== undefined) {
      const bodyComplete = failure === undefined && !writer.failed
      if (!bodyComplete || check.digest('base64') !== checksum?.digest) {
        await release(ctx, tus, owner, { bytesUploaded: offset })
        if (bodyComplete) throw checksumMismatch(checksum?.algorithm ?? '')
        throw failure ?? partFailure
      }
    }
    // A refusal of ours (413) keeps what arrived before it, as for a client that left; a part that failed keeps the
    // parts before it (below); anything else is thrown.
    const kept = failure instanceof TusClientGone || (failure instanceof HttpProblem && failure.statusCode < 500) || (writer.failed && failure === partFailure)
    if (failure !== undefined && !kept) throw failure
    if (!allLanded) {
      // Some part did not land: only the parts up to the first gap are kept; the client resumes from there.
      hashes.delete(uploadId)
      const newParts = parts.length - tus.parts.length
      const set: Record<string, unknown> = { tusLeaseUntil: 0, tusParts: parts, updatedAt: new Date().toISOString() }
      if (newParts > 0) Object.assign(set, { tusOffset: parts.length * tus.partSize, tusHeldBytes: 0, bytesUploaded: parts.length * tus.partSize })
      else set.bytesUploaded = tus.offset
      await save(ctx, tus, owner, set, newParts > 0 ? ['tusHeldKey'] : [])
      if (newParts > 0) await deleteKey(ctx, tus.heldKey)
      throw partFailure
    }
    if (end === tus.length) {
      // The last byte is here: what is pending is the last part (S3 takes a short last part), then assembly.
      await writer.flush()
      await writer.settle()
      const all = contiguousParts()
      await ctx.aws.s3Assemble.send(new CompleteMultipartUploadCommand({
        Bucket: config.videoBucket, Key: tus.key, UploadId: tus.s3UploadId,
        MultipartUpload: { Parts: all.map((etag, index) => ({ PartNumber: index + 1, ETag: etag })) }
      }))
      const sha256 = hash?.digest('hex')
      tus.assembled = true
      tus.offset = end
      if (!await save(ctx, tus, owner, { tusAssembled: true, tusOffset: end, tusParts: all, tusHeldBytes: 0, bytesUploaded: end, ...(sha256 === undefined ? {} : { sha256 }) }, ['tusHeldKey'])) throw new LeaseLost()
      await deleteKey(ctx, tus.heldKey)
      return await finish(ctx, tus, owner, sha256)
    }
    // Not the end: what does not fill a part waits in a new held object until the next PATCH.
    const remainder = writer.pending()
    let heldKey: string | undefined
    if (remainder.length > 0) {
      heldKey = `videos/${projectId}/${videoId}/uploads/${uploadId}/tus-incomplete-part-${randomUUID()}`
      await ctx.aws.s3.send(new PutObjectCommand({ Bucket: config.videoBucket, Key: heldKey, Body: remainder, ContentLength: remainder.length, ContentType: 'application/octet-stream', ...encryptionParams(config) }))
    }
    const saved = await save(ctx, tus, owner, {
      tusOffset: end, tusParts: parts, tusHeldBytes: remainder.length, bytesUploaded: end, tusLeaseUntil: 0, updatedAt: new Date().toISOString(),
      ...(heldKey === undefined ? {} : { tusHeldKey: heldKey })
    }, heldKey === undefined ? ['tusHeldKey'] : [])
    if (!saved) { await deleteKey(ctx, heldKey); throw new LeaseLost() }
    if (tus.heldKey !== undefined && tus.heldKey !== heldKey) await deleteKey(ctx, tus.heldKey)
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
    if (!(error instanceof HttpProblem && error.statusCode < 500) && !(error instanceof TusClientGone)) {
      hashes.delete(uploadId)
      await release(ctx, tus, owner)
    }
    throw error
  }
}
