// Reading versions: the latest, one by number, a page newest first, and the one a write identity committed.
import { GetCommand, QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb'
import type { recordBestEffortFailure } from '../http/metrics.js'
import { versionKey, versionRange, videoKey, type VersionKind } from '../table/keys.js'
import type { WriteIdentity } from './identity.js'

export interface VersionTable {
  ddb: DynamoDBDocumentClient
  table: string
  /** where best-effort failures (a pointer that did not move, an owner that could not be read) are logged */
  log?: Parameters<typeof recordBestEffortFailure>[2]
}

type Item = Record<string, unknown>

/** Commit requests whose answers are in doubt may land late; writers look this far back for their token. */
const CLOCK_SKEW_MS = 5 * 60_000
const SEARCH_PAGE = 50

/** One page of a kind's version items, newest first (one consistent Query), and where the next page starts. */
export async function versionPage ({ ddb, table }: VersionTable, kind: VersionKind, projectId: string, videoId: string, limit: number, startKey?: Item): Promise<{ items: Item[], lastKey?: Item }> {
  const { Items = [], LastEvaluatedKey } = await ddb.send(new QueryCommand({
    TableName: table,
    KeyConditionExpression: 'pk = :pk AND sk BETWEEN :first AND :last',
    ExpressionAttributeValues: { ':pk': videoKey(projectId, videoId).pk, ...versionRange(kind) },
    ScanIndexForward: false,
    ConsistentRead: true,
    Limit: limit,
    ExclusiveStartKey: startKey
  }))
  return { items: Items, lastKey: LastEvaluatedKey }
}

/** The newest version item of a kind (undefined when there is none). */
export async function latestVersion (context: VersionTable, kind: VersionKind, projectId: string, videoId: string): Promise<Item | undefined> {
  return (await versionPage(context, kind, projectId, videoId, 1)).items[0]
}

/** One version item, read consistently. */
export async function getVersion ({ ddb, table }: VersionTable, kind: VersionKind, projectId: string, videoId: string, version: number): Promise<Item | undefined> {
  const { Item } = await ddb.send(new GetCommand({ TableName: table, Key: versionKey(kind, projectId, videoId, version), ConsistentRead: true }))
  return Item
}

/**
 * The version this token committed, searching down from the latest to items older than `since` (minus clock
 * skew). Runs after the latest was read, so a commit of this token that landed before that read is found here.
 */
export async function findByToken (context: VersionTable, kind: VersionKind, projectId: string, videoId: string, identity: WriteIdentity): Promise<Item | undefined> {
  const oldest = identity.since === undefined ? undefined : new Date(identity.since - CLOCK_SKEW_MS).toISOString()
  let startKey: Item | undefined
  do {
    const page = await versionPage(context, kind, projectId, videoId, SEARCH_PAGE, startKey)
    for (const item of page.items) {
      if (item.commitToken === identity.token) return item
      if (oldest !== undefined && typeof item.createdAt === 'string' && item.createdAt < oldest) return undefined
    }
    startKey = page.lastKey
  } while (startKey !== undefined)
  return undefined
}

/** The version this identity committed: the latest (`top`, just read) when it carries the token, else a search. */
export async function commitOf (context: VersionTable, kind: VersionKind, projectId: string, videoId: string, identity: WriteIdentity, top: Item | undefined): Promise<Item | undefined> {
  return top?.commitToken === identity.token ? top : await findByToken(context, kind, projectId, videoId, identity)
}
