// The code version item in DynamoDB (sk CODE#{version:09d}) and the list cursor over those items.
import { badRequest } from '../errors.js'
import { videoKey } from '../video-records.js'
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

export function codeObjectKey (projectId: string, videoId: string, version: number, filename: string): string {
  return `code/${projectId}/${videoId}/v${version}/${filename}`
}

export function toCodeVersion (item: Record<string, unknown>): CodeVersionRecord {
  const { pk: _pk, sk: _sk, kind: _kind, ...fields } = item
  return fields as unknown as CodeVersionRecord
}

export function encodeCursor (lastKey: Record<string, unknown> | undefined): string | null {
  return lastKey === undefined ? null : Buffer.from(JSON.stringify({ pk: lastKey.pk, sk: lastKey.sk })).toString('base64url')
}

/** A cursor this service issued for this video's code list; anything else is a 400. */
export function decodeCursor (cursor: string, projectId: string, videoId: string): { pk: string, sk: string } {
  let decoded: unknown
  try {
    decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch {
    throw badRequest('cursor is not one this service issued')
  }
  const { pk, sk } = (typeof decoded === 'object' && decoded !== null ? decoded : {}) as { pk?: unknown, sk?: unknown }
  if (pk !== videoKey(projectId, videoId).pk || typeof sk !== 'string' || !/^CODE#[0-9]{9}$/.test(sk)) {
    throw badRequest('cursor is not one this service issued for this video')
  }
  return { pk, sk }
}
