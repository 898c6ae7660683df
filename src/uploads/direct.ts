// Direct-to-S3 uploads: the client PUTs the bytes to presigned URLs; the service only signs, then verifies the
// staged object (size, part ETags, container, SHA-256) before it becomes a render version. Each step is a function
// of src/uploads/direct/ taking the context built here: start.ts opens a session, sign.ts signs part URLs,
// stored-parts.ts lists and assembles parts, verify.ts checks the object, complete.ts ends a session.
import fp from 'fastify-plugin'
import pLimit from 'p-limit'
import { serviceUnavailable } from '../errors.js'
import type { AwsClients } from '../aws/clients.js'
import type { Config } from '../config.js'
import type { RenderVersions } from '../renders/store.js'
import type { UploadSessions } from './sessions.js'
import { createPartLister } from './parts.js'
import { createUploadSlots } from './slots.js'
import type { DirectContext, Log, UploadRef } from './direct/common.js'
import { checkedStart, startDirect, type StartRequest } from './direct/start.js'
import { signParts } from './direct/sign.js'
import { stateOf } from './direct/stored-parts.js'
import { abort, complete, type CompleteRequest } from './direct/complete.js'

export {
  DIRECT_CONTENT_TYPES, MAX_PARTS_PER_REQUEST, directPartSize, toUploadState,
  type DirectMethod, type DirectUploadPlan, type ReportedPart, type SignedPart, type UploadState
} from './direct/common.js'

export function createDirectUploads ({ aws, config, sessions, renders, log }: { aws: AwsClients, config: Config, sessions: UploadSessions, renders: RenderVersions, log?: Log }) {
  const ctx: DirectContext = {
    s3: aws.s3,
    bucket: config.videoBucket,
    config,
    sessions,
    renders,
    slots: createUploadSlots({ ddb: aws.ddb, table: config.table, caps: config.uploadCaps ?? { perProject: 0, perVideo: 0 }, log }),
    partLister: createPartLister({ s3: aws.s3, config }),
    log
  }
  // Openings and signings take turns apart, so a burst of openings never holds up the part URLs of uploads under way.
  const openings = sessionTurns(config.uploadSessionConcurrency ?? 2)
  const signings = sessionTurns(config.uploadSessionConcurrency ?? 2)
  return {
    /** `gone`: whether the client has left (its work is then not done when its turn comes) */
    start: async (request: StartRequest, gone?: () => boolean) => {
      checkedStart(config, request) // 413 and 415 need no turn
      return await openings(async () => await startDirect(ctx, request), gone)
    },
    complete: async (request: CompleteRequest) => await complete(ctx, request),
    abort: async (ref: UploadRef) => { await abort(ctx, ref) },
    state: async (ref: UploadRef) => await stateOf(ctx, ref),
    signParts: async (request: UploadRef & { partNumbers: number[] }, gone?: () => boolean) => await signings(async () => await signParts(ctx, request), gone)
  }
}

/** Requests that may wait for a turn, and for how long; past either a replica answers 503 + Retry-After. */
const MAX_WAITING = 1000
const MAX_WAIT_MS = 10_000

/**
 * Opening a session and signing part URLs are this replica's CPU-heavy upload requests (each a handful of SDK calls
 * or up to 100 signatures). Run all at once, a burst of them fills the event loop's queue and every other request
 * waits behind it: 20 openings at once put other requests' p99 at 250 ms; 4 at a time at 66-83 ms, 2 at a time at
 * 42-47 ms, for 15 % more total time (bench/upload-sessions.ts). So at most `concurrency` (default 2) run at once,
 * the rest in arrival order. A request that waited MAX_WAIT_MS is answered 503 and its work is never done, nor is
 * the work of a client that left while it waited (no session opened for nobody, holding a slot until completeBy).
 */
function sessionTurns (concurrency: number): <T>(work: () => Promise<T>, gone?: () => boolean) => Promise<T> {
  const limit = pLimit(concurrency)
  const busy = (why: string): Error => serviceUnavailable(`this replica ${why}; retry shortly`, 2)
  return async <T>(work: () => Promise<T>, gone: () => boolean = () => false): Promise<T> => {
    if (limit.pendingCount >= MAX_WAITING) throw busy(`has ${MAX_WAITING} upload session requests waiting`)
    return await new Promise<T>((resolve, reject) => {
      let state: 'waiting' | 'running' | 'given up' = 'waiting'
      const timer = setTimeout(() => {
        if (state !== 'waiting') return
        state = 'given up'
        reject(busy(`could not take this upload session request within ${MAX_WAIT_MS / 1000} s`))
      }, MAX_WAIT_MS)
      void limit(async () => {
        clearTimeout(timer)
        if (state === 'given up') return
        if (gone()) {
          state = 'given up'
          reject(busy('was left by its client before its turn'))
          return
        }
        state = 'running'
        try {
          resolve(await work())
        } catch (error) {
          reject(error)
        }
      })
    })
  }
}

export type DirectUploads = ReturnType<typeof createDirectUploads>

declare module 'fastify' {
  interface FastifyInstance {
    directUploads: DirectUploads
  }
}

/** Direct-to-S3 upload sessions, on top of the shared upload sessions and render versions. */
export default fp(async function directUploadsPlugin (app) {
  app.decorate('directUploads', createDirectUploads({ aws: app.aws, config: app.config, sessions: app.uploadSessions, renders: app.renderVersions, log: app.log }))
}, { name: 'direct-uploads', dependencies: ['aws', 'render-versions'] })
