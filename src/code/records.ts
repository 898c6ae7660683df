// The code version item in DynamoDB (sk CODE#{version:09d}) and the list cursor over those items.
import { decodeCursor, encodeCursor } from '../table/cursor.js'
import { videoKey } from '../table/keys.js'
import type { CodeVersionType, CodeVersionWithContentType } from '../../schemas/code.js'

// The object key of a version is the table module's to say (src/table/keys.ts).
export { codeObjectKey } from '../table/keys.js'

/** A code version as stored: the API's CodeVersion, with the video it belongs to. */
export type CodeVersionRecord = CodeVersionType & { projectId: string, videoId: string }

/** A code version with its content and a download link: the API's CodeVersionWithContent, with its video. */
export type CodeVersionView = CodeVersionWithContentType & { projectId: string, videoId: string }

export function toCodeVersion (item: Record<string, unknown>): CodeVersionRecord {
  const { pk: _pk, sk: _sk, kind: _kind, commitToken: _token, ...fields } = item
  return fields as unknown as CodeVersionRecord
}

/** The cursor after a page of code versions (null after the last page). */
export function encodeCodeCursor (lastKey: Record<string, unknown> | undefined): string | null {
  return lastKey === undefined ? null : encodeCursor({ pk: lastKey.pk, sk: lastKey.sk })
}

/** A cursor this service issued for this video's code list; anything else is a 400. */
export function decodeCodeCursor (cursor: string, projectId: string, videoId: string): { pk: string, sk: string } {
  return decodeCursor(cursor, ({ pk, sk }) =>
    pk === videoKey(projectId, videoId).pk && typeof sk === 'string' && /^CODE#[0-9]{9}$/.test(sk) ? { pk, sk } : undefined, ' for this video')
}
