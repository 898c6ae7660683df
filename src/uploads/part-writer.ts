// Multipart writing in constant memory and one pass: every incoming chunk is copied once into the part being
// filled, one of at most queueSize + 1 part buffers of this upload, reused part after part and by later uploads (no
// per-part allocation, no Buffer.concat, no garbage for the collector). A full part goes to S3 while the next one fills; when every buffer
// is in flight, write() waits, so the request body is read no faster than S3 takes it.
import { UploadPartCommand, type S3Client } from '@aws-sdk/client-s3'

/**
 * UploadPart with the payload left out of the SigV4 signature: the SDK would otherwise SHA-256 every part for its
 * x-amz-content-sha256 header, a second hash of every byte next to the upload's own. (What the SDK does for any
 * stream body; the bytes are hashed end to end by the caller, and TLS carries them to AWS.)
 */
export function uploadPartCommand (input: { Bucket: string, Key: string, UploadId: string, PartNumber: number, Body: Buffer }): UploadPartCommand {
  const command = new UploadPartCommand({ ...input, ContentLength: input.Body.length })
  command.middlewareStack.add((next) => async (args) => {
    (args.request as { headers: Record<string, string> }).headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD'
    return await next(args)
  }, { step: 'build', name: 'unsignedPartPayload' })
  return command
}

export async function sendPart (s3: S3Client, input: { Bucket: string, Key: string, UploadId: string, PartNumber: number, Body: Buffer }): Promise<string> {
  const { ETag } = await s3.send(uploadPartCommand(input))
  if (ETag === undefined) throw new Error(`S3 answered part ${input.PartNumber} without an ETag`)
  return ETag
}

/**
 * Part buffers that landed, kept for the next part of any upload in this process (a few per part size): a new upload
 * reuses the last one's instead of allocating, so the process's memory after its first upload stays where it is,
 * whatever the size or number of uploads that follow. At most SPARE_PER_SIZE are kept; the rest go to the collector.
 */
const spare = new Map<number, Buffer[]>()
const SPARE_PER_SIZE = 4

function takeSpare (size: number): Buffer | undefined {
  return spare.get(size)?.pop()
}

function giveBack (buffer: Buffer): void {
  const kept = spare.get(buffer.length) ?? []
  spare.set(buffer.length, kept)
  if (kept.length < SPARE_PER_SIZE) kept.push(buffer)
}

export interface PartWriterOptions {
  s3: S3Client
  bucket: string
  partSize: number
  queueSize: number
  /** the number the first full part gets */
  firstPartNumber?: number
  /** the key and S3 upload id to send parts to, opened when the first part (`body`) is about to go */
  target: (body: Buffer) => Promise<{ key: string, uploadId: string }>
  /** called before each part is sent; throwing stops the writer (a lease that lapsed) */
  beforePart?: () => void
}

export class PartWriter {
  /** ETags of the parts that landed, by part number */
  readonly landed = new Map<number, string>()
  /** the number the next part will get */
  nextPart: number
  /** part buffers this upload holds: the one being filled and those in flight */
  private held = 0
  private current: Buffer | undefined
  private filled = 0
  private readonly inFlight = new Set<Promise<void>>()
  private failure: { error: unknown } | undefined
  private sentAny = false

  constructor (private readonly options: PartWriterOptions) {
    this.nextPart = options.firstPartNumber ?? 1
  }

  /** The first part that failed, if one did. */
  get partFailure (): unknown { return this.failure?.error }
  get failed (): boolean { return this.failure !== undefined }

  /** The bytes written and not yet sent (the part being filled); valid until the next write. */
  pending (): Buffer {
    return this.current === undefined ? Buffer.alloc(0) : this.current.subarray(0, this.filled)
  }

  /** True while no part has been sent: pending() then starts with the first byte written. */
  get unsent (): boolean { return !this.sentAny }

  /** Copies `chunk` in, sending each part that fills; waits while every part buffer is in flight. */
  async write (chunk: Buffer): Promise<void> {
    const { partSize } = this.options
    for (let offset = 0; offset < chunk.length;) {
      this.current ??= await this.takeBuffer()
      const copied = chunk.copy(this.current, this.filled, offset)
      this.filled += copied
      offset += copied
      if (this.filled === partSize) await this.sendCurrent()
    }
  }

  /** Sends what is pending as one more (possibly short: the last) part; nothing when nothing is pending. */
  async flush (): Promise<void> {
    if (this.filled > 0) await this.sendCurrent()
  }

  /** Waits for every part in flight; throws the first part failure. */
  async settle (): Promise<void> {
    await Promise.allSettled([...this.inFlight])
    if (this.failure !== undefined) throw this.failure.error
  }

  /** Waits for every part in flight, whatever their outcome. */
  async idle (): Promise<void> {
    await Promise.allSettled([...this.inFlight])
  }

  /** The ETags of the parts from `from` on that landed without a gap. */
  contiguous (from = this.options.firstPartNumber ?? 1): string[] {
    const etags: string[] = []
    for (let number = from; this.landed.has(number); number++) etags.push(this.landed.get(number) as string)
    return etags
  }

  private async takeBuffer (): Promise<Buffer> {
    // At most queueSize + 1 buffers per upload (a failed part keeps its buffer, and fails the writer).
    while (this.held > this.options.queueSize) {
      if (this.failure !== undefined) throw this.failure.error
      await Promise.race(this.inFlight)
    }
    this.held++
    // Outside Node's small-buffer pool: a whole part, reused from an earlier part (of any upload) where one is spare.
    return takeSpare(this.options.partSize) ?? Buffer.allocUnsafeSlow(this.options.partSize)
  }

  private async sendCurrent (): Promise<void> {
    if (this.failure !== undefined) throw this.failure.error
    this.options.beforePart?.()
    const buffer = this.current as Buffer
    const body = buffer.subarray(0, this.filled)
    this.current = undefined
    this.filled = 0
    this.sentAny = true
    const number = this.nextPart++
    const { key, uploadId } = await this.options.target(body)
    const sending = sendPart(this.options.s3, { Bucket: this.options.bucket, Key: key, UploadId: uploadId, PartNumber: number, Body: body })
      .then((etag) => {
        this.landed.set(number, etag)
        // Only a part that landed gives its buffer back: a failed request may still hold it.
        this.held--
        giveBack(buffer)
      }, (error: unknown) => { this.failure ??= { error } })
      .finally(() => { this.inFlight.delete(sending) })
    this.inFlight.add(sending)
  }
}
