// What S3 holds of a multipart session: its parts (for GET of the session and for complete's check), and its
// assembly into one object, once per session.
import { access } from 'node:fs/promises'
import { join } from 'node:path'
import { CompleteMultipartUploadCommand, HeadObjectCommand } from '@aws-sdk/client-s3'
import { badRequest, conflict, isDependencyUnavailable, notFound } from '../../errors.js'
import type { PartListing } from '../parts.js'
import type { UploadSession } from '../sessions.js'
import { normalEtag, toUploadState, type DirectContext, type ReportedPart, type UploadRef, type UploadState } from './common.js'

/** A session as the API shows it (proxied uploads too: their state is readable here as well). */
export async function stateOf (ctx: DirectContext, { projectId, videoId, uploadId }: UploadRef): Promise<UploadState> {
  const session = await ctx.sessions.get(projectId, videoId, uploadId)
  if (session === undefined) throw notFound(`upload ${uploadId} of video ${projectId}/${videoId} does not exist`)
  const answer = toUploadState(session)
  if (session.mode === 'direct' && session.method === 'MULTIPART' && session.status === 'pending' && session.assembled !== true) {
    const listing = await listParts(ctx, session)
    answer.partsSource = listing.source
    if (listing.parts !== undefined) answer.parts = listing.parts
  }
  return answer
}

/** The parts S3 holds for a multipart session (ListParts, or the embedded S3's part store). */
async function listParts (ctx: DirectContext, session: UploadSession): Promise<PartListing & { gone?: boolean }> {
  try {
    return await ctx.partLister.list({ key: session.key as string, s3UploadId: session.s3UploadId as string, partSize: session.partSize as number, totalBytes: session.totalBytes as number })
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
export async function checkAgainstStored (ctx: DirectContext, session: UploadSession, reported: ReportedPart[]): Promise<boolean> {
  const listing = await listParts(ctx, session)
  if (listing.parts === undefined || listing.gone === true) return false
  if (listing.source === 'embedded-store' && listing.parts.length === 0 && !(await embeddedUploadExists(ctx, session))) return false
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

/** Stitches the parts together on S3, once per session even when complete is retried. */
export async function assemble (ctx: DirectContext, session: UploadSession, parts: ReportedPart[]): Promise<UploadSession> {
  if (session.assembled === true) return session
  try {
    await ctx.s3.send(new CompleteMultipartUploadCommand({
      Bucket: ctx.bucket,
      Key: session.key as string,
      UploadId: session.s3UploadId as string,
      MultipartUpload: { Parts: parts.map((part) => ({ PartNumber: part.partNumber, ETag: `"${normalEtag(part.etag)}"` })) }
    }))
  } catch (error) {
    // A completion that died after S3 assembled the object but before recording it: the object is there, whole.
    if (!(await assembledAlready(ctx, session))) {
      if (isDependencyUnavailable(error)) throw error
      // InvalidPart, InvalidPartOrder, EntityTooSmall, NoSuchUpload: the client's report does not fit this upload.
      throw badRequest('S3 refused to assemble the parts: report every part of this upload with the ETag S3 answered its PUT with')
    }
  }
  return await ctx.sessions.finish(session, { attributes: { assembled: true, parts }, expectStatus: ['uploading'] })
}

/** True when the session's object exists with all its bytes and its multipart upload is no longer open. */
async function assembledAlready (ctx: DirectContext, session: UploadSession): Promise<boolean> {
  // Either read failing means "not known to be assembled": the caller then reports S3's refusal.
  const listing = await listParts(ctx, session).catch(() => undefined)
  if (listing?.gone !== true && !(listing?.source === 'embedded-store' && !(await embeddedUploadExists(ctx, session)))) return false
  const stat = await ctx.s3.send(new HeadObjectCommand({ Bucket: ctx.bucket, Key: session.key as string })).catch(() => undefined)
  return stat?.ContentLength === session.totalBytes
}

/** Whether the embedded S3 still has this multipart upload open (its directory exists). */
async function embeddedUploadExists (ctx: DirectContext, session: UploadSession): Promise<boolean> {
  return await access(join(ctx.config.dataDir, 's3', ctx.bucket, '._S3rver_uploads', session.s3UploadId as string)).then(() => true, () => false)
}
