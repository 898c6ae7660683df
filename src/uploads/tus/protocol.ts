// The tus 1.0.0 wire format: its headers, their parsing, and the status codes the protocol fixes.
import { HttpProblem, badRequest } from '../../errors.js'
import type { RenderDetails } from '../../renders/store.js'

export const TUS_VERSION = '1.0.0'
export const TUS_EXTENSIONS = ['creation', 'creation-with-upload', 'termination', 'expiration', 'checksum']
export const TUS_CHECKSUM_ALGORITHMS = ['sha1', 'sha256', 'md5'] as const
export type ChecksumAlgorithm = typeof TUS_CHECKSUM_ALGORITHMS[number]
export const OFFSET_CONTENT_TYPE = 'application/offset+octet-stream'

/** 412 for a client speaking another tus version; the answer names the one this server speaks. */
export const unsupportedVersion = (given: string | undefined): HttpProblem =>
  new HttpProblem(412, 'Precondition Failed', `Tus-Resumable must be ${TUS_VERSION}${given === undefined ? ' (the header is missing)' : `, not ${given}`}`, { headers: { 'tus-version': TUS_VERSION } })

/** 460 Checksum Mismatch (the checksum extension): the PATCH's bytes were discarded. */
export const checksumMismatch = (algorithm: string): HttpProblem =>
  new HttpProblem(460, 'Checksum Mismatch', `the ${algorithm} checksum of the received bytes does not match Upload-Checksum; nothing of this request was kept, send it again`)

/** 423 Locked: another request is writing to this upload right now. */
export const uploadLocked = (uploadId: string, leaseUntil: number, now = Date.now()): HttpProblem =>
  new HttpProblem(423, 'Locked', `upload ${uploadId} is receiving another request right now; retry after it ends`, {
    headers: { 'retry-after': String(Math.max(1, Math.ceil((leaseUntil - now) / 1000))) }
  })

export const offsetMismatch = (given: number, offset: number): HttpProblem =>
  new HttpProblem(409, 'Conflict', `Upload-Offset ${given} is not the upload's offset ${offset}; ask with HEAD and continue from there`, { extensions: { uploadOffset: offset } })

export const uploadGone = (uploadId: string, why: string): HttpProblem => new HttpProblem(410, 'Gone', `upload ${uploadId} ${why}`)

/** A non-negative integer header (Upload-Length, Upload-Offset); undefined when absent, 400 when malformed. */
export function integerHeader (name: string, value: string | string[] | undefined): number | undefined {
  if (value === undefined) return undefined
  const text = Array.isArray(value) ? value.join(',') : value
  if (!/^[0-9]{1,16}$/.test(text.trim())) throw badRequest(`${name} must be a non-negative integer`)
  const number = Number(text.trim())
  if (!Number.isSafeInteger(number)) throw badRequest(`${name} is too large`)
  return number
}

/** Upload-Metadata: comma-separated `key base64value` pairs (value optional); keys unique, ASCII without spaces or commas. */
export function parseMetadata (header: string | undefined): Record<string, string> {
  const metadata: Record<string, string> = {}
  if (header === undefined || header.trim() === '') return metadata
  if (header.length > 4096) throw badRequest('Upload-Metadata must be at most 4096 characters')
  for (const pair of header.split(',')) {
    const [key, value, ...rest] = pair.trim().split(' ')
    if (key === undefined || !/^[\x21-\x2b\x2d-\x7e]+$/.test(key) || rest.length > 0) throw badRequest('Upload-Metadata must be comma-separated "key base64value" pairs')
    if (key in metadata) throw badRequest(`Upload-Metadata names ${key} twice`)
    if (value !== undefined && !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw badRequest(`Upload-Metadata ${key}: the value must be base64`)
    metadata[key] = value === undefined ? '' : Buffer.from(value, 'base64').toString('utf8')
  }
  return metadata
}

/** The render details a tus upload's metadata carries (title, durationSeconds, resolution; filename kept as metadata). */
export function detailsOf (metadata: Record<string, string>): RenderDetails {
  const details: RenderDetails = {}
  if (metadata.title !== undefined) {
    if (metadata.title.length > 500) throw badRequest('Upload-Metadata title must be at most 500 characters')
    details.title = metadata.title
  }
  if (metadata.durationSeconds !== undefined) {
    const seconds = Number(metadata.durationSeconds)
    if (metadata.durationSeconds.trim() === '' || !Number.isFinite(seconds) || seconds < 0) throw badRequest('Upload-Metadata durationSeconds must be a non-negative number')
    details.durationSeconds = seconds
  }
  if (metadata.resolution !== undefined) {
    if (!/^[0-9]{1,5}x[0-9]{1,5}$/.test(metadata.resolution)) throw badRequest('Upload-Metadata resolution must look like 1920x1080')
    details.resolution = metadata.resolution
  }
  if (metadata.filename !== undefined) {
    if (metadata.filename.length > 1024) throw badRequest('Upload-Metadata filename must be at most 1024 characters')
    details.metadata = { filename: metadata.filename }
  }
  return details
}

/** A declared filetype the service can store: a video type (the container is still sniffed from the bytes) or none. */
export function checkedFiletype (filetype: string | undefined): string | undefined {
  if (filetype === undefined || filetype === '') return undefined
  const type = filetype.split(';')[0].trim().toLowerCase()
  if (type !== 'application/octet-stream' && !/^video\/[a-z0-9.+-]+$/.test(type)) {
    throw new HttpProblem(415, 'Unsupported Media Type', `Upload-Metadata filetype ${filetype} is not a video type`)
  }
  return type
}

/** Upload-Checksum: `algorithm base64digest`; undefined when absent, 400 for an algorithm this server does not support. */
export function parseChecksum (header: string | undefined): { algorithm: ChecksumAlgorithm, digest: string } | undefined {
  if (header === undefined) return undefined
  const [algorithm, digest, ...rest] = header.trim().split(' ')
  if (digest === undefined || rest.length > 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(digest)) throw badRequest('Upload-Checksum must be "algorithm base64digest"')
  if (!(TUS_CHECKSUM_ALGORITHMS as readonly string[]).includes(algorithm)) {
    throw badRequest(`Upload-Checksum algorithm ${algorithm} is not supported; use one of ${TUS_CHECKSUM_ALGORITHMS.join(', ')}`)
  }
  return { algorithm: algorithm as ChecksumAlgorithm, digest }
}

/** Metadata as an Upload-Metadata header again (HEAD echoes it). */
export function formatMetadata (metadata: Record<string, string>): string {
  return Object.entries(metadata).map(([key, value]) => value === '' ? key : `${key} ${Buffer.from(value, 'utf8').toString('base64')}`).join(',')
}
