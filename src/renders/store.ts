// Render versions: the records of uploaded video files, their S3 keys, and presigned downloads. A render version is
// committed exactly once per write identity (src/versions/store.ts); its bytes were stored under a key unique to the upload.
import { CopyObjectCommand, DeleteObjectCommand, GetObjectCommand } from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { DeleteCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb'
import type { AwsClients } from '../aws/clients.js'
import type { Config } from '../config.js'
import { conflict, notFound } from '../errors.js'
import { decodeCursor, encodeCursor } from '../table/cursor.js'
import { recordBestEffortFailure } from '../http/metrics.js'
import { ensureVideoRecord, isConditionFailure, MAX_VERSION, readVideoRecord, scenePrefix, sceneSortKey, versionSortKey, videoKey } from '../table/video-item.js'
import { createVersions, type WriteIdentity } from '../versions/store.js'

export interface RenderDetails {
  uploadId?: string
  title?: string
  durationSeconds?: number
  resolution?: string
  metadata?: Record<string, unknown>
}

export interface RenderVersion extends RenderDetails {
  projectId: string
  videoId: string
  version: number
  bucket: string
  key: string
  ext: string
  sizeBytes: number
  sha256: string
  contentType: string
  status: 'uploaded'
  sceneCount: number
  createdAt: string
}

export interface SceneClip {
  projectId: string
  videoId: string
  version: number
  sceneNumber: number
  bucket: string
  key: string
  sizeBytes: number
  sha256: string
  contentType: string
  createdAt: string
}

export interface StoredObject { key: string, ext: string, sizeBytes: number, sha256: string, contentType: string }

/** Where an upload's bytes go: unique to the upload, never to a version number, so nothing is copied into place. */
export const uploadObjectKey = (projectId: string, videoId: string, uploadId: string, ext: string): string =>
  `videos/${projectId}/${videoId}/uploads/${uploadId}/${videoId}.${ext}`
export const sceneObjectKey = (projectId: string, videoId: string, version: number, sceneNumber: number, uploadId: string, ext: string): string =>
  `videos/${projectId}/${videoId}/scenes/v${version}/${sceneNumber}/${uploadId}.${ext}`
export const renderLocation = (projectId: string, videoId: string, version: number): string =>
  `/v1/projects/${projectId}/videos/${videoId}/renders/${version}`
/** A direct single-PUT upload lands here and is copied to its upload key once verified (the URL may still be live). */
export const stagingKey = (projectId: string, videoId: string, uploadId: string, ext: string): string =>
  `staging/${projectId}/${videoId}/${uploadId}/${videoId}.${ext}`

/** The SSE parameters every object write carries (none when S3_SSE=none). */
export function encryptionParams (config: Config): { ServerSideEncryption?: 'AES256' | 'aws:kms', SSEKMSKeyId?: string } {
  if (config.sse.algorithm === 'none') return {}
  return { ServerSideEncryption: config.sse.algorithm, ...(config.sse.kmsKeyId !== undefined ? { SSEKMSKeyId: config.sse.kmsKeyId } : {}) }
}

const RENDER_SK = /^RENDER#\d{9}$/
const ITEM_KEYS = new Set(['pk', 'sk', 'itemType', 'commitToken'])
const strip = <T>(item: Record<string, unknown>): T => Object.fromEntries(Object.entries(item).filter(([name]) => !ITEM_KEYS.has(name))) as T
const defined = (attributes: Record<string, unknown>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(attributes).filter(([, value]) => value !== undefined))

const decodeRenderCursor = (cursor: string): string =>
  decodeCursor(cursor, ({ sk }) => typeof sk === 'string' && RENDER_SK.test(sk) ? sk : undefined)

type Log = { warn: (object: object, message: string) => void }

export function createRenderVersions ({ aws, config, log }: { aws: AwsClients, config: Config, log?: Log }) {
  const { s3, ddb } = aws
  const table = config.table
  const bucket = config.videoBucket
  const versions = createVersions({ ddb, table, commitDeadlineMs: config.commitDeadlineMs })

  /** Deletes an object nothing references (best effort: a failure is logged and counted, reconcile finds the object). */
  const deleteObject = async (key: string): Promise<void> => {
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })).catch((error: unknown) => { recordBestEffortFailure('video-object-cleanup', error, log) })
  }

  /** Server-side copy within the video bucket, with SSE and fresh metadata. */
  async function copyObject (fromKey: string, toKey: string, { contentType, metadata, ifMatch }: { contentType: string, metadata: Record<string, string>, ifMatch?: string }): Promise<void> {
    await s3.send(new CopyObjectCommand({
      Bucket: bucket,
      Key: toKey,
      CopySource: `${bucket}/${fromKey.split('/').map(encodeURIComponent).join('/')}`,
      CopySourceIfMatch: ifMatch,
      ContentType: contentType,
      MetadataDirective: 'REPLACE',
      Metadata: metadata,
      ...encryptionParams(config)
    }))
  }

  /** The render version this identity committed before (a repeat of the same write), if any. */
  async function committedBy (projectId: string, videoId: string, identity: WriteIdentity): Promise<RenderVersion | undefined> {
    if (!identity.mayExist) return undefined
    const item = await versions.findByToken('RENDER', projectId, videoId, identity)
    return item === undefined ? undefined : strip<RenderVersion>(item)
  }

  /**
   * Makes a stored object the next render version, exactly once per identity: its item is written with one
   * conditional PutItem (src/versions/store.ts), then the video record's pointer moves forward. Creates the video record
   * if it is missing. An OutcomeUnknown failure means the version may still appear: its object must stay.
   */
  async function commit (identity: WriteIdentity, { projectId, videoId, stored, details = {} }: { projectId: string, videoId: string, stored: StoredObject, details?: RenderDetails }): Promise<{ render: RenderVersion, recovered: boolean }> {
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
    const render = strip<RenderVersion>(committed.item)
    const advanced = await versions.advance('RENDER', projectId, videoId, render.version, defined({
      status: 'uploaded',
      latestRenderKey: render.key,
      latestRenderSha256: render.sha256,
      currentVersionId: `v${render.version}`,
      s3Path: `s3://${bucket}/${render.key}`,
      sizeBytes: render.sizeBytes,
      sceneCount: 0,
      uploadCompletedAt: render.createdAt,
      // the render's title stays on the render: the video's own title is the PUT/PATCH's to set
      durationSeconds: render.durationSeconds,
      resolution: render.resolution
    })).catch((error: unknown) => { recordBestEffortFailure('render-latest-pointer', error, log) })
    if (advanced === 'gone') {
      // The video was deleted (or a DELETE of it began) while this version was committed: the DELETE may not have seen
      // the item, so the version goes with its video; the caller removes its object (this is no unknown outcome).
      await versions.withdraw('RENDER', projectId, videoId, render.version, identity.token)
      throw conflict(`video ${projectId}/${videoId} was deleted (or a DELETE of it began and has not finished) while this render was being stored; nothing was kept`)
    }
    return { render, recovered: committed.recovered }
  }

  /** One render version ('latest': the highest), or undefined. */
  async function get (projectId: string, videoId: string, version: number | 'latest'): Promise<RenderVersion | undefined> {
    const item = version === 'latest' ? await versions.latest('RENDER', projectId, videoId) : await versions.get('RENDER', projectId, videoId, version)
    return item === undefined ? undefined : strip<RenderVersion>(item)
  }

  /** Render versions newest first. */
  async function list (projectId: string, videoId: string, { limit, cursor }: { limit: number, cursor?: string }): Promise<{ items: RenderVersion[], nextCursor: string | null }> {
    const pk = videoKey(projectId, videoId).pk
    const startKey = cursor === undefined ? undefined : { pk, sk: decodeRenderCursor(cursor) }
    if (await readVideoRecord(ddb, table, projectId, videoId) === undefined) throw notFound(`project ${projectId} has no video ${videoId}`)
    const page = await ddb.send(new QueryCommand({
      TableName: table,
      KeyConditionExpression: 'pk = :pk AND sk BETWEEN :first AND :last',
      ExpressionAttributeValues: { ':pk': pk, ':first': versionSortKey('RENDER', 1), ':last': versionSortKey('RENDER', MAX_VERSION) },
      ScanIndexForward: false,
      ConsistentRead: true,
      Limit: limit,
      ExclusiveStartKey: startKey
    }))
    const items = (page.Items ?? []).map((item) => strip<RenderVersion>(item))
    const last = items.at(-1)
    // Versions run 1..latest without gaps: a page that reached version 1 is the last one.
    const nextCursor = page.LastEvaluatedKey !== undefined && last !== undefined && last.version > 1 ? encodeCursor({ sk: versionSortKey('RENDER', last.version) }) : null
    return { items, nextCursor }
  }

  /** A fresh presigned GET for a render (or scene) object, valid for config.presignExpiresSeconds. */
  async function downloadUrl (record: { key: string, bucket?: string }): Promise<{ downloadUrl: string, expiresAt: string }> {
    const expiresIn = config.presignExpiresSeconds
    const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: record.bucket ?? bucket, Key: record.key }), { expiresIn })
    return { downloadUrl: url, expiresAt: new Date(Date.now() + expiresIn * 1000).toISOString() }
  }

  /** The answer to a finished upload (proxied or direct): the render's identity, its bytes and a fresh download link. */
  async function uploadedAnswer (render: RenderVersion, uploadId: string) {
    return {
      version: render.version,
      bucket: render.bucket,
      key: render.key,
      sizeBytes: render.sizeBytes,
      sha256: render.sha256,
      contentType: render.contentType,
      status: 'uploaded' as const,
      ...await downloadUrl(render),
      uploadId
    }
  }

  /**
   * Records (or replaces) one scene clip of a render version and refreshes the scene count. The clip's object is
   * unique to its upload; the one it replaces is deleted once the item no longer names it.
   */
  async function saveScene (render: RenderVersion, sceneNumber: number, stored: StoredObject): Promise<SceneClip> {
    const { projectId, videoId, version } = render
    const pk = videoKey(projectId, videoId).pk
    const scene: SceneClip = { projectId, videoId, version, sceneNumber, bucket, key: stored.key, sizeBytes: stored.sizeBytes, sha256: stored.sha256, contentType: stored.contentType, createdAt: new Date().toISOString() }
    const { Attributes: previous } = await ddb.send(new PutCommand({ TableName: table, Item: { pk, sk: sceneSortKey(version, sceneNumber), itemType: 'scene', ...scene }, ReturnValues: 'ALL_OLD' }))
    if (typeof previous?.key === 'string' && previous.key !== stored.key) await deleteObject(previous.key)
    const { Count } = await ddb.send(new QueryCommand({
      TableName: table,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
      ExpressionAttributeValues: { ':pk': pk, ':prefix': scenePrefix(version) },
      Select: 'COUNT',
      ConsistentRead: true
    }))
    const sceneCount = Count ?? 0
    try {
      // Only on the version item that exists: an unconditional update would make a stub RENDER# item (no version,
      // no token) for a render deleted meanwhile, and every later commit of the video would collide with it.
      await ddb.send(new UpdateCommand({
        TableName: table,
        Key: { pk, sk: versionSortKey('RENDER', version) },
        UpdateExpression: 'SET sceneCount = :count',
        ConditionExpression: 'attribute_exists(sk)',
        ExpressionAttributeValues: { ':count': sceneCount }
      }))
    } catch (error) {
      if (!isConditionFailure(error)) throw error
      // The render version went (its video was deleted) while the clip was uploading: the clip's item goes too.
      await ddb.send(new DeleteCommand({
        TableName: table,
        Key: { pk, sk: sceneSortKey(version, sceneNumber) },
        ConditionExpression: '#key = :key',
        ExpressionAttributeNames: { '#key': 'key' },
        ExpressionAttributeValues: { ':key': stored.key }
      })).catch((cleanup: unknown) => { if (!isConditionFailure(cleanup)) throw cleanup })
      throw notFound(`render version ${version} of video ${projectId}/${videoId} was deleted while the scene was uploading`)
    }
    // The video record counts the scenes of its latest render only.
    await ddb.send(new UpdateCommand({
      TableName: table,
      Key: videoKey(projectId, videoId),
      UpdateExpression: 'SET sceneCount = :count',
      ConditionExpression: 'latestRenderVersion = :version',
      ExpressionAttributeValues: { ':count': sceneCount, ':version': version }
    })).catch((error: unknown) => { if (!isConditionFailure(error)) throw error })
    return scene
  }

  /** The scene clips of one render version, in scene order. */
  async function scenes (projectId: string, videoId: string, version: number): Promise<SceneClip[]> {
    const clips: SceneClip[] = []
    let startKey: Record<string, unknown> | undefined
    do {
      const page = await ddb.send(new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
        ExpressionAttributeValues: { ':pk': videoKey(projectId, videoId).pk, ':prefix': scenePrefix(version) },
        ConsistentRead: true,
        ExclusiveStartKey: startKey
      }))
      clips.push(...(page.Items ?? []).map((item) => strip<SceneClip>(item)))
      startKey = page.LastEvaluatedKey
    } while (startKey !== undefined)
    return clips
  }

  return { commit, committedBy, get, list, downloadUrl, saveScene, scenes, copyObject, deleteObject, uploadedAnswer }
}

export type RenderVersions = ReturnType<typeof createRenderVersions>
