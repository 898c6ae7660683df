// tus uploads: the state of each upload lives on its upload session item in DynamoDB (offset, part ETags, the held
// incomplete part, the PATCH lease) and its bytes in one S3 multipart upload, so any replica continues an upload
// another one started. Parts are cut at fixed offsets (n × part size), so a PATCH that is lost or refused only ever
// leaves parts a later PATCH at the same offset overwrites. Bytes below a whole part wait in an "incomplete part"
// object (as @tus/s3-store keeps one), under a key unique to the PATCH that wrote it. When the last byte arrives
// the parts are assembled and the object becomes the next render version through the exactly-once commit.
//   item.ts    the upload as its item holds it, and the context the modules share
//   lease.ts   the PATCH lease and the writes under it; removing an upload's bytes
//   append.ts  one PATCH: parts written from reused buffers while the body streams in
//   commit.ts  the assembled upload becomes the next render version, exactly once
import { setTimeout as sleep } from 'node:timers/promises'
import { LRUCache } from 'lru-cache'
import type { AwsClients } from '../../aws/clients.js'
import type { Config } from '../../config.js'
import { HttpProblem, badRequest, payloadTooLarge } from '../../errors.js'
import type { RenderVersions } from '../../renders/store.js'
import type { UploadSessions } from '../sessions.js'
import { detailsOf, uploadLocked, type ChecksumAlgorithm } from './protocol.js'
import { AlreadyCompleted, TusClientGone, stateOf, tusPartSize, type TusBody, type TusContext, type TusItem, type TusUploadState } from './item.js'
import { discardBytes, lock, readTus, refuseClosed, save } from './lease.js'
import { finish, identityOf, recordCompleted } from './commit.js'
import { append } from './append.js'

/** How long a HEAD waits for a PATCH that holds the upload (a client's cut connection its replica has yet to notice). */
const HEAD_WAIT_MS = 3000

export { TusClientGone, tusPartSize, type TusBody, type TusUploadState }

export function createTusUploads ({ aws, config, sessions, renders, log }: {
  aws: AwsClients, config: Config, sessions: UploadSessions, renders: RenderVersions, log?: { warn: (object: object, message: string) => void }
}) {
  const ctx: TusContext = { aws, config, sessions, renders, log, hashes: new LRUCache({ max: 1000, ttl: config.tusExpiresSeconds * 1000 }) }

  /** Opens an upload (tus creation): a session item holding the tus state; no S3 call until bytes arrive. */
  async function create ({ projectId, videoId, length, metadata, filetype }: { projectId: string, videoId: string, length: number, metadata: Record<string, string>, filetype?: string }): Promise<TusUploadState> {
    if (length > config.maxVideoBytes) throw payloadTooLarge(`Upload-Length ${length} is over the maximum of ${config.maxVideoBytes} bytes`)
    if (length === 0) throw badRequest('Upload-Length must be at least 1: an empty upload is no video')
    detailsOf(metadata)
    const session = await sessions.create({
      projectId,
      videoId,
      mode: 'proxied',
      status: 'pending',
      contentType: filetype ?? 'application/octet-stream',
      totalBytes: length,
      ttlSeconds: config.tusExpiresSeconds,
      attributes: { protocol: 'tus', tusOffset: 0, tusParts: [], tusHeldBytes: 0, tusPartSize: tusPartSize(length, config.partSize), tusMetadata: metadata }
    })
    return { uploadId: session.uploadId, offset: 0, length, expiresAt: new Date(session.expiresAtEpoch * 1000), metadata }
  }

  /** The upload as HEAD reports it; an assembled upload whose commit did not finish is committed first. */
  async function status (projectId: string, videoId: string, uploadId: string): Promise<TusUploadState> {
    let tus = await readTus(ctx, projectId, videoId, uploadId)
    // A PATCH holds it (often the client's own cut connection, whose bytes are being saved): wait a little for it.
    for (const deadline = Date.now() + HEAD_WAIT_MS; tus.leaseUntil >= Date.now() && Date.now() < deadline;) {
      await sleep(100)
      tus = await readTus(ctx, projectId, videoId, uploadId)
    }
    await refuseClosed(ctx, tus)
    if (tus.assembled && tus.session.status !== 'completed') {
      try {
        const { tus: held, owner } = await lock(ctx, projectId, videoId, uploadId, {})
        return await finish(ctx, held, owner, undefined)
      } catch (error) {
        if (error instanceof AlreadyCompleted) return stateOf(error.tus)
        throw error
      }
    }
    return stateOf(tus)
  }

  /** Terminates an upload: its bytes go and the session reads aborted. A completed upload is a render version: 409. */
  async function terminate (projectId: string, videoId: string, uploadId: string): Promise<void> {
    let held: { tus: TusItem, owner: string }
    try {
      held = await lock(ctx, projectId, videoId, uploadId, {})
    } catch (error) {
      if (error instanceof AlreadyCompleted) throw new HttpProblem(409, 'Conflict', `upload ${uploadId} is complete and is render version ${error.tus.session.renderVersion ?? '?'}; delete that instead`)
      throw error
    }
    const { tus, owner } = held
    if (tus.assembled) {
      // Its commit may have landed without being recorded: then it is a render version, not an upload to drop.
      const render = await renders.committedBy(projectId, videoId, identityOf(tus))
      if (render !== undefined) {
        await recordCompleted(ctx, tus, render)
        throw new HttpProblem(409, 'Conflict', `upload ${uploadId} is complete and is render version ${render.version}; delete that instead`)
      }
    }
    if (!await save(ctx, tus, owner, { status: 'aborted', tusLeaseUntil: 0, updatedAt: new Date().toISOString() })) throw uploadLocked(uploadId, Date.now() + 1000)
    ctx.hashes.delete(uploadId)
    await discardBytes(ctx, tus, { object: tus.assembled })
  }

  return {
    create,
    status,
    terminate,
    append: async (input: { projectId: string, videoId: string, uploadId: string, offset: number, body: TusBody, checksum?: { algorithm: ChecksumAlgorithm, digest: string } }) => await append(ctx, input),
    read: async (projectId: string, videoId: string, uploadId: string) => stateOf(await readTus(ctx, projectId, videoId, uploadId))
  }
}

export type TusUploads = ReturnType<typeof createTusUploads>
