// Ending a direct upload: complete (verify, then commit the render version), expire, abort.
import { AbortMultipartUploadCommand, DeleteObjectCommand } from '@aws-sdk/client-s3'
import { HttpProblem, badRequest, conflict } from '../../errors.js'
import { recordBestEffortFailure, recordUploadBytes } from '../../http/metrics.js'
import { uploadObjectKey, type RenderVersion } from '../../renders/store.js'
import { OutcomeUnknown } from '../../versions/store.js'
import { notImplemented } from '../parts.js'
import { SessionBusy, type UploadSession } from '../sessions.js'
import {
  RejectedObject, completeByOf, completingNow, findDirect, gone, releaseSlots, toUploadState, uploadIdentity,
  type DirectContext, type ReportedPart, type UploadRef, type UploadState
} from './common.js'
import { assemble, checkAgainstStored } from './stored-parts.js'
import { checkedParts, verify } from './verify.js'

const COMPLETED_TTL_SECONDS = 7 * 24 * 3600

export type Completion = { render: RenderVersion, created: boolean } | { accepted: UploadState }

export interface CompleteRequest extends UploadRef { parts?: ReportedPart[], sha256?: string }

/**
 * Verifies the uploaded object and makes it the next render version: `render` once done (created: false when an
 * earlier complete did it), or `accepted` (answer 202) when the work takes longer than COMPLETE_WAIT_MS or another
 * request is doing it right now; the work goes on and GET of the session tells when it is done. Complete is
 * idempotent by itself: its commit token is the session's, so a repeat, or a takeover of a session whose replica
 * died, never makes a second version. An expired session is 410; an aborted or failed one 409.
 */
export async function complete (ctx: DirectContext, request: CompleteRequest): Promise<Completion> {
  const { uploadId, parts, sha256 } = request
  const session = await findDirect(ctx, request)
  if (session.status === 'completed') return { render: await completedRender(ctx, session), created: false }
  if (session.status === 'expired') {
    // Past its expiry, but a completion that began in time may still be running, or may have committed without
    // recording it: a multipart object is assembled at the key its render names, so nothing is discarded then.
    if (completingNow(session)) return { accepted: { ...toUploadState(session), status: 'uploading' } }
    const committed = await ownCommit(ctx, session)
    if (committed !== undefined) return { render: committed, created: false }
    if (await expire(ctx, session)) throw gone(`upload ${uploadId} expired at ${completeByOf(session)}; open a new one`)
    return await complete(ctx, request)
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
  const partsChecked = session.method === 'MULTIPART' && session.assembled !== true && await checkAgainstStored(ctx, session, reported)

  let begun: UploadSession
  try {
    begun = (await ctx.sessions.begin(session, { expect: ['pending'], ...(given === undefined ? {} : { attributes: { sha256: given } }) })).session
  } catch (error) {
    const now = await ctx.sessions.get(request.projectId, request.videoId, uploadId)
    if (now?.status === 'completed') return { render: await completedRender(ctx, now), created: false }
    if (error instanceof SessionBusy && now !== undefined) return { accepted: toUploadState(now) }
    throw error
  }
  return await waitAWhile(ctx, begun, finishUpload(ctx, begun, reported, partsChecked))
}

/** The work's answer when it is done within COMPLETE_WAIT_MS; else `accepted`, and the work goes on. */
async function waitAWhile (ctx: DirectContext, begun: UploadSession, work: Promise<{ render: RenderVersion, created: boolean }>): Promise<Completion> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<undefined>((resolve) => { timer = setTimeout(() => { resolve(undefined) }, ctx.config.completeWaitMs) })
  try {
    const done = await Promise.race([work, late])
    if (done !== undefined) return done
  } finally {
    clearTimeout(timer)
  }
  // Still verifying: the work goes on, the client polls the session. What the client did wrong is recorded on the
  // session (lastError); a storage failure nobody waits for any more is logged and counted as well.
  work.catch((error: unknown) => {
    if (!(error instanceof HttpProblem && error.statusCode < 500)) recordBestEffortFailure('complete-in-background', error, ctx.log)
  })
  return { accepted: toUploadState(begun) }
}

/** The session's object becomes a render version, or the session says why not (rejected: failed; else pending). */
async function finishUpload (ctx: DirectContext, session: UploadSession, reported: ReportedPart[], partsChecked = false): Promise<{ render: RenderVersion, created: boolean }> {
  const { renders, sessions, log } = ctx
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
      if (session.method === 'MULTIPART') session = await assemble(ctx, session, reported)
      const { sha256, etag, container } = await verify(ctx, session, reported, partsChecked)
      // The bytes decide the container, not the declared type (as for proxied uploads): MP4 bytes declared
      // video/webm are stored as .mp4 with video/mp4 (a multipart object assembled under the declared extension is
      // copied once to the right one).
      finalKey = uploadObjectKey(projectId, videoId, uploadId, container.ext)
      if (session.key !== finalKey) {
        // A single PUT's URL may still be live: what is copied is what was checked (the ETag guard).
        await copyVerified(ctx, session.key as string, finalKey, { contentType: container.contentType, metadata: { 'project-id': projectId, 'video-id': videoId, 'upload-id': uploadId, sha256 }, ifMatch: etag })
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
    await recordCompleted(ctx, session, render)
    return { render, created: true }
  } catch (error) {
    const mayLand = committing && error instanceof OutcomeUnknown
    if (leaseLost) throw error
    if (copied && !mayLand && await renders.committedBy(projectId, videoId, identity).then((found) => found === undefined, () => false)) {
      await renders.deleteObject(finalKey)
    }
    if (error instanceof RejectedObject) {
      await discardStaged(ctx, session)
      await sessions.finish(session, { status: 'failed', lastError: error.message, attributes: { leaseUntil: 0 } }).then(() => { releaseSlots(ctx, session) }, (cleanup: unknown) => { recordBestEffortFailure('session-finish', cleanup, log) })
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
async function copyVerified (ctx: DirectContext, from: string, to: string, options: { contentType: string, metadata: Record<string, string>, ifMatch?: string }): Promise<void> {
  try {
    await ctx.renders.copyObject(from, to, options)
  } catch (error) {
    if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 412) {
      throw conflict('the uploaded object changed while it was being verified (it was PUT again); complete again to verify what is there now')
    }
    throw error
  }
}

async function completedRender (ctx: DirectContext, session: UploadSession): Promise<RenderVersion> {
  const render = await ctx.renders.get(session.projectId, session.videoId, session.renderVersion as number)
  if (render === undefined) throw conflict(`upload ${session.uploadId} completed, but its render version was deleted since`)
  return render
}

/**
 * The render a completion of this session committed although the session does not say so (its replica died, or
 * the session update failed after the commit); the session is brought up to date. Sessions never begun have none.
 */
async function ownCommit (ctx: DirectContext, session: UploadSession): Promise<RenderVersion | undefined> {
  if (session.leaseOwner === undefined) return undefined
  const render = await ctx.renders.committedBy(session.projectId, session.videoId, uploadIdentity(session))
  if (render !== undefined) await recordCompleted(ctx, session, render)
  return render
}

async function recordCompleted (ctx: DirectContext, session: UploadSession, render: RenderVersion): Promise<void> {
  await ctx.sessions.finish(session, {
    status: 'completed',
    bytesUploaded: render.sizeBytes,
    renderVersion: render.version,
    attributes: { sha256: render.sha256, expiresAtEpoch: Math.floor(Date.now() / 1000) + COMPLETED_TTL_SECONDS }
  }).catch((error: unknown) => { recordBestEffortFailure('session-finish', error, ctx.log) })
  releaseSlots(ctx, session)
}

/**
 * Records an expired session as expired, then leaves nothing of it in S3. False when the session changed under
 * us meanwhile (a completion took it): then nothing is discarded.
 */
async function expire (ctx: DirectContext, session: UploadSession): Promise<boolean> {
  try {
    await ctx.sessions.finish(session, { status: 'expired', expectStatus: ['pending', 'uploading', 'expired'] })
  } catch (error) {
    if (error instanceof HttpProblem && error.statusCode === 409) return false
    throw error
  }
  releaseSlots(ctx, session)
  await discardStaged(ctx, session)
  return true
}

/** Aborts an open session: its parts and staged object go, the session reads aborted. Idempotent. */
export async function abort (ctx: DirectContext, ref: UploadRef): Promise<void> {
  const session = await findDirect(ctx, ref)
  const { uploadId } = ref
  if (session.status === 'aborted') return
  if (session.status === 'completed') throw conflict(`upload ${uploadId} is completed; delete its render version instead`)
  if (session.status === 'uploading' || (session.status === 'expired' && completingNow(session))) throw conflict(`upload ${uploadId} is being completed`)
  // A completion that committed without recording it made the object a render's: that is no open session to abort.
  if (await ownCommit(ctx, session) !== undefined) throw conflict(`upload ${uploadId} is completed; delete its render version instead`)
  await discardStaged(ctx, session)
  await ctx.sessions.finish(session, { status: 'aborted', expectStatus: ['pending', 'failed'] })
  releaseSlots(ctx, session)
}

/** Leaves nothing of a session in S3; best effort (a lifecycle rule drops stray parts and staging objects later). */
async function discardStaged (ctx: DirectContext, session: UploadSession): Promise<void> {
  const { s3, bucket, log } = ctx
  if (session.method === 'MULTIPART' && session.assembled !== true) {
    // The embedded S3 has no AbortMultipartUpload (405): nothing to record there; real S3 drops the parts.
    await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: session.key as string, UploadId: session.s3UploadId as string })).catch((error: unknown) => {
      if (!notImplemented(error)) recordBestEffortFailure('multipart-abort', error, log)
    })
  }
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: session.key as string })).catch((error: unknown) => { recordBestEffortFailure('staged-delete', error, log) })
}
