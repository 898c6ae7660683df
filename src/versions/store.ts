// How a version is taken and committed, for code and renders alike. No claim, no pointer to move first: version n of
// a video exists exactly when its item was written by one conditional PutItem (attribute_not_exists), which carries
// the writer's commit token. So a write whose answer was lost, an SDK retry of a write that landed, or a second
// execution of the same request (same Idempotency-Key) recognises its own commit by the token instead of writing
// another version, and nothing is ever deleted on "unknown": leftovers of failed writes are objects no item names,
// which reconcile removes. Reading versions: read.ts; moving the latest pointer afterwards: publish.ts.
import { setTimeout as sleep } from 'node:timers/promises'
import type { S3Client } from '@aws-sdk/client-s3'
import { PutCommand } from '@aws-sdk/lib-dynamodb'
import type { Config } from '../config.js'
import { HttpProblem, conflict, isDependencyUnavailable } from '../errors.js'
import { versionKey, type VersionKind } from '../table/keys.js'
import { isConditionFailure, itemBehindFailedCondition } from '../table/conditions.js'
import { recordBestEffortFailure } from '../http/metrics.js'
import { unknownOutcome, type WriteIdentity } from './identity.js'
import { advance, publish, withdraw } from './publish.js'
import { commitOf, findByToken, getVersion, latestVersion, versionPage, type VersionTable } from './read.js'
import { bindContext } from '../stores.js'

export { newIdentity, OutcomeUnknown, type WriteIdentity } from './identity.js'

export interface CommitRequest {
  kind: VersionKind
  projectId: string
  videoId: string
  identity: WriteIdentity
  /** an edit of this version: when the latest is another one, 409 with latestVersion */
  expectedLatest?: number
  /** the item's own attributes for version n (pk, sk, version and commitToken are added) */
  build: (version: number) => Record<string, unknown>
  /**
   * True when the latest version already is what this write would store (a resend of the same content that lost a
   * race to an identical write): the commit then writes nothing and answers that version with `reused`.
   */
  reuse?: (latest: Record<string, unknown>) => boolean
}

export interface Committed {
  item: Record<string, unknown>
  version: number
  /** the commit was made by an earlier attempt with the same token (a lost answer, a repeat) */
  recovered: boolean
  /** nothing was written: the latest version (`item`) is what `reuse` accepted */
  reused?: boolean
  /** a PutItem with this token was in doubt: a caller that did not commit must not clean up what it references */
  inDoubt?: boolean
}

export interface VersionsContext extends VersionTable {
  commitDeadlineMs: number
}

/** Where one commit stands between its attempts. */
interface Attempt {
  inDoubt: boolean
  lastFailure?: unknown
  /** set when the last attempt lost its number to another writer: that number exists, so this one may be tried at once */
  next?: number
}

/**
 * Writes the next version with this identity's token, exactly once: returns the version it wrote, or the one an
 * earlier attempt with the same token wrote. A 409 when `expectedLatest` is stale; an OutcomeUnknown 503 when
 * DynamoDB cannot tell within the deadline (the write may still land: nothing may be cleaned up).
 */
export async function commit (context: VersionsContext, request: CommitRequest): Promise<Committed> {
  const { kind, identity } = request
  const deadline = Date.now() + context.commitDeadlineMs
  const state: Attempt = { inDoubt: identity.mayExist }
  for (let attempt = 0; ; attempt++) {
    // The identity may turn doubtful while this runs (its idempotency lease was lost: a repeat may be committing).
    if (identity.mayExist) state.inDoubt = true
    if (Date.now() > deadline) throw gaveUp(kind, state)
    let version: number
    if (state.next !== undefined) {
      // Contention costs one PutItem per lost race, not a Query too.
      version = state.next
      state.next = undefined
    } else {
      const chosen = await chooseNumber(context, request, state)
      if (typeof chosen !== 'number') {
        if (chosen !== 'retry') return chosen
        await sleep(backoff(attempt))
        continue
      }
      version = chosen
    }
    const written = await putVersion(context, request, version, state)
    if (written !== undefined) return written
    if (state.next !== undefined) await sleep(Math.random() * 3)
    else await sleep(backoff(attempt))
  }
}

/** The number to try next (the latest + 1), this identity's own earlier commit, the reusable latest, or 'retry'. */
async function chooseNumber (context: VersionsContext, request: CommitRequest, state: Attempt): Promise<number | Committed | 'retry'> {
  const { kind, projectId, videoId, identity } = request
  try {
    const top = await latestVersion(context, kind, projectId, videoId)
    const topVersion = (top?.version as number | undefined) ?? 0
    if (state.inDoubt) {
      const mine = await commitOf(context, kind, projectId, videoId, identity, top)
      if (mine !== undefined) return { item: mine, version: mine.version as number, recovered: true }
    }
    if (request.expectedLatest !== undefined && request.expectedLatest !== topVersion) {
      throw conflict(`version ${request.expectedLatest} is not the latest; the latest is ${topVersion}`, { latestVersion: topVersion })
    }
    if (top !== undefined && request.reuse?.(top) === true) return { item: top, version: topVersion, recovered: false, reused: true, inDoubt: state.inDoubt }
    return topVersion + 1
  } catch (error) {
    if (!isDependencyUnavailable(error)) throw state.inDoubt && !(error instanceof HttpProblem) ? unknownOutcome(kind) : error
    state.lastFailure = error
    return 'retry'
  }
}

/** One conditional PutItem of version n: the commit, or undefined to try again (with state.next set to go on at once). */
async function putVersion (context: VersionsContext, request: CommitRequest, version: number, state: Attempt): Promise<Committed | undefined> {
  const { ddb, table } = context
  const { kind, projectId, videoId, identity } = request
  const key = versionKey(kind, projectId, videoId, version)
  const item = { ...request.build(version), ...key, version, commitToken: identity.token }
  try {
    await ddb.send(new PutCommand({ TableName: table, Item: item, ConditionExpression: 'attribute_not_exists(sk)', ReturnValuesOnConditionCheckFailure: 'ALL_OLD' }))
    return { item, version, recovered: false }
  } catch (error) {
    if (isConditionFailure(error)) {
      // Taken: by an earlier attempt of ours (the SDK retried a write that had landed), or by another writer.
      const owner = await itemBehindFailedCondition(ddb, table, key, error).catch((readFailure: unknown) => { recordBestEffortFailure('version-owner-read', readFailure, context.log) })
      if (owner?.commitToken === identity.token) return { item: owner, version, recovered: true }
      if (owner === undefined) state.inDoubt = true
      // Lost a race: the number is someone else's. Unless this write must look for itself, must name its base,
      // or may turn out to repeat the new latest, the next number is tried straight away.
      const simple = !state.inDoubt && request.expectedLatest === undefined && (owner === undefined || request.reuse?.(owner) !== true)
      if (simple) state.next = version + 1
    } else if (isDependencyUnavailable(error)) {
      // Timed out or cut: it may land later. From now on every attempt first looks for it.
      state.inDoubt = true
      state.lastFailure = error
    } else {
      throw state.inDoubt ? unknownOutcome(kind) : error
    }
    return undefined
  }
}

/** The failure after the deadline: an unknown outcome when a write may have landed, else a plain 503. */
function gaveUp (kind: VersionKind, state: Attempt): HttpProblem {
  if (state.inDoubt) return unknownOutcome(kind)
  return state.lastFailure instanceof HttpProblem ? state.lastFailure : new HttpProblem(503, 'Service Unavailable', `too many concurrent ${kind.toLowerCase()} versions of this video are being written; retry shortly`, { headers: { 'retry-after': '1' } })
}

/** Short jittered waits: contention clears in milliseconds, an unreachable table in seconds. */
function backoff (attempt: number): number {
  return Math.min(1000, 10 * 2 ** Math.min(attempt, 7)) * (0.5 + Math.random())
}

/** What a store of versioned objects (code, renders) works with: its bucket, the table, and the versions in it. */
export interface VersionedObjectsContext {
  s3: S3Client
  ddb: VersionTable['ddb']
  table: string
  bucket: string
  config: Config
  versions: Versions
  log?: VersionTable['log']
}

/** The versions of one table, bound for a store. */
export function createVersions ({ ddb, table, commitDeadlineMs = 15_000, log }: { ddb: VersionTable['ddb'], table: string, commitDeadlineMs?: number, log?: VersionTable['log'] }) {
  const context: VersionsContext = { ddb, table, commitDeadlineMs, log }
  return bindContext(context, { commit, latest: latestVersion, get: getVersion, page: versionPage, findByToken, commitOf, advance, withdraw, publish })
}

export type Versions = ReturnType<typeof createVersions>
