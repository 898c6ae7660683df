// Part URLs of a multipart session, signed on demand (POST .../uploads/{uploadId}/parts).
import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
import { UploadPartCommand } from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { badRequest, conflict } from '../../errors.js'
import { createPartSigner } from '../../aws/part-signer.js'
import { expectedPartSize } from '../parts.js'
import type { UploadSession } from '../sessions.js'
import { MAX_PARTS_PER_REQUEST, completeByOf, findDirect, gone, urlExpiry, type DirectContext, type SignedPart, type UploadRef } from './common.js'

/** Signing yields to the event loop after this much work, so no request holds it longer (see bench/direct-signing.ts). */
const SIGN_SLICE_MS = 4

/**
 * Signs UploadPart URLs for the given part numbers of a pending multipart session, on demand. The first URL goes
 * through the SDK's getSignedUrl (endpoint, path style, signing region as for every other call); the rest reuse its
 * address, date and region with one derived signing key (src/aws/part-signer.ts: one SHA-256 and one HMAC per URL).
 * Signing yields to the event loop every SIGN_SLICE_MS, so no request blocks other requests for longer.
 */
export async function signParts (ctx: DirectContext, { partNumbers, ...ref }: UploadRef & { partNumbers: number[] }): Promise<SignedPart[]> {
  const session = await findDirect(ctx, ref)
  const unique = checkedPartNumbers(session, partNumbers)
  const now = Date.now()
  const expires = urlExpiry(ctx, now, session)
  const expiresIn = Math.floor((expires.getTime() - now) / 1000)
  if (expiresIn < 1) throw gone(`upload ${ref.uploadId} expires at ${completeByOf(session)}; too late for new part URLs`)
  const sizes = { partSize: session.partSize as number, totalBytes: session.totalBytes as number }
  const expiresAt = expires.toISOString()
  const [first, ...rest] = unique
  const firstSize = expectedPartSize(sizes, first)
  const firstUrl = await getSignedUrl(ctx.s3, new UploadPartCommand({ Bucket: ctx.bucket, Key: session.key as string, UploadId: session.s3UploadId as string, PartNumber: first, ContentLength: firstSize }), {
    expiresIn, signableHeaders: new Set(['content-length'])
  })
  const signed: SignedPart[] = [{ partNumber: first, url: firstUrl, headers: {}, expiresAt, sizeBytes: firstSize }]
  if (rest.length === 0) return signed
  const presign = await signerLike(ctx, firstUrl, expiresIn)
  let slice = performance.now()
  for (const partNumber of rest) {
    if (performance.now() - slice > SIGN_SLICE_MS) {
      await yieldToEventLoop()
      slice = performance.now()
    }
    const sizeBytes = expectedPartSize(sizes, partNumber)
    signed.push({ partNumber, url: presign(partNumber, sizeBytes), headers: {}, expiresAt, sizeBytes })
  }
  return signed
}

/** The part numbers asked for, checked against the session (pending multipart, each once, at most 100, in range). */
function checkedPartNumbers (session: UploadSession, partNumbers: number[]): number[] {
  const { uploadId } = session
  if (session.method !== 'MULTIPART') throw conflict(`upload ${uploadId} has one PUT URL (given when it was opened), no parts`)
  if (session.status === 'expired') throw gone(`upload ${uploadId} expired at ${completeByOf(session)}; open a new one`)
  if (session.status !== 'pending') throw conflict(`upload ${uploadId} is ${session.status}; part URLs are only given while it is pending`)
  const partCount = session.partCount as number
  const unique = [...new Set(partNumbers)]
  if (unique.length !== partNumbers.length) throw badRequest('partNumbers lists a part more than once')
  if (unique.length > MAX_PARTS_PER_REQUEST) throw badRequest(`at most ${MAX_PARTS_PER_REQUEST} part URLs per request`)
  const outside = unique.filter((number) => !Number.isInteger(number) || number < 1 || number > partCount)
  if (outside.length > 0) throw badRequest(`this upload has parts 1..${partCount}; not ${outside.slice(0, 10).join(', ')}${outside.length > 10 ? ', ...' : ''}`)
  return unique
}

/** Signs further parts like the first URL: its address, date and region, the client's own credentials, one signing key. */
async function signerLike (ctx: DirectContext, firstUrl: string, expiresIn: number): Promise<(partNumber: number, sizeBytes: number) => string> {
  const template = new URL(firstUrl)
  const credential = (template.searchParams.get('X-Amz-Credential') ?? '').split('/')
  const identity = await (ctx.s3.config.credentials as () => Promise<{ accessKeyId: string, secretAccessKey: string, sessionToken?: string }>)()
  const presign = createPartSigner({ identity, region: credential[2], service: credential[3], amzDate: template.searchParams.get('X-Amz-Date') as string, expiresIn })
  const query: Record<string, string> = {}
  for (const [name, value] of template.searchParams) if (!name.startsWith('X-Amz-')) query[name] = value
  return (partNumber, sizeBytes) => presign({
    method: 'PUT', origin: template.origin, host: template.host, path: template.pathname,
    query: { ...query, partNumber: String(partNumber) }, headers: { 'content-length': String(sizeBytes) }
  })
}
