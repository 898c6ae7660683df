// The code version item in DynamoDB (sk CODE#{version:09d}) and the list cursor over those items.
import { decodeCursor, encodeCursor } from '../table/cursor.js'
import { videoKey } from '../table/video-item.js'
import type { CodeLockState } from './object-lock.js'

export interface CodeVersionRecord {
  projectId: string
  videoId: string
  version: number
  filename: string
  key: string
  bucket: string
  sha256: string
  sizeBytes: number
  contentType: string
  createdAt: string
  message?: string
  language?: string
  sceneNumber?: number
  locked: boolean
  lock?: CodeLockState
}

/** Unique to the write (its commit token), never to a version number: a repeat of the write puts the same bytes there. */
export function codeObjectKey (projectId: string, videoId: string, token: string, filename: string): string {
  return `code/${projectId}/${videoId}/${token}/${filename}`
}

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
