// A @fastify/rate-limit store in the service's DynamoDB table, so every replica counts against one budget per key.
// One item per key and fixed window (aligned to the clock, so replicas agree on the window), incremented with an
// atomic ADD; its expiresAtEpoch lets DynamoDB's TTL remove it after the window.
import { UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb'
import { TABLE_KEYS } from '../ops/provision.js'

type Callback = (error: Error | null, result?: { current: number, ttl: number }) => void

export interface RateLimitCounter {
  /** adds one to the key's count in the current window; answers the count and the ms left in the window */
  incr: (key: string, callback: Callback, timeWindow: number, max: number) => void
  child: () => RateLimitCounter
}

/** A store class for @fastify/rate-limit's `store` option (it constructs the class itself). */
export function dynamoRateLimitStore (ddb: DynamoDBDocumentClient, table: string, now: () => number = Date.now): new () => RateLimitCounter {
  return class DynamoRateLimitStore implements RateLimitCounter {
    incr (key: string, callback: Callback, timeWindow: number): void {
      const at = now()
      const windowStart = Math.floor(at / timeWindow) * timeWindow
      const windowEnd = windowStart + timeWindow
      ddb.send(new UpdateCommand({
        TableName: table,
        Key: { [TABLE_KEYS.partitionKey]: `RATELIMIT#${key}`, [TABLE_KEYS.sortKey]: `WINDOW#${windowStart}` },
        UpdateExpression: 'ADD hits :one SET #ttl = if_not_exists(#ttl, :expires)',
        ExpressionAttributeNames: { '#ttl': TABLE_KEYS.ttlAttribute },
        ExpressionAttributeValues: { ':one': 1, ':expires': Math.ceil(windowEnd / 1000) + 60 },
        ReturnValues: 'UPDATED_NEW'
      })).then(
        (result) => { callback(null, { current: Number(result.Attributes?.hits ?? 1), ttl: Math.max(1, windowEnd - at) }) },
        (error: Error) => { callback(error) }
      )
    }

    child (): RateLimitCounter {
      return this
    }
  }
}
