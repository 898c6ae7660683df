// Checking what a client uploaded before it becomes a render version: the parts it reports, then the object itself
// (size, content type, part ETags, container, SHA-256), read once.
import { createHash } from 'node:crypto'
import type { Readable } from 'node:stream'
import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3'
import { badRequest } from '../../errors.js'
import { SNIFF_BYTES, sniffVideoContainer, type VideoContainer } from '../../renders/container.js'
import type { UploadSession } from '../sessions.js'
import { normalEtag, rejected, type DirectContext, type ReportedPart } from './common.js'

/** The reported parts must be exactly 1..partCount, once each (checked before S3 is asked). */
export function checkedParts (session: UploadSession, reported: ReportedPart[] | undefined): ReportedPart[] {
  const partCount = session.partCount as number
  if (reported === undefined || reported.length === 0) throw badRequest(`parts is required for a multipart upload: all ${partCount} of them with their ETags`)
  const sorted = [...reported].sort((a, b) => a.partNumber - b.partNumber)
  const numbers = sorted.map((part) => part.partNumber)
  if (numbers.length !== partCount || numbers.some((number, index) => number !== index + 1)) {
    throw badRequest(`parts must list every part 1..${partCount} exactly once; got ${numbers.length} part numbers`)
  }
  return sorted
}

interface StagedRead { sha256: string, partMd5s: string[], head: Buffer, bytes: number }

/**
 * Reads the staged object once: SHA-256 of all of it, MD5 of each part (a part's ETag where SSE-KMS is not
 * used), the first bytes for the container check, and the byte count.
 */
async function readStaged (ctx: DirectContext, key: string, partSize: number | undefined, ifMatch: string | undefined): Promise<StagedRead> {
  // One stream: ranged reads 4 at once were slower on the embedded S3 (one process serving them all).
  const { Body } = await ctx.s3.send(new GetObjectCommand({ Bucket: ctx.bucket, Key: key, IfMatch: ifMatch }))
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

/**
 * Checks the staged object against the session; throws RejectedObject when it cannot become a render. Answers its
 * SHA-256 and the ETag it had, so what is copied is what was checked.
 */
export async function verify (ctx: DirectContext, session: UploadSession, parts: ReportedPart[], partsChecked = false): Promise<{ sha256: string, etag: string | undefined, container: VideoContainer }> {
  const key = session.key as string
  const totalBytes = session.totalBytes as number
  let stat
  try {
    stat = await ctx.s3.send(new HeadObjectCommand({ Bucket: ctx.bucket, Key: key }))
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
  const partMd5s = multipart && !partsChecked && ctx.config.sse.algorithm !== 'aws:kms'
  const read = await readStaged(ctx, key, partMd5s ? session.partSize as number : undefined, stat.ETag)
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
