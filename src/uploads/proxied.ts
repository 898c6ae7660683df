// Proxied uploads: a request body streamed into S3 in constant memory, hashed and counted on the way, and turned
// into the next render version (or a scene clip) only once every byte is stored.
import { createHash, randomUUID } from 'node:crypto'
import { Readable } from 'node:stream'
import { AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import type { AwsClients } from '../aws/clients.js'
import type { Config } from '../config.js'
import { HttpProblem, isDependencyUnavailable, payloadTooLarge, unsupportedMediaType } from '../errors.js'
import { recordBestEffortFailure, recordUploadBytes, startUpload } from '../http/metrics.js'
import { encryptionParams, sceneObjectKey, uploadObjectKey, type RenderDetails, type RenderVersion, type RenderVersions, type SceneClip, type StoredObject } from '../renders/store.js'
import type { UploadSessions } from './sessions.js'
import { PartWriter } from './part-writer.js'
import { SNIFF_BYTES, sniffVideoContainer, type VideoContainer } from '../renders/container.js'
import { OutcomeUnknown, type WriteIdentity } from '../versions/store.js'

export interface UploadBody {
  stream: Readable
  /** Content-Length when the client sent one */
  declaredLength?: number
  /** true when a parser cut the body at its own limit (multipart fileSize) */
  truncated?: () => boolean
  /** aborted when the client goes away */
  signal: AbortSignal
  /** resolves once the rest of the request is read; rejects (400) when it held more than the one video */
  finished?: () => Promise<void>
}

class ClientGone extends Error {
  constructor (bytes: number) {
    super(`the client disconnected after ${bytes} bytes`)
    this.name = 'ClientGone'
  }
}

const tooLarge = (max: number): HttpProblem => payloadTooLarge(`the video is larger than the maximum of ${max} bytes`)

/** Reads until at least SNIFF_BYTES are in hand (or the body ends), keeping the chunks for replay. */
async function readHead (iterator: AsyncIterator<Buffer>): Promise<{ chunks: Buffer[], head: Buffer, ended: boolean }> {
  const chunks: Buffer[] = []
  let length = 0
  while (length < SNIFF_BYTES) {
    const next = await iterator.next()
    if (next.done === true) return { chunks, head: Buffer.concat(chunks), ended: true }
    const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value)
    chunks.push(chunk)
    length += chunk.length
  }
  return { chunks, head: Buffer.concat(chunks).subarray(0, SNIFF_BYTES), ended: false }
}

export function createRenderUploads ({ aws, config, sessions, renders, log }: {
  aws: AwsClients, config: Config, sessions: UploadSessions, renders: RenderVersions, log?: { warn: (object: object, message: string) => void }
}) {
  let active = 0

  /** Takes one of the replica's upload slots (429 when all are busy); the returned function gives it back once. */
  function admit (): () => void {
    if (active >= config.maxConcurrentUploads) {
      throw new HttpProblem(429, 'Too Many Requests', `this replica is already receiving ${config.maxConcurrentUploads} uploads; retry shortly`, { headers: { 'retry-after': '5' } })
    }
    active++
    let released = false
    return () => {
      if (!released) { released = true; active-- }
    }
  }

  /** Refuses a declared length over the limit and a body that is not a video container, before anything is stored. */
  async function open (body: UploadBody): Promise<{ container: VideoContainer, iterator: AsyncIterator<Buffer>, chunks: Buffer[], ended: boolean }> {
    if (body.declaredLength !== undefined && body.declaredLength > config.maxVideoBytes) throw tooLarge(config.maxVideoBytes)
    const iterator = (body.stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]()
    const { chunks, head, ended } = await readHead(iterator)
    const container = sniffVideoContainer(head)
    if (container === undefined) throw unsupportedMediaType('the body is not a recognised video container (MP4, MOV, WebM, MKV or AVI)')
    return { container, iterator, chunks, ended }
  }

  /**
   * Streams the rest of the body to `key`, hashing and counting each chunk and copying it once into a reused part
   * buffer (PartWriter); a body that fits in one part is one PutObject. Resolves only when S3 holds every byte; on
   * any failure nothing stays at `key` and the first real cause is thrown.
   */
  async function store ({ key, container, opened, body, onBytes }: {
    key: string
    container: VideoContainer
    opened: { iterator: AsyncIterator<Buffer>, chunks: Buffer[], ended: boolean }
    body: UploadBody
    onBytes?: (bytes: number) => void
  }): Promise<StoredObject> {
    const hash = createHash('sha256')
    let size = 0
    const max = config.maxVideoBytes
    const objectParams = { Bucket: config.videoBucket, Key: key, ContentType: container.contentType, Metadata: { 'upload-ext': container.ext }, ...encryptionParams(config) }
    let multipart: Promise<{ key: string, uploadId: string }> | undefined
    const writer = new PartWriter({
      s3: aws.s3,
      bucket: config.videoBucket,
      // S3 takes at most 10,000 parts: a declared length over 10,000 configured parts gets larger parts. A body of
      // unknown length keeps the configured size (memory stays bounded), so it can be at most 10,000 of them.
      partSize: Math.max(config.partSize, Math.ceil((body.declaredLength ?? 0) / 10_000)),
      queueSize: config.queueSize,
      target: async () => await (multipart ??= aws.s3.send(new CreateMultipartUploadCommand(objectParams))
        .then(({ UploadId }) => ({ key, uploadId: UploadId as string })))
    })
    const take = async (chunk: Buffer): Promise<void> => {
      size += chunk.length
      if (size > max) throw tooLarge(max)
      hash.update(chunk)
      onBytes?.(size)
      await writer.write(chunk)
    }
    // The client leaving ends the body read below with an error; the request itself stays open otherwise, so a
    // client whose upload failed in S3 still gets its answer.
    const onAbort = (): void => { body.stream.destroy() }
    body.signal.addEventListener('abort', onAbort, { once: true })
    if (body.signal.aborted) onAbort()
    try {
      for (const chunk of opened.chunks) await take(chunk)
      if (!opened.ended) {
        for (let next = await opened.iterator.next(); next.done !== true; next = await opened.iterator.next()) {
          await take(Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value))
        }
      }
      if (body.truncated?.() === true) throw tooLarge(max)
      if (writer.unsent) {
        // The whole body fits in one part: one PutObject, no multipart upload.
        const whole = writer.pending()
        await aws.s3.send(new PutObjectCommand({ ...objectParams, Body: whole, ContentLength: whole.length }))
      } else {
        await writer.flush()
        await writer.settle()
        const { uploadId } = await (multipart as Promise<{ uploadId: string }>)
        await aws.s3Assemble.send(new CompleteMultipartUploadCommand({
          Bucket: config.videoBucket, Key: key, UploadId: uploadId,
          MultipartUpload: { Parts: writer.contiguous().map((etag, index) => ({ PartNumber: index + 1, ETag: etag })) }
        }))
      }
      return { key, ext: container.ext, sizeBytes: size, sha256: hash.digest('hex'), contentType: container.contentType }
    } catch (error) {
      await writer.idle()
      // A multipart upload that never opened has nothing to abort (its own failure is the one being handled here).
      const started = await multipart?.catch(() => undefined)
      if (started !== undefined) {
        await aws.s3.send(new AbortMultipartUploadCommand({ Bucket: config.videoBucket, Key: key, UploadId: started.uploadId }))
          .catch((abort: unknown) => { recordBestEffortFailure('multipart-abort', abort, log) })
      }
      await renders.deleteObject(key)
      // The first real cause: our own refusal, else the client leaving, else what broke (S3 or the body).
      if (error instanceof HttpProblem) throw error
      if (body.signal.aborted) throw new ClientGone(size)
      throw error
    } finally {
      body.signal.removeEventListener('abort', onAbort)
    }
  }

  /** Why an upload failed, in words a client may read (no internals). */
  const describeFailure = (error: unknown): string => {
    if (error instanceof HttpProblem || error instanceof ClientGone) return error.message
    return 'storage failed while receiving the upload'
  }

  /** Reads and drops the rest of a body whose write is already stored (a repeat of a committed upload). */
  function drain (body: UploadBody): void {
    body.stream.resume()
  }

  /**
   * The whole proxied render upload: sniff, open a session (leased while this replica works on it), stream to a key
   * only this upload uses, then commit the next render version exactly once for this write's identity. Concurrent
   * uploads to one video never wait for each other: numbers are taken at the commit.
   */
  async function uploadRender ({ projectId, videoId, body, details = {}, identity }: { projectId: string, videoId: string, body: UploadBody, details?: RenderDetails, identity: WriteIdentity }): Promise<{ render: RenderVersion, uploadId: string }> {
    const earlier = await renders.committedBy(projectId, videoId, identity)
    if (earlier !== undefined) {
      drain(body)
      return { render: earlier, uploadId: earlier.uploadId ?? '' }
    }
    const opened = await open(body)
    const { container } = opened
    const session = await sessions.create({ projectId, videoId, mode: 'proxied', status: 'uploading', contentType: container.contentType, totalBytes: body.declaredLength })
    const stopLease = sessions.keepAlive(session)
    const endMetric = startUpload('render')
    let stored: StoredObject | undefined
    let committing = false
    try {
      stored = await store({ key: uploadObjectKey(projectId, videoId, session.uploadId, container.ext), container, opened, body, onBytes: (bytes) => { void sessions.progress(session, bytes) } })
      await body.finished?.()
      committing = true
      const { render, recovered } = await renders.commit(identity, { projectId, videoId, stored, details: { ...details, uploadId: session.uploadId } })
      // A repeat that found its earlier commit made this upload's bytes surplus.
      if (recovered && render.key !== stored.key) await renders.deleteObject(stored.key)
      recordUploadBytes('render', render.sizeBytes)
      endMetric('completed')
      // The render version is committed: a session record that cannot be updated must not turn it into a failure.
      const completed = { status: 'completed' as const, bytesUploaded: render.sizeBytes, totalBytes: render.sizeBytes, renderVersion: render.version }
      await sessions.finish(session, completed).catch((error: unknown) => { recordBestEffortFailure('session-finish', error, log) })
      return { render, uploadId: session.uploadId }
    } catch (error) {
      // Not committed. The object goes unless a commit of it may still land (then reconcile decides, from the records).
      const mayLand = committing && error instanceof OutcomeUnknown
      if (stored !== undefined && !mayLand) await renders.deleteObject(stored.key)
      // Refused input leaves no trace at all; a failure of ours or of storage is kept on the session for the client.
      const badInput = error instanceof HttpProblem && (error.statusCode === 413 || error.statusCode === 400)
      await (badInput
        ? sessions.discard(session)
        : sessions.finish(session, { status: 'failed', lastError: describeFailure(error), bytesUploaded: session.bytesUploaded })
      ).catch((cleanup: unknown) => { recordBestEffortFailure('session-finish', cleanup, log) })
      endMetric(error instanceof ClientGone ? 'aborted' : 'failed')
      throw error
    } finally {
      stopLease()
    }
  }

  /**
   * Attaches one scene clip to an existing render version, under a key only this upload uses; re-putting a scene
   * replaces its record, and the replaced clip's object is deleted after. A failed re-upload leaves the previous clip.
   */
  async function uploadScene ({ render, sceneNumber, body }: { render: RenderVersion, sceneNumber: number, body: UploadBody }): Promise<SceneClip> {
    const opened = await open(body)
    const { container } = opened
    const endMetric = startUpload('scene')
    const { projectId, videoId, version } = render
    const key = sceneObjectKey(projectId, videoId, version, sceneNumber, randomUUID(), container.ext)
    try {
      const stored = await store({ key, container, opened, body })
      let scene: SceneClip
      try {
        await body.finished?.()
        scene = await renders.saveScene(render, sceneNumber, stored)
      } catch (error) {
        // A record write that may have landed keeps its object; reconcile removes it if no record names it.
        if (!isDependencyUnavailable(error)) await renders.deleteObject(key)
        throw error
      }
      recordUploadBytes('scene', stored.sizeBytes)
      endMetric('completed')
      return scene
    } catch (error) {
      endMetric(error instanceof ClientGone ? 'aborted' : 'failed')
      throw error
    }
  }

  return { admit, uploadRender, uploadScene, activeUploads: () => active }
}

export type RenderUploads = ReturnType<typeof createRenderUploads>
