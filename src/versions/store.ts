// How a version is taken and committed, for code and renders alike. No claim, no pointer to move first: version n of
// a video exists exactly when its item was written by one conditional PutItem (attribute_not_exists), which carries
// the writer's commit token. So a write whose answer was lost, an SDK retry of a write that landed, or a second
// execution of the same request (same Idempotency-Key) recognises its own commit by the token instead of writing
// another version, and nothing is ever deleted on "unknown": leftovers of failed writes are objects no item names,
// which reconcile removes.
import { setTimeout as sleep } from 'node:timers/promises'
import { DeleteCommand, GetCommand, PutCommand, QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb'
import { HttpProblem, conflict, isDependencyUnavailable } from '../errors.js'
import { DELETE_MARK, LATEST_ATTRIBUTE, MAX_VERSION, isConditionFailure, itemBehindFailedCondition, setClauses, versionSortKey, videoKey, type VersionKind } from '../table/video-item.js'

/** Who is writing: the token its version item carries, and whether that token may have committed already. */
export interface WriteIdentity {
  token: string
  /**
   * true for a repeat (same Idempotency-Key after a failure, a taken-over request, a retried complete); set while a
   * write runs when its idempotency lease could not be renewed (another execution may take it over)
   */
  mayExist: boolean
  /** epoch ms: no commit with this token is older than this (bounds the search for it) */
  since?: number
}

/** A 503 whose write may still land: the caller must not clean up anything that write may reference. */
export class OutcomeUnknown extends HttpProblem {
  constructor (detail: string) {
    super(503, 'Service Unavailable', detail, { headers: { 'retry-after': '5' } })
  }
}

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

/** Commit requests whose answers are in doubt may land late; writers look this far back for their token. */
const CLOCK_SKEW_MS = 5 * 60_000
const SEARCH_PAGE = 50

/** A fresh write's identity; `since` bounds any later search for its token to what was written after it began. */
export const newIdentity = (token: string): WriteIdentity => ({ token, mayExist: false, since: Date.now() })

export function createVersions ({ ddb, table, commitDeadlineMs = 15_000 }: { ddb: DynamoDBDocumentClient, table: string, commitDeadlineMs?: number }) {
  const pkOf = (projectId: string, videoId: string): string => videoKey(projectId, videoId).pk
  const bounds = (kind: VersionKind): { ':first': string, ':last': string } => ({ ':first': versionSortKey(kind, 1), ':last': versionSortKey(kind, MAX_VERSION) })

  /** The newest version item of a kind (undefined when there is none): one consistent Query. */
  async function latest (kind: VersionKind, projectId: string, videoId: string): Promise<Record<string, unknown> | undefined> {
    const { Items = [] } = await ddb.send(new QueryCommand({
      TableName: table,
      KeyConditionExpression: 'pk = :pk AND sk BETWEEN :first AND :last',
      ExpressionAttributeValues: { ':pk': pkOf(projectId, videoId), ...bounds(kind) },
      ScanIndexForward: false,
      ConsistentRead: true,
      Limit: 1
    }))
    return Items[0]
  }

  /** One version item, read consistently. */
  async function get (kind: VersionKind, projectId: string, videoId: string, version: number): Promise<Record<string, unknown> | undefined> {
    const { Item } = await ddb.send(new GetCommand({ TableName: table, Key: { pk: pkOf(projectId, videoId), sk: versionSortKey(kind, version) }, ConsistentRead: true }))
    return Item
  }

  /**
   * The version this token committed, searching down from the latest to items older than `since` (minus clock
   * skew). Runs after the latest was read, so a commit of this token that landed before that read is found here.
   */
  async function findByToken (kind: VersionKind, projectId: string, videoId: string, identity: WriteIdentity): Promise<Record<string, unknown> | undefined> {
    const oldest = identity.since === undefined ? undefined : new Date(identity.since - CLOCK_SKEW_MS).toISOString()
    let startKey: Record<string, unknown> | undefined
    do {
      const page = await ddb.send(new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :pk AND sk BETWEEN :first AND :last',
        ExpressionAttributeValues: { ':pk': pkOf(projectId, videoId), ...bounds(kind) },
        ScanIndexForward: false,
        ConsistentRead: true,
        Limit: SEARCH_PAGE,
        ExclusiveStartKey: startKey
      }))
      for (const item of page.Items ?? []) {
        if (item.commitToken === identity.token) return item
        if (oldest !== undefined && typeof item.createdAt === 'string' && item.createdAt < oldest) return undefined
      }
      startKey = page.LastEvaluatedKey
    } while (startKey !== undefined)
    return undefined
  }

  /** Whose is version n: the item a failed condition returned (where the backend does), else a consistent read. */
  async function ownerOf (kind: VersionKind, projectId: string, videoId: string, version: number, error: unknown): Promise<Record<string, unknown> | undefined> {
    return await itemBehindFailedCondition(ddb, table, { pk: pkOf(projectId, videoId), sk: versionSortKey(kind, version) }, error)
  }

  /**
   * Writes the next version with this identity's token, exactly once: returns the version it wrote, or the one an
   * earlier attempt with the same token wrote. A 409 when `expectedLatest` is stale; an OutcomeUnknown 503 when
   * DynamoDB cannot tell within the deadline (the write may still land: nothing may be cleaned up).
   */
  async function commit (request: CommitRequest): Promise<Committed> {
    const { kind, projectId, videoId, identity } = request
    const deadline = Date.now() + commitDeadlineMs
    let inDoubt = identity.mayExist
    let lastFailure: unknown
    // Set when the last attempt lost its number to another writer: that number exists, so the next one may be tried
    // at once, without reading the latest again (contention costs one PutItem per lost race, not a Query too).
    let next: number | undefined
    for (let attempt = 0; ; attempt++) {
      // The identity may turn doubtful while this runs (its idempotency lease was lost: a repeat may be committing).
      if (identity.mayExist) inDoubt = true
      if (Date.now() > deadline) {
        if (inDoubt) throw unknownOutcome(kind)
        throw lastFailure instanceof HttpProblem ? lastFailure : new HttpProblem(503, 'Service Unavailable', `too many concurrent ${kind.toLowerCase()} versions of this video are being written; retry shortly`, { headers: { 'retry-after': '1' } })
      }
      let version: number
      if (next !== undefined) {
        version = next
        next = undefined
      } else try {
        const top = await latest(kind, projectId, videoId)
        const topVersion = (top?.version as number | undefined) ?? 0
        if (inDoubt) {
          const mine = top?.commitToken === identity.token ? top : await findByToken(kind, projectId, videoId, identity)
          if (mine !== undefined) return { item: mine, version: mine.version as number, recovered: true }
        }
        if (request.expectedLatest !== undefined && request.expectedLatest !== topVersion) {
          throw conflict(`version ${request.expectedLatest} is not the latest; the latest is ${topVersion}`, { latestVersion: topVersion })
        }
        if (top !== undefined && request.reuse?.(top) === true) return { item: top, version: topVersion, recovered: false, reused: true, inDoubt }
        version = topVersion + 1
      } catch (error) {
        if (!isDependencyUnavailable(error)) throw inDoubt && !(error instanceof HttpProblem) ? unknownOutcome(kind) : error
        lastFailure = error
        await sleep(backoff(attempt))
        continue
      }
      const item = { ...request.build(version), pk: pkOf(projectId, videoId), sk: versionSortKey(kind, version), version, commitToken: identity.token }
      try {
        await ddb.send(new PutCommand({
          TableName: table,
          Item: item,
          ConditionExpression: 'attribute_not_exists(sk)',
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD'
        }))
        return { item, version, recovered: false }
      } catch (error) {
        if (isConditionFailure(error)) {
          // Taken: by an earlier attempt of ours (the SDK retried a write that had landed), or by another writer.
          const owner = await ownerOf(kind, projectId, videoId, version, error).catch(() => undefined)
          if (owner?.commitToken === identity.token) return { item: owner, version, recovered: true }
          if (owner === undefined) inDoubt = true
          // Lost a race: the number is someone else's. Unless this write must look for itself, must name its base,
          // or may turn out to repeat the new latest, the next number is tried straight away.
          const simple = !inDoubt && request.expectedLatest === undefined && (owner === undefined || request.reuse?.(owner) !== true)
          if (simple) {
            next = version + 1
            await sleep(Math.random() * 3)
            continue
          }
        } else if (isDependencyUnavailable(error)) {
          // Timed out or cut: it may land later. From now on every attempt first looks for it.
          inDoubt = true
          lastFailure = error
        } else {
          throw inDoubt ? unknownOutcome(kind) : error
        }
        await sleep(backoff(attempt))
      }
    }
  }

  /**
   * Moves the video record's latest pointer (and what it says about the latest) forward to `version`, never back.
   * Best effort after a commit: the version item is the truth, and reconcile or the next commit catch a lagging
   * pointer. A deleted video is not brought back: 'gone' when the record is missing or a DELETE has begun on it
   * (DELETE_MARK), so the writer knows its version may be left without its video (see deleteVideo); 'ahead' when the
   * pointer already names this version or a later one.
   */
  async function advance (kind: VersionKind, projectId: string, videoId: string, version: number, set: Record<string, unknown> = {}): Promise<'advanced' | 'ahead' | 'gone'> {
    const extra = setClauses({ ...set, updatedAt: new Date().toISOString() })
    try {
      await ddb.send(new UpdateCommand({
        TableName: table,
        Key: videoKey(projectId, videoId),
        UpdateExpression: `SET #latest = :version, ${extra.clauses.join(', ')} ADD revision :one`,
        ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(#deleting) AND (attribute_not_exists(#latest) OR #latest < :version)',
        ExpressionAttributeNames: { '#latest': LATEST_ATTRIBUTE[kind], '#deleting': DELETE_MARK, ...extra.names },
        ExpressionAttributeValues: { ':version': version, ':one': 1, ...extra.values },
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD'
      }))
      return 'advanced'
    } catch (error) {
      if (!isConditionFailure(error)) throw error
      const record = await itemBehindFailedCondition(ddb, table, videoKey(projectId, videoId), error)
      return record === undefined || record[DELETE_MARK] !== undefined ? 'gone' : 'ahead'
    }
  }

  /**
   * Removes a version this token committed (only its own: the condition names the token). For a writer whose video
   * was deleted while it committed: the DELETE may have listed the items before this one landed.
   */
  async function withdraw (kind: VersionKind, projectId: string, videoId: string, version: number, token: string): Promise<void> {
    try {
      await ddb.send(new DeleteCommand({
        TableName: table,
        Key: { pk: pkOf(projectId, videoId), sk: versionSortKey(kind, version) },
        ConditionExpression: 'commitToken = :token',
        ExpressionAttributeValues: { ':token': token }
      }))
    } catch (error) {
      if (!isConditionFailure(error)) throw error
    }
  }

  return { commit, latest, get, findByToken, advance, withdraw }
}

const unknownOutcome = (kind: VersionKind): OutcomeUnknown =>
  new OutcomeUnknown(`storage did not confirm the ${kind.toLowerCase()} version in time; it may still be stored: repeat the request with the same Idempotency-Key to learn the outcome`)

/** Short jittered waits: contention clears in milliseconds, an unreachable table in seconds. */
function backoff (attempt: number): number {
  return Math.min(1000, 10 * 2 ** Math.min(attempt, 7)) * (0.5 + Math.random())
}

export type Versions = ReturnType<typeof createVersions>
