// Idempotency-Key records (the IETF httpapi idempotency-key draft, as Stripe uses it): the first request with a key
// runs and its answer is recorded in DynamoDB; a repeat gets that answer, a concurrent repeat a 409 with Retry-After,
// the same key on another request a 422. A request that failed with 5xx (or whose replica died: its lease lapses)
// releases the key, and the next repeat runs again as a takeover that first looks for its own commit.
import { createHash, randomUUID } from 'node:crypto'
import { GetCommand, PutCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb'
import { idempotencyKey } from '../table/keys.js'
import { itemBehindFailedCondition, tryWrite, writeIf } from '../table/conditions.js'

export interface RecordedResponse {
  status: number
  headers: Record<string, string>
  body: string
  /** 'base64' when the body was bytes */
  bodyEncoding?: 'base64'
}

interface IdempotencyItem {
  state: 'running' | 'done' | 'failed'
  owner: string
  leaseUntil: number
  fingerprint: string
  createdAt: number
  expiresAtEpoch: number
  response?: RecordedResponse
}

export type Begin =
  | { outcome: 'run', owner: string, token: string, mayExist: boolean, since: number }
  | { outcome: 'replay', response: RecordedResponse }
  | { outcome: 'busy', retryAfterSeconds: number }
  | { outcome: 'mismatch' }

const KEEP_SECONDS = 24 * 3600
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')

/** The record's key: caller, route and the client's key, hashed (keys may hold any visible character). */
export function scopeOf (caller: string, route: string, key: string): string {
  return sha256(`${caller}\n${route}\n${key}`)
}

/**
 * The commit token of a keyed write: the same for every execution of it, so each can find the others' commit, and
 * new when the key is used again after its record expired (that is a new write).
 */
export const commitTokenOf = (scope: string, createdAt: number): string => `idem-${scope.slice(0, 32)}-${createdAt.toString(36)}`

export function createIdempotencyStore ({ ddb, table, leaseMs }: { ddb: DynamoDBDocumentClient, table: string, leaseMs: number }) {
  const keyOf = idempotencyKey

  async function read (scope: string): Promise<IdempotencyItem | undefined> {
    const { Item } = await ddb.send(new GetCommand({ TableName: table, Key: keyOf(scope), ConsistentRead: true }))
    return Item as IdempotencyItem | undefined
  }

  /** What the existing record says to a request that did not create it. */
  function judge (item: IdempotencyItem, fingerprint: string, now: number): Begin | 'take-over' {
    if (item.fingerprint !== fingerprint) return { outcome: 'mismatch' }
    if (item.state === 'done' && item.response !== undefined) return { outcome: 'replay', response: item.response }
    if (item.state === 'running' && item.leaseUntil > now) return { outcome: 'busy', retryAfterSeconds: Math.max(1, Math.min(30, Math.ceil((item.leaseUntil - now) / 1000))) }
    return 'take-over'
  }

  /**
   * Starts a keyed request: creates the record (this request runs), or answers what the existing one says. A record
   * that failed or whose lease lapsed is taken over with one conditional write on its previous owner.
   */
  async function begin (scope: string, fingerprint: string): Promise<Begin> {
    const owner = randomUUID()
    const now = Date.now()
    const item: IdempotencyItem = { state: 'running', owner, leaseUntil: now + leaseMs, fingerprint, createdAt: now, expiresAtEpoch: Math.floor(now / 1000) + KEEP_SECONDS }
    const created = await tryWrite(ddb, new PutCommand({
      TableName: table,
      Item: { ...keyOf(scope), ...item },
      // An expired record is as good as none where the backend has no TTL to delete it.
      ConditionExpression: 'attribute_not_exists(pk) OR expiresAtEpoch < :nowSeconds',
      ExpressionAttributeValues: { ':nowSeconds': Math.floor(now / 1000) },
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD'
    }))
    if (created.applied) return { outcome: 'run', owner, token: commitTokenOf(scope, now), mayExist: false, since: now }
    const existing = await itemBehindFailedCondition(ddb, table, keyOf(scope), created.failure) as IdempotencyItem | undefined
    if (existing === undefined) return await begin(scope, fingerprint)
    // The SDK retried our own put after it had landed.
    if (existing.owner === owner) return { outcome: 'run', owner, token: commitTokenOf(scope, now), mayExist: false, since: now }
    const verdict = judge(existing, fingerprint, now)
    if (verdict !== 'take-over') return verdict
    const takenOver = await writeIf(ddb, new UpdateCommand({
      TableName: table,
      Key: keyOf(scope),
      UpdateExpression: 'SET #state = :running, #owner = :owner, leaseUntil = :lease',
      // Only a failed record, or a running one whose lease has lapsed (its owner did not renew it meanwhile).
      ConditionExpression: '#owner = :previous AND #state = :previousState AND (#state <> :running OR leaseUntil < :now)',
      ExpressionAttributeNames: { '#state': 'state', '#owner': 'owner' },
      ExpressionAttributeValues: { ':running': 'running', ':owner': owner, ':lease': now + leaseMs, ':previous': existing.owner, ':previousState': existing.state, ':now': now }
    }))
    if (!takenOver) {
      const current = await read(scope)
      if (current?.owner !== owner) {
        const again = current === undefined ? 'take-over' : judge(current, fingerprint, Date.now())
        return again === 'take-over' ? { outcome: 'busy', retryAfterSeconds: 1 } : again
      }
    }
    return { outcome: 'run', owner, token: commitTokenOf(scope, existing.createdAt), mayExist: true, since: existing.createdAt }
  }

  /** Conditional on still owning the record: a request that lost it (lease lapsed, taken over) changes nothing. */
  async function update (scope: string, owner: string, expression: string, names: Record<string, string>, values: Record<string, unknown>): Promise<boolean> {
    return await writeIf(ddb, new UpdateCommand({
      TableName: table,
      Key: keyOf(scope),
      UpdateExpression: expression,
      ConditionExpression: '#owner = :owner',
      ExpressionAttributeNames: { '#owner': 'owner', ...names },
      ExpressionAttributeValues: { ':owner': owner, ...values }
    }))
  }

  return {
    begin,
    /** Keeps the running request's lease. */
    renew: async (scope: string, owner: string): Promise<boolean> =>
      await update(scope, owner, 'SET leaseUntil = :lease', {}, { ':lease': Date.now() + leaseMs }),
    /** Records the answer: repeats replay it from now on. */
    complete: async (scope: string, owner: string, response: RecordedResponse): Promise<boolean> =>
      await update(scope, owner, 'SET #state = :done, #response = :response REMOVE leaseUntil', { '#state': 'state', '#response': 'response' }, { ':done': 'done', ':response': response }),
    /** Frees the key after a failure that a repeat may cure (5xx): the next repeat runs again. */
    release: async (scope: string, owner: string): Promise<boolean> =>
      await update(scope, owner, 'SET #state = :failed, leaseUntil = :zero', { '#state': 'state' }, { ':failed': 'failed', ':zero': 0 })
  }
}

export type IdempotencyStore = ReturnType<typeof createIdempotencyStore>
