// The checkpoint items' keys in the service's one table, and the canonical form their content is compared in.
import { createHash } from 'node:crypto'

/*
 * Items, in the service's one table (keys never start with VIDEO# or IDEMP#, so nothing collides):
 *   thread index   pk=PROJECT#{p}#THREADS        sk=THREAD#{threadId}          (listing the project's threads)
 *   checkpoint     pk=PROJECT#{p}#THREAD#{t}     sk=CHECKPOINT#{ns}#{checkpointId}   written once, conditionally
 *   channel value  pk=PROJECT#{p}#THREAD#{t}     sk=BLOB#{ns}#{channel}#{version}    written once (first wins)
 *   pending write  pk=PROJECT#{p}#THREAD#{t}     sk=WRITE#{ns}#{checkpointId}#{taskId}#{idx}
 *                  idx >= 0 first wins (a repeat of the same task's write changes nothing); idx < 0 (LangGraph's
 *                  special writes: error, interrupt, resume) is replaced, as every LangGraph saver does
 * ns and channel are URI-encoded in keys, so '#' never occurs inside a key part. Checkpoint ids are uuid6: their
 * string order is their time order, so a descending query is newest first.
 * Payloads larger than INLINE_BYTES go to the video bucket under checkpoints/{p}/{t}/{sha256} (content-addressed, so
 * a repeated write rewrites the same object): the video bucket, not the code bucket, because code may sit under
 * Object Lock and versioning, where deleting a thread would leave its state behind; checkpoints are working state.
 */

const enc = (part: string): string => encodeURIComponent(part)
export const threadKey = (projectId: string, threadId: string): string => `PROJECT#${projectId}#THREAD#${threadId}`
export const threadsKey = (projectId: string): string => `PROJECT#${projectId}#THREADS`
export const threadIndexKey = (projectId: string, threadId: string): { pk: string, sk: string } => ({ pk: threadsKey(projectId), sk: `THREAD#${threadId}` })
export const checkpointSk = (ns: string, id: string): string => `CHECKPOINT#${enc(ns)}#${id}`
/** Every checkpoint of a namespace (or of all namespaces when ns is undefined). */
export const checkpointPrefix = (ns?: string): string => ns === undefined ? 'CHECKPOINT#' : `CHECKPOINT#${enc(ns)}#`
export const blobSk = (ns: string, channel: string, version: string): string => `BLOB#${enc(ns)}#${enc(channel)}#${enc(version)}`
export const writePrefix = (ns: string, checkpointId: string): string => `WRITE#${enc(ns)}#${checkpointId}#`

export const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')

/** Same content, whatever order its keys came in. */
export function canonical (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`
  if (typeof value === 'object' && value !== null) {
    return `{${Object.keys(value).sort().map((key) => `${JSON.stringify(key)}:${canonical((value as Record<string, unknown>)[key])}`).join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

export function metadataMatches (metadata: Record<string, unknown>, filter: Record<string, unknown> | undefined): boolean {
  if (filter === undefined) return true
  return Object.entries(filter).every(([key, value]) => canonical(metadata[key]) === canonical(value))
}
