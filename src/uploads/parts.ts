// Which parts of a direct multipart upload S3 holds: ListParts where S3 has it. The embedded s3rver has no ListParts
// (it answers 405 MethodNotAllowed), so there the service reads what s3rver itself keeps for an open multipart upload:
// {DATA_DIR}/s3/{bucket}/._S3rver_uploads/{s3UploadId}/{partNumber} with the part's MD5 (its ETag) beside it in
// {partNumber}.md5, written only once the part's last byte was stored. That is the storage's own record of what
// arrived, with no help from the client (a client that crashed between a part's PUT and telling anyone still gets
// that part counted), and it is only read by the process that started the emulator on that directory.
import { readFile, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { ListPartsCommand, type S3Client } from '@aws-sdk/client-s3'
import type { Config } from '../config.js'

export interface ReceivedPart { partNumber: number, size: number, etag: string }

export type PartListing =
  | { source: 'ListParts' | 'embedded-store', parts: ReceivedPart[] }
  /** this S3 cannot list parts (and it is not the embedded one): nothing can be said */
  | { source: 'unavailable', parts?: undefined }

export interface MultipartRef { key: string, s3UploadId: string, partSize: number, totalBytes: number }

const MAX_PAGES = 20

/** The size part n must have: partSize, the last one the rest. */
export const expectedPartSize = (ref: { partSize: number, totalBytes: number }, partNumber: number): number =>
  Math.min(ref.partSize, ref.totalBytes - (partNumber - 1) * ref.partSize)

export const notImplemented = (error: unknown): boolean => {
  const failure = error as { name?: string, Code?: string, $metadata?: { httpStatusCode?: number } }
  const status = failure.$metadata?.httpStatusCode
  return status === 405 || status === 501 || failure.name === 'MethodNotAllowed' || failure.name === 'NotImplemented'
}

const quoted = (etag: string): string => `"${etag.replaceAll('"', '').trim().toLowerCase()}"`

export function createPartLister ({ s3, config }: { s3: S3Client, config: Config }) {
  const bucket = config.videoBucket

  async function viaListParts (ref: MultipartRef): Promise<ReceivedPart[]> {
    const parts: ReceivedPart[] = []
    let marker: string | undefined
    for (let page = 0; page < MAX_PAGES; page++) {
      const answer = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: ref.key, UploadId: ref.s3UploadId, PartNumberMarker: marker, MaxParts: 1000 }))
      for (const part of answer.Parts ?? []) {
        if (part.PartNumber === undefined || part.ETag === undefined) continue
        parts.push({ partNumber: part.PartNumber, size: part.Size ?? 0, etag: quoted(part.ETag) })
      }
      if (answer.IsTruncated !== true || answer.NextPartNumberMarker === undefined) break
      marker = answer.NextPartNumberMarker
    }
    return parts
  }

  /** The embedded s3rver's own part files: a part counts once its .md5 is written and its size is the one expected. */
  async function viaEmbeddedStore (ref: MultipartRef): Promise<ReceivedPart[]> {
    const directory = join(config.dataDir, 's3', bucket, '._S3rver_uploads', ref.s3UploadId)
    let names: string[]
    try {
      names = await readdir(directory)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw error
    }
    const numbers = names.filter((name) => /^[1-9][0-9]{0,4}$/.test(name)).map(Number).sort((a, b) => a - b)
    const parts = await Promise.all(numbers.map(async (partNumber): Promise<ReceivedPart | undefined> => {
      try {
        const [{ size }, md5] = await Promise.all([stat(join(directory, String(partNumber))), readFile(join(directory, `${partNumber}.md5`), 'utf8')])
        // A part being (re)written has a partial file (and maybe an older .md5): not received until it is whole.
        if (size !== expectedPartSize(ref, partNumber) || !/^[0-9a-f]{32}$/.test(md5.trim())) return undefined
        return { partNumber, size, etag: quoted(md5) }
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
        throw error
      }
    }))
    return parts.filter((part): part is ReceivedPart => part !== undefined)
  }

  /** The parts S3 holds for this multipart upload, sorted by number. */
  async function list (ref: MultipartRef): Promise<PartListing> {
    try {
      return { source: 'ListParts', parts: await viaListParts(ref) }
    } catch (error) {
      if (!notImplemented(error)) throw error
    }
    if (config.mode === 'embedded') return { source: 'embedded-store', parts: await viaEmbeddedStore(ref) }
    return { source: 'unavailable' }
  }

  return { list }
}

export type PartLister = ReturnType<typeof createPartLister>
