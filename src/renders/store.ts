// Render versions: the records of uploaded video files, their S3 keys, and presigned downloads. A render version is
// committed exactly once per write identity (src/versions/); its bytes were stored under a key unique to the upload.
// Scene clips: scenes.ts; the objects themselves: objects.ts.
import type { AwsClients } from '../aws/clients.js'
import type { Config } from '../config.js'
import { notFound } from '../errors.js'
import { decodeCursor, encodeCursor } from '../table/cursor.js'
import { versionSortKey, videoKey } from '../table/keys.js'
import { ensureVideoRecord, readVideoRecord } from '../table/video-record.js'
import { createVersions, type VersionedObjectsContext, type WriteIdentity } from '../versions/store.js'
import { deletedWhileStoring } from '../versions/publish.js'
import { copyObject, deleteObject, downloadUrl, withoutKeys } from './objects.js'
import { saveScene, scenes } from './scenes.js'
import type { RenderRecord, SceneClip as SceneClipSchema } from '../../schemas/renders.js'
import type { Static } from 'typebox'
import { bindContext } from '../stores.js'

// Where render bytes go is the table module's to say (src/table/keys.ts); SSE is src/aws/encryption.ts's.
export { sceneObjectKey, stagingKey, uploadObjectKey } from '../table/keys.js'
export { encryptionParams } from '../aws/encryption.js'

/** What an upload may say about its render. */
export type RenderDetails = Partial<Pick<RenderVersion, 'uploadId' | 'title' | 'durationSeconds' | 'resolution' | 'metadata'>>

/** A render version as stored: the API's RenderRecord without its download link and scenes. */
export type RenderVersion = Omit<Static<typeof RenderRecord>, 'downloadUrl' | 'expiresAt' | 'scenes'>

/** A scene clip as stored: the API's SceneClip without its download link. */
export type SceneClip = Omit<Static<typeof SceneClipSchema>, 'downloadUrl' | 'expiresAt'>

/** An object an upload stored, before it is a version or a scene. */
export interface StoredObject { key: string, ext: string, sizeBytes: number, sha256: string, contentType: string }

export const renderLocation = (projectId: string, videoId: string, version: number): string =>
  `/v1/projects/${projectId}/videos/${videoId}/renders/${version}`

export type RenderContext = VersionedObjectsContext

const RENDER_SK = /^RENDER#\d{9}$/
const defined = (attributes: Record<string, unknown>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(attributes).filter(([, value]) => value !== undefined))

const decodeRenderCursor = (cursor: string): string =>
  decodeCursor(cursor, ({ sk }) => typeof sk === 'string' && RENDER_SK.test(sk) ? sk : undefined)

/** The render version this identity committed before (a repeat of the same write), if any. */
export async function committedBy ({ versions }: RenderContext, projectId: string, videoId: string, identity: WriteIdentity): Promise<RenderVersion | undefined> {
  if (!identity.mayExist) return undefined
  const item = await versions.findByToken('RENDER', projectId, videoId, identity)
  return item === undefined ? undefined : withoutKeys<RenderVersion>(item)
}

/** What a render's commit says about the video on its record (the render's title stays on the render). */
const latestRenderHints = (render: RenderVersion, bucket: string): Record<string, unknown> => defined({
  status: 'uploaded',
  latestRenderKey: render.key,
  latestRenderSha256: render.sha256,
  currentVersionId: `v${render.version}`,
  s3Path: `s3://${bucket}/${render.key}`,
  sizeBytes: render.sizeBytes,
  sceneCount: 0,
  uploadCompletedAt: render.createdAt,
  durationSeconds: render.durationSeconds,
  resolution: render.resolution
})

/**
 * Makes a stored object the next render version, exactly once per identity: its item is written with one
 * conditional PutItem (src/versions/store.ts), then the video record's pointer moves forward. Creates the video record
 * if it is missing. An OutcomeUnknown failure means the version may still appear: its object must stay.
 */
export async function commit (context: RenderContext, identity: WriteIdentity, { projectId, videoId, stored, details = {} }: { projectId: string, videoId: string, stored: StoredObject, details?: RenderDetails }): Promise<{ render: RenderVersion, recovered: boolean }> {
  const { ddb, table, bucket, versions } = context
  await ensureVideoRecord(ddb, table, projectId, videoId)
  const committed = await versions.commit({
    kind: 'RENDER',
    projectId,
    videoId,
    identity,
    build: () => ({
      ...defined({ ...details }),
      itemType: 'render',
      projectId,
      videoId,
      bucket,
      key: stored.key,
      ext: stored.ext,
      sizeBytes: stored.sizeBytes,
      sha256: stored.sha256,
      contentType: stored.contentType,
      status: 'uploaded',
      sceneCount: 0,
      createdAt: new Date().toISOString()
    })
  })
  const render = withoutKeys<RenderVersion>(committed.item)
  // A video deleted meanwhile takes the version along; the caller removes its object (this is no unknown outcome).
  if (await versions.publish('RENDER', projectId, videoId, render.version, identity.token, latestRenderHints(render, bucket)) === 'gone') {
    throw deletedWhileStoring('RENDER', projectId, videoId)
  }
  return { render, recovered: committed.recovered }
}

/** One render version ('latest': the highest), or undefined. */
export async function get ({ versions }: RenderContext, projectId: string, videoId: string, version: number | 'latest'): Promise<RenderVersion | undefined> {
  const item = version === 'latest' ? await versions.latest('RENDER', projectId, videoId) : await versions.get('RENDER', projectId, videoId, version)
  return item === undefined ? undefined : withoutKeys<RenderVersion>(item)
}

/** Render versions newest first. */
export async function list ({ ddb, table, versions }: RenderContext, projectId: string, videoId: string, { limit, cursor }: { limit: number, cursor?: string }): Promise<{ items: RenderVersion[], nextCursor: string | null }> {
  const startKey = cursor === undefined ? undefined : { pk: videoKey(projectId, videoId).pk, sk: decodeRenderCursor(cursor) }
  if (await readVideoRecord(ddb, table, projectId, videoId) === undefined) throw notFound(`project ${projectId} has no video ${videoId}`)
  const page = await versions.page('RENDER', projectId, videoId, limit, startKey)
  const items = page.items.map((item) => withoutKeys<RenderVersion>(item))
  const last = items.at(-1)
  // Versions run 1..latest without gaps: a page that reached version 1 is the last one.
  const nextCursor = page.lastKey !== undefined && last !== undefined && last.version > 1 ? encodeCursor({ sk: versionSortKey('RENDER', last.version) }) : null
  return { items, nextCursor }
}

/** The answer to a finished upload (proxied or direct): the render's identity, its bytes and a fresh download link. */
export async function uploadedAnswer (context: RenderContext, render: RenderVersion, uploadId: string) {
  return {
    version: render.version,
    bucket: render.bucket,
    key: render.key,
    sizeBytes: render.sizeBytes,
    sha256: render.sha256,
    contentType: render.contentType,
    status: 'uploaded' as const,
    ...await downloadUrl(context, render),
    uploadId
  }
}

export function createRenderVersions ({ aws, config, log }: { aws: AwsClients, config: Config, log?: RenderContext['log'] }) {
  const versions = createVersions({ ddb: aws.ddb, table: config.table, commitDeadlineMs: config.commitDeadlineMs, log })
  const context: RenderContext = { s3: aws.s3, ddb: aws.ddb, table: config.table, bucket: config.videoBucket, config, versions, log }
  return bindContext(context, { commit, committedBy, get, list, downloadUrl, saveScene, scenes, copyObject, deleteObject, uploadedAnswer })
}

export type RenderVersions = ReturnType<typeof createRenderVersions>
