// Conditional writes: a failed condition is an answer (false, or the item it was checked against), not an error.
import { GetCommand, type DeleteCommand, type DynamoDBDocumentClient, type PutCommand, type UpdateCommand } from '@aws-sdk/lib-dynamodb'
import { unmarshall } from '@aws-sdk/util-dynamodb'

export const isConditionFailure = (error: unknown): boolean => (error as { name?: string }).name === 'ConditionalCheckFailedException'

type Command = PutCommand | UpdateCommand | DeleteCommand

/** What a conditional write did: applied (with the SDK's answer), or refused by its condition (with the error). */
export type WriteOutcome = { applied: true, output: Record<string, unknown> } | { applied: false, failure: unknown }

/**
 * Sends a conditional write (Put, Update or Delete). A failed condition comes back as `applied: false`; anything
 * else (a timeout, a throttle) is thrown, since it may have landed.
 */
export async function tryWrite (ddb: DynamoDBDocumentClient, command: Command): Promise<WriteOutcome> {
  try {
    return { applied: true, output: await ddb.send(command as PutCommand) as Record<string, unknown> }
  } catch (error) {
    if (isConditionFailure(error)) return { applied: false, failure: error }
    throw error
  }
}

/** A conditional write whose failed condition means false (or "ignore"): true when it was applied. */
export async function writeIf (ddb: DynamoDBDocumentClient, command: Command): Promise<boolean> {
  return (await tryWrite(ddb, command)).applied
}

/**
 * The item a failed condition was checked against: the one the error carries where the backend returns it
 * (ReturnValuesOnConditionCheckFailure; the document client leaves it marshalled), else a consistent read.
 */
export async function itemBehindFailedCondition (ddb: DynamoDBDocumentClient, table: string, key: { pk: string, sk: string }, error: unknown): Promise<Record<string, unknown> | undefined> {
  const returned = (error as { Item?: Parameters<typeof unmarshall>[0] } | undefined)?.Item
  if (returned !== undefined && Object.keys(returned).length > 0) return unmarshall(returned)
  const { Item } = await ddb.send(new GetCommand({ TableName: table, Key: key, ConsistentRead: true }))
  return Item
}

/** `#p0 = :p0, …` for a map of attributes (undefined values skipped), with the names and values to send. */
export function setClauses (attributes: Record<string, unknown>, prefix = 'a'): { clauses: string[], names: Record<string, string>, values: Record<string, unknown> } {
  const names: Record<string, string> = {}
  const values: Record<string, unknown> = {}
  const clauses = Object.entries(attributes).filter(([, value]) => value !== undefined).map(([name, value], index) => {
    names[`#${prefix}${index}`] = name
    values[`:${prefix}${index}`] = value
    return `#${prefix}${index} = :${prefix}${index}`
  })
  return { clauses, names, values }
}
