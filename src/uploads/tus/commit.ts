// The last step of a tus upload: its assembled object becomes the next render version, exactly once (commit token
// tus-{uploadId}), with the SHA-256 the receiving replica computed or, where none saw every byte, one read back.
import { createHash } from 'node:crypto'
import { GetObjectCommand } from '@aws-sdk/client-s3'
import { HttpProblem } from '../../errors.js'
import { recordBestEffortFailure, recordUploadBytes } from '../../http/metrics.js'
import type { RenderVersion } from '../../renders/store.js'
import { OutcomeUnknown, type WriteIdentity } from '../../versions/store.js'
import { detailsOf } from './protocol.js'
import { stateOf, type TusContext, type TusItem, type TusUploadState } from './item.js'
import { deleteKey, release, save } from './lease.js'

const COMPLETED_TTL_SECONDS = 7 * 24 * 3600

export const identityOf = (tus: TusItem): WriteIdentity => ({ token: `tus-${tus.session.uploadId}`, mayExist: true, since: Date.parse(tus.session.createdAt) })

/** The session reads completed with its render version (best effort: the version is what counts). */
export async function recordCompleted (ctx: TusContext, tus: TusItem, render: RenderVersion): Promise<void> {
  await ctx.sessions.finish(tus.session, {
    status: 'completed',
    bytesUploaded: render.sizeBytes,
    renderVersion: render.version,
    attributes: { sha256: render.sha256, tusOffset: tus.length, tusLeaseUntil: 0, expiresAtEpoch: Math.floor(Date.now() / 1000) + COMPLETED_TTL_SECONDS }
  }).catch((error: unknown) => { recordBestEffortFailure('session-finish', error, ctx.log) })
}

/** SHA-256 of the assembled object, read back from S3 (when no replica saw every byte), and its size. */
async function hashStored (ctx: TusContext, key: string): Promise<{ sha256: string, size: number }> {
  const { Body } = await ctx.aws.s3.send(new GetObjectCommand({ Bucket: ctx.config.videoBucket, Key: key }))
  const hash = createHash('sha256')
  let size = 0
  for await (const chunk of Body as AsyncIterable<Buffer>) {
    hash.update(chunk)
    size += chunk.length
  }
  return { sha256: hash.digest('hex'), size }
}

/**
 * Under the lease: the assembled object is hashed (from the replica's running hash, or read back) and committed as
 * the next render version exactly once.
 */
export async function finish (ctx: TusContext, tus: TusItem, owner: string, sha256: string | undefined): Promise<TusUploadState> {
  const { projectId, videoId, uploadId } = tus.session
  const key = tus.key as string
  try {
    if (!tus.assembled) throw new Error(`upload ${uploadId} is not assembled`)
    let digest = sha256 ?? tus.sha256
    if (digest === undefined) {
      const stored = await hashStored(ctx, key)
      if (stored.size !== tus.length) throw new HttpProblem(500, 'Internal Server Error', `the assembled upload has ${stored.size} bytes, not ${tus.length}`)
      digest = stored.sha256
      await save(ctx, tus, owner, { sha256: digest })
    }
    const { render, recovered } = await ctx.renders.commit(identityOf(tus), {
      projectId,
      videoId,
      stored: { key, ext: tus.ext as string, sizeBytes: tus.length, sha256: digest, contentType: tus.contentType },
      details: { ...detailsOf(tus.metadata), uploadId }
    })
    if (!recovered) recordUploadBytes('render', render.sizeBytes)
    ctx.hashes.delete(uploadId)
    await recordCompleted(ctx, tus, render)
    return { ...stateOf(tus), offset: tus.length, renderVersion: render.version }
  } catch (error) {
    if (error instanceof HttpProblem && error.statusCode === 409 && !(error instanceof OutcomeUnknown)) {
      // The video was deleted while this upload was committed: nothing is kept.
      await ctx.sessions.finish(tus.session, { status: 'failed', lastError: error.message, attributes: { tusLeaseUntil: 0 } })
        .catch((cleanup: unknown) => { recordBestEffortFailure('session-finish', cleanup, ctx.log) })
      await deleteKey(ctx, key)
      throw error
    }
    // Stays assembled: the next HEAD or PATCH completes it (the commit finds an earlier one by its token).
    await release(ctx, tus, owner)
    throw error
  }
}
