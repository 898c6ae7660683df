// Caps on open upload sessions per project and per video, counted in DynamoDB so they hold across replicas.
//
// Each scope (a project, a video) has one item whose map `open` holds uploadId -> the epoch second the session's
// completeBy ends. A claim is one conditional update, `SET open.<id> = :until` if the map has fewer than max entries
// (or already holds this id): atomic, so N replicas racing for the last slot let exactly one in, with no read-modify-
// write loop. Sessions leave the map when they end (completed, aborted, failed, expired by a request); a session
// nobody ends holds its slot until its completeBy, after which the next claim that finds the scope full prunes it.
import { GetCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb'
import { HttpProblem } from '../errors.js'
import { recordBestEffortFailure } from '../http/metrics.js'
import { writeIf } from '../table/video-item.js'

export interface SlotCaps { perProject: number, perVideo: number }

export interface SlotHolder { projectId: string, videoId: string, uploadId: string }

/**
 * Items: pk=SLOTS#{projectId} sk=VIDEO#{videoId} per video, and sk=PROJECT (reconcile skips unknown keys). The video
 * is claimed first: a claim that then fails gives its slot back, and so the slots held for a moment by claims that
 * will fail are at most the video's cap, not every concurrent request of the project.
 */
const scopeKeys = (projectId: string, videoId: string): Array<{ scope: 'project' | 'video', key: { pk: string, sk: string } }> => [
  { scope: 'video', key: { pk: `SLOTS#${projectId}`, sk: `VIDEO#${videoId}` } },
  { scope: 'project', key: { pk: `SLOTS#${projectId}`, sk: 'PROJECT' } }
]

/** 429 with Retry-After: when the earliest open session of the full scope reaches its completeBy. */
export class TooManyOpenUploads extends HttpProblem {
  constructor (scope: 'project' | 'video', max: number, retryAfterSeconds: number, name: string) {
    super(429, 'Too Many Requests', `${scope} ${name} has ${max} open upload sessions, the most allowed; complete or abort one (DELETE .../uploads/{uploadId}), or retry after ${retryAfterSeconds} s when the oldest expires`, {
      extensions: { scope, maxOpenUploads: max },
      headers: { 'retry-after': String(retryAfterSeconds) }
    })
  }
}

const MAX_ROUNDS = 5

const scopeName = (scope: 'project' | 'video', holder: SlotHolder): string => scope === 'project' ? holder.projectId : `${holder.projectId}/${holder.videoId}`

export function createUploadSlots ({ ddb, table, caps, log }: { ddb: DynamoDBDocumentClient, table: string, caps: SlotCaps, log?: { warn: (object: object, message: string) => void } }) {
  const maxOf = (scope: 'project' | 'video'): number => scope === 'project' ? caps.perProject : caps.perVideo

  /** One update of a scope's `open` map (#open; #id: the upload's entry), under a condition: false when it failed. */
  const updateOpen = async (key: { pk: string, sk: string }, update: string, condition: string | undefined, uploadId?: string, values?: Record<string, unknown>): Promise<boolean> =>
    await writeIf(ddb, new UpdateCommand({
      TableName: table,
      Key: key,
      UpdateExpression: update,
      ...(condition === undefined ? {} : { ConditionExpression: condition }),
      ExpressionAttributeNames: { '#open': 'open', ...(uploadId === undefined ? {} : { '#id': uploadId }) },
      ...(values === undefined ? {} : { ExpressionAttributeValues: values })
    }))

  /** Takes one slot in one scope, or throws TooManyOpenUploads. */
  async function claimOne (key: { pk: string, sk: string }, scope: 'project' | 'video', holder: SlotHolder, untilEpoch: number): Promise<void> {
    const max = maxOf(scope)
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const claimed = await updateOpen(key, 'SET #open.#id = :until', 'attribute_exists(#open) AND (size(#open) < :max OR attribute_exists(#open.#id))',
        holder.uploadId, { ':until': untilEpoch, ':max': max })
      if (claimed) return
      const { Item } = await ddb.send(new GetCommand({ TableName: table, Key: key, ConsistentRead: true }))
      const open = Item?.open as Record<string, number> | undefined
      if (open === undefined) {
        // First session of this scope: make the map holding its own entry. A racing first claim that made it
        // meanwhile fails this condition, and the next round claims in the map that claim made.
        if (await updateOpen(key, 'SET #open = :mine', 'attribute_not_exists(#open)', undefined, { ':mine': { [holder.uploadId]: untilEpoch } })) return
        continue
      }
      // Our update met no map that another claim has made since, or a slot that was given back since: try again.
      if (Object.keys(open).length < max || holder.uploadId in open) continue
      const now = Math.floor(Date.now() / 1000)
      const lapsed = Object.entries(open).filter(([, until]) => until <= now).slice(0, 50)
      if (lapsed.length === 0) {
        const earliest = Math.min(...Object.values(open))
        throw new TooManyOpenUploads(scope, max, Math.max(1, earliest - now), scopeName(scope, holder))
      }
      await prune(key, lapsed)
    }
    // Every round lost to other claims: the scope is at its cap in all but name.
    throw new TooManyOpenUploads(scope, max, 1, scopeName(scope, holder))
  }

  /** Removes entries whose completeBy passed, each only if it still holds that value (it was not claimed again). */
  async function prune (key: { pk: string, sk: string }, lapsed: Array<[string, number]>): Promise<void> {
    const names: Record<string, string> = { '#open': 'open' }
    const values: Record<string, unknown> = {}
    const removes: string[] = []
    const conditions: string[] = []
    lapsed.forEach(([id, until], index) => {
      names[`#e${index}`] = id
      values[`:u${index}`] = until
      removes.push(`#open.#e${index}`)
      conditions.push(`#open.#e${index} = :u${index}`)
    })
    // An entry claimed again since (or pruned by another claim) fails the condition: it stays, as it should.
    await writeIf(ddb, new UpdateCommand({ TableName: table, Key: key, UpdateExpression: `REMOVE ${removes.join(', ')}`, ConditionExpression: conditions.join(' AND '), ExpressionAttributeNames: names, ExpressionAttributeValues: values }))
  }

  /**
   * Claims a slot for a session in its video and its project (untilEpoch: its completeBy); 429 when either is full.
   * A claim that fails in the project scope gives back the video slot it took.
   */
  async function claim (holder: SlotHolder, untilEpoch: number): Promise<void> {
    const taken: Array<{ pk: string, sk: string }> = []
    try {
      for (const { scope, key } of scopeKeys(holder.projectId, holder.videoId)) {
        if (maxOf(scope) <= 0) continue
        await claimOne(key, scope, holder, untilEpoch)
        taken.push(key)
      }
    } catch (error) {
      // Best effort: a slot left behind lapses at untilEpoch.
      await Promise.all(taken.map(async (key) => { await releaseKey(key, holder.uploadId).catch((cleanup: unknown) => { recordBestEffortFailure('upload-slot-release', cleanup, log) }) }))
      throw error
    }
  }

  async function releaseKey (key: { pk: string, sk: string }, uploadId: string): Promise<void> {
    // A scope without a map holds no slot to give back.
    await updateOpen(key, 'REMOVE #open.#id', 'attribute_exists(#open)', uploadId)
  }

  /** Gives a session's slots back (it ended). Idempotent; a session without slots is a no-op. */
  async function release (holder: SlotHolder): Promise<void> {
    await Promise.all(scopeKeys(holder.projectId, holder.videoId).map(async ({ key }) => { await releaseKey(key, holder.uploadId) }))
  }

  /** How many sessions hold a slot in the project and in the video right now (lapsed ones not counted). */
  async function count (projectId: string, videoId: string): Promise<{ project: number, video: number }> {
    const now = Math.floor(Date.now() / 1000)
    const [video, project] = await Promise.all(scopeKeys(projectId, videoId).map(async ({ key }) => {
      const { Item } = await ddb.send(new GetCommand({ TableName: table, Key: key, ConsistentRead: true }))
      return Object.values((Item?.open ?? {}) as Record<string, number>).filter((until) => until > now).length
    }))
    return { project, video }
  }

  return { claim, release, count }
}

export type UploadSlots = ReturnType<typeof createUploadSlots>
