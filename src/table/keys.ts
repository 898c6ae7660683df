// Where everything is stored: the item keys of the one table and the S3 object keys of both buckets. Every store
// builds its keys here, so the layout is written down once.

/*
 * Items, all in one table with string keys pk / sk:
 *   video record         pk=VIDEO#{projectId}#{videoId}  sk=VIDEO
 *                        gsi1pk=PROJECT#{projectId} gsi1sk={createdAt}#{videoId}  (project listing, newest first)
 *                        attributes: see VideoRecord (src/table/video-record.ts)
 *   code version         pk=VIDEO#…  sk=CODE#{version:09d}     written once, conditionally; carries commitToken
 *   render version       pk=VIDEO#…  sk=RENDER#{version:09d}   written once, conditionally; carries commitToken
 *   scene clip           pk=VIDEO#…  sk=SCENE#{version:09d}#{scene:05d}
 *   upload session       pk=VIDEO#…  sk=UPLOAD#{uploadId}   (expiresAtEpoch: TTL)
 *   idempotency record   pk=IDEMP#{sha256 of caller, route, key}  sk=IDEMP   (expiresAtEpoch: TTL)
 *   checkpoint items     pk=PROJECT#{p}#THREADS / PROJECT#{p}#THREAD#{t}  (src/checkpoints/keys.ts)
 * IDs match ^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$, so '#' never occurs inside them.
 *
 * Objects:
 *   video bucket  videos/{p}/{v}/uploads/{uploadId}/{v}.{ext}           a render's bytes (unique to its upload)
 *                 videos/{p}/{v}/scenes/v{n}/{scene}/{uploadId}.{ext}   a scene clip
 *                 staging/{p}/{v}/{uploadId}/{v}.{ext}                  a direct single-PUT upload before its check
 *                 checkpoints/{p}/{t}/{sha256}                          a large checkpoint payload
 *   code bucket   code/{p}/{v}/{commitToken}/{filename}                 a code version's file (unique to its write)
 */
export function videoKey (projectId: string, videoId: string): { pk: string, sk: string } {
  return { pk: `VIDEO#${projectId}#${videoId}`, sk: 'VIDEO' }
}

export function projectIndexKey (projectId: string): string {
  return `PROJECT#${projectId}`
}

export type VersionKind = 'CODE' | 'RENDER'

export const MAX_VERSION = 999_999_999

export function versionSortKey (kind: VersionKind, version: number): string {
  return `${kind}#${String(version).padStart(9, '0')}`
}

/** The key of version n of a kind. */
export function versionKey (kind: VersionKind, projectId: string, videoId: string, version: number): { pk: string, sk: string } {
  return { pk: videoKey(projectId, videoId).pk, sk: versionSortKey(kind, version) }
}

/** The sort-key range of every version of a kind, as a Query's :first / :last. */
export function versionRange (kind: VersionKind): { ':first': string, ':last': string } {
  return { ':first': versionSortKey(kind, 1), ':last': versionSortKey(kind, MAX_VERSION) }
}

export function sceneSortKey (version: number, sceneNumber: number): string {
  return `SCENE#${String(version).padStart(9, '0')}#${String(sceneNumber).padStart(5, '0')}`
}

export function scenePrefix (version: number): string {
  return `SCENE#${String(version).padStart(9, '0')}#`
}

export function uploadSortKey (uploadId: string): string {
  return `UPLOAD#${uploadId}`
}

export function idempotencyKey (scope: string): { pk: string, sk: string } {
  return { pk: `IDEMP#${scope}`, sk: 'IDEMP' }
}

/** The top-level folders a video's objects live under, in either bucket (a video DELETE empties each). */
export const VIDEO_OBJECT_ROOTS = ['videos/', 'code/', 'staging/'] as const

/** Objects of pending direct uploads (kept longer by reconcile, expired by the bucket's lifecycle rule). */
export const STAGING_ROOT = 'staging/'

/** The folder of one video under a root ('videos/' by default: where its renders and scenes are). */
export const videoObjectPrefix = (projectId: string, videoId: string, root: typeof VIDEO_OBJECT_ROOTS[number] = 'videos/'): string =>
  `${root}${projectId}/${videoId}/`

/** Where an upload's bytes go: unique to the upload, never to a version number, so nothing is copied into place. */
export const uploadObjectKey = (projectId: string, videoId: string, uploadId: string, ext: string): string =>
  `${videoObjectPrefix(projectId, videoId)}uploads/${uploadId}/${videoId}.${ext}`

/** Where a tus upload holds bytes that do not yet fill a multipart part. */
export const heldPartKey = (projectId: string, videoId: string, uploadId: string, id: string): string =>
  `${videoObjectPrefix(projectId, videoId)}uploads/${uploadId}/tus-incomplete-part-${id}`

export const sceneObjectKey = (projectId: string, videoId: string, version: number, sceneNumber: number, uploadId: string, ext: string): string =>
  `${videoObjectPrefix(projectId, videoId)}scenes/v${version}/${sceneNumber}/${uploadId}.${ext}`

/** A direct single-PUT upload lands here and is copied to its upload key once verified (the URL may still be live). */
export const stagingKey = (projectId: string, videoId: string, uploadId: string, ext: string): string =>
  `${videoObjectPrefix(projectId, videoId, STAGING_ROOT)}${uploadId}/${videoId}.${ext}`

/** Unique to the write (its commit token), never to a version number: a repeat of the write puts the same bytes there. */
export const codeObjectKey = (projectId: string, videoId: string, token: string, filename: string): string =>
  `${videoObjectPrefix(projectId, videoId, 'code/')}${token}/${filename}`

/** Large checkpoint payloads of one thread (content-addressed below it). */
export const checkpointObjectPrefix = (projectId: string, threadId: string): string => `checkpoints/${projectId}/${threadId}/`
