// After a commit: the video record's latest pointer moves forward (best effort), and a version whose video was
// deleted meanwhile is withdrawn by its own writer.
import { DeleteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb'
import { conflict, type HttpProblem } from '../errors.js'
import { recordBestEffortFailure } from '../http/metrics.js'
import { versionKey, videoKey, type VersionKind } from '../table/keys.js'
import { itemBehindFailedCondition, setClauses, tryWrite, writeIf } from '../table/conditions.js'
import { DELETE_MARK, LATEST_ATTRIBUTE } from '../table/video-record.js'
import type { VersionTable } from './read.js'

/**
 * Moves the video record's latest pointer (and what it says about the latest) forward to `version`, never back.
 * Best effort after a commit: the version item is the truth, and reconcile or the next commit catch a lagging
 * pointer. A deleted video is not brought back: 'gone' when the record is missing or a DELETE has begun on it
 * (DELETE_MARK), so the writer knows its version may be left without its video (see deleteVideo); 'ahead' when the
 * pointer already names this version or a later one.
 */
export async function advance ({ ddb, table }: VersionTable, kind: VersionKind, projectId: string, videoId: string, version: number, set: Record<string, unknown> = {}): Promise<'advanced' | 'ahead' | 'gone'> {
  const outcome = await tryWrite(ddb, advanceCommand(table, videoKey(projectId, videoId), kind, version, set))
  if (outcome.applied) return 'advanced'
  const record = await itemBehindFailedCondition(ddb, table, videoKey(projectId, videoId), outcome.failure)
  return record === undefined || record[DELETE_MARK] !== undefined ? 'gone' : 'ahead'
}

/**
 * The conditional update that moves a video record's latest pointer of a kind forward to `version` (never back, never
 * on a missing record or one a DELETE has marked), with `set` and a fresh updatedAt (unless `set` carries one), +1
 * revision. advance sends it after a commit; reconcile --fix sends it for a lagging pointer.
 */
export function advanceCommand (table: string, key: { pk: string, sk: string }, kind: VersionKind, version: number, set: Record<string, unknown>): UpdateCommand {
  const extra = setClauses({ updatedAt: new Date().toISOString(), ...set })
  return new UpdateCommand({
    TableName: table,
    Key: key,
    UpdateExpression: `SET #latest = :version, ${extra.clauses.join(', ')} ADD revision :one`,
    ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(#deleting) AND (attribute_not_exists(#latest) OR #latest < :version)',
    ExpressionAttributeNames: { '#latest': LATEST_ATTRIBUTE[kind], '#deleting': DELETE_MARK, ...extra.names },
    ExpressionAttributeValues: { ':version': version, ':one': 1, ...extra.values },
    ReturnValuesOnConditionCheckFailure: 'ALL_OLD'
  })
}

/**
 * Removes a version this token committed (only its own: the condition names the token). For a writer whose video
 * was deleted while it committed: the DELETE may have listed the items before this one landed.
 */
export async function withdraw ({ ddb, table }: VersionTable, kind: VersionKind, projectId: string, videoId: string, version: number, token: string): Promise<void> {
  await writeIf(ddb, new DeleteCommand({
    TableName: table,
    Key: versionKey(kind, projectId, videoId, version),
    ConditionExpression: 'commitToken = :token',
    ExpressionAttributeValues: { ':token': token }
  }))
}

/** The 409 for a writer whose video was deleted (or began to be) while its version was committed: nothing was kept. */
export const deletedWhileStoring = (kind: VersionKind, projectId: string, videoId: string): HttpProblem =>
  conflict(`video ${projectId}/${videoId} was deleted (or a DELETE of it began and has not finished) while this ${kind === 'CODE' ? 'code version' : 'render'} was being stored; nothing was kept`)

/**
 * Makes a committed version the video's latest (advance, best effort: a failure is logged and counted). When the
 * video was deleted meanwhile the version goes with it (withdraw) and the answer is 'gone': the caller removes what
 * the version referenced and answers deletedWhileStoring. That is no unknown outcome.
 */
export async function publish (context: VersionTable, kind: VersionKind, projectId: string, videoId: string, version: number, token: string, set: Record<string, unknown>): Promise<'published' | 'gone'> {
  const advanced = await advance(context, kind, projectId, videoId, version, set)
    .catch((error: unknown) => { recordBestEffortFailure(`${kind.toLowerCase()}-latest-pointer`, error, context.log) })
  if (advanced !== 'gone') return 'published'
  await withdraw(context, kind, projectId, videoId, version, token)
  return 'gone'
}
