// Render versions: the records of uploaded video files, their S3 keys, and presigned downloads.
import { CopyObjectCommand, DeleteObjectCommand, GetObjectCommand } from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { DeleteCommand, GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb'
import type { AwsClients } from './aws/clients.js'
import type { Config } from './config.js'
import { notFound } from './errors.js'
import { decodeCursor, encodeCursor } from './cursor.js'
import { sceneSortKey, versionSortKey, videoKey, type VersionClaim, type VersionClaims } from './video-records.js'

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

export const renderKey = (projectId: string, videoId: string, version: number, ext: string): string =>
  `videos/${projectId}/${videoId}/v${version}/${videoId}.${ext}`
export const sceneKey = (projectId: string, videoId: string, version: number, sceneNumber: number, ext: string): string =>
  `videos/${projectId}/${videoId}/v${version}/scenes/${sceneNumber}.${ext}`
export const renderLocation = (projectId: string, videoId: string, version: number): string =>
  `/v1/projects/${projectId}/videos/${videoId}/renders/${version}`
export const stagingKey = (projectId: string, videoId: string, uploadId: string, ext: string): string =>
  `staging/${projectId}/${videoId}/${uploadId}/${videoId}.${ext}`

/** The SSE parameters every object write carries (none when S3_SSE=none). */
export function encryptionParams (config: Config): { ServerSideEncryption?: 'AES256' | 'aws:kms', SSEKMSKeyId?: string } {
  if (config.sse.algorithm === 'none') return {}
  return { ServerSideEncryption: config.sse.algorithm, ...(config.sse.kmsKeyId !== undefined ? { SSEKMSKeyId: config.sse.kmsKeyId } : {}) }
}

const RENDER_SK = /^RENDER#\d{9}$/
/** How often a held render claim is renewed while a long write (upload, copy) runs. */
export const CLAIM_KEEPALIVE_MS = 15_000
const ITEM_KEYS = new Set(['pk', 'sk', 'itemType'])
const strip = <T>(item: Record<string, unknown>): T => Object.fromEntries(Object.entries(item).filter(([name]) => !ITEM_KEYS.has(name))) as T
const defined = (attributes: Record<string, unknown>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(attributes).filter(([, value]) => value !== undefined))

const decodeRenderCursor = (cursor: string): string =>
  decodeCursor(cursor, ({ sk }) => typeof sk === 'string' && RENDER_SK.test(sk) ? sk : undefined)

export function createRenderVersions ({ aws, config, claims }: { aws: AwsClients, config: Config, claims: VersionClaims }) {
  const { s3, ddb } = aws
  const table = config.table
  const bucket = config.videoBucket

  const deleteObject = async (key: string): Promise<void> => {
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })).catch(() => {})
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

  /**
   * Records an object already stored at renderKey(claim.version) as that render version: PutItem the render item,
   * then commit the claim (the video record's latest render). On failure the item is removed again; the caller
   * releases the claim and deletes the object.
   */
  async function commitClaimed (claim: VersionClaim, stored: StoredObject, details: RenderDetails = {}): Promise<RenderVersion> {
    const { projectId, videoId, version } = claim
    const record: RenderVersion = {
      ...defined({ ...details }),
      projectId,
      videoId,
      version,
      bucket,
      key: stored.key,
      ext: stored.ext,
      sizeBytes: stored.sizeBytes,
      sha256: stored.sha256,
      contentType: stored.contentType,
      status: 'uploaded',
      sceneCount: 0,
      createdAt: new Date().toISOString()
    }
    const itemKey = { pk: videoKey(projectId, videoId).pk, sk: versionSortKey('RENDER', version) }
    // No condition: the claim makes this number ours, and an item a failed writer left behind is invisible (readers
    // stop at the committed latest) and is replaced here.
    await ddb.send(new PutCommand({ TableName: table, Item: { ...itemKey, itemType: 'render', ...record } }))
    try {
      await claims.commit(claim, defined({
        status: 'uploaded',
        latestRenderKey: stored.key,
        latestRenderSha256: stored.sha256,
        currentVersionId: `v${version}`,
        s3Path: `s3://${bucket}/${stored.key}`,
        sizeBytes: stored.sizeBytes,
        sceneCount: 0,
        uploadCompletedAt: record.createdAt,
        // the render's title stays on the render: the video's own title is the PUT/PATCH's to set
        durationSeconds: details.durationSeconds,
        resolution: details.resolution
      }))
    } catch (error) {
      // claims.commit returns when a commit whose answer was lost did land; here it did not. Clean up only while the
      // number is still ours: after the claim expired another writer may own this item.
      if (await claims.holds(claim).catch(() => true)) await ddb.send(new DeleteCommand({ TableName: table, Key: itemKey })).catch(() => {})
      throw error
    }
    return record
  }

  /**
   * Turns a staged object into the next render version: claim, server-side copy to the final key, record, commit,
   * delete the staging object. Any failure releases the claim and deletes the copy, so nothing becomes visible.
   */
  async function commitFromStaging ({ projectId, videoId, stagingKey: fromKey, ext, sizeBytes, sha256, contentType, details, waitMs, ifMatch }: {
    projectId: string, videoId: string, stagingKey: string, ext: string, sizeBytes: number, sha256: string, contentType: string, details?: RenderDetails, waitMs?: number
    /** the staged object's ETag as it was verified: a different object is not copied */
    ifMatch?: string
  }): Promise<RenderVersion> {
    const claim = await claims.claim({ kind: 'RENDER', projectId, videoId, waitMs })
    const key = renderKey(projectId, videoId, claim.version, ext)
    // A copy of a large object takes a while: the claim must outlive it.
    const keepAlive = setInterval(() => { claims.extend(claim).catch(() => {}) }, CLAIM_KEEPALIVE_MS)
    let copied = false
    try {
      await copyObject(fromKey, key, { contentType, metadata: { 'project-id': projectId, 'video-id': videoId, version: String(claim.version), sha256 }, ifMatch })
      copied = true
      const record = await commitClaimed(claim, { key, ext, sizeBytes, sha256, contentType }, details)
      await deleteObject(fromKey)
      return record
    } catch (error) {
      if (await claims.holds(claim).catch(() => true)) {
        if (copied) await deleteObject(key)
        await claims.release(claim).catch(() => {})
      }
      throw error
    } finally {
      clearInterval(keepAlive)
    }
  }

  /** The latest committed render version of a video (0 when none; undefined for an unknown video): readers never look past it. */
  async function committedLatest (projectId: string, videoId: string): Promise<number | undefined> {
    const { Item } = await ddb.send(new GetCommand({ TableName: table, Key: videoKey(projectId, videoId), ConsistentRead: true, ProjectionExpression: 'pk, latestRenderVersion' }))
    return Item === undefined ? undefined : (Item.latestRenderVersion as number | undefined) ?? 0
  }

  /** One committed render version ('latest' follows the video record), or undefined. */
  async function get (projectId: string, videoId: string, version: number | 'latest'): Promise<RenderVersion | undefined> {
    const latest = await committedLatest(projectId, videoId) ?? 0
    const number = version === 'latest' ? latest : version
    if (number < 1 || number > latest) return undefined
    const { Item } = await ddb.send(new GetCommand({ TableName: table, Key: { pk: videoKey(projectId, videoId).pk, sk: versionSortKey('RENDER', number) }, ConsistentRead: true }))
    return Item === undefined ? undefined : strip<RenderVersion>(Item)
  }

  /** Committed render versions newest first; scene items share the sort-key prefix and are skipped. */
  async function list (projectId: string, videoId: string, { limit, cursor }: { limit: number, cursor?: string }): Promise<{ items: RenderVersion[], nextCursor: string | null }> {
    const pk = videoKey(projectId, videoId).pk
    const latest = await committedLatest(projectId, videoId)
    if (latest === undefined) throw notFound(`project ${projectId} has no video ${videoId}`)
    if (latest === 0) return { items: [], nextCursor: null }
    let startKey: Record<string, unknown> | undefined = cursor === undefined ? undefined : { pk, sk: decodeRenderCursor(cursor) }
    const items: RenderVersion[] = []
    do {
      const page = await ddb.send(new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :pk AND sk BETWEEN :first AND :latest',
        FilterExpression: 'itemType = :render',
        ExpressionAttributeValues: { ':pk': pk, ':first': versionSortKey('RENDER', 1), ':latest': versionSortKey('RENDER', latest), ':render': 'render' },
        ScanIndexForward: false,
        ConsistentRead: true,
        Limit: limit + 1,
        ExclusiveStartKey: startKey
      }))
      items.push(...(page.Items ?? []).map((item) => strip<RenderVersion>(item)))
      startKey = page.LastEvaluatedKey
    } while (items.length <= limit && startKey !== undefined)
    const pageItems = items.slice(0, limit)
    const last = pageItems.at(-1)
    const nextCursor = items.length > limit && last !== undefined
      ? encodeCursor({ sk: versionSortKey('RENDER', last.version) })
      : null
    return { items: pageItems, nextCursor }
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

  /** Records (or replaces) one scene clip of a render version and refreshes the scene count. */
  async function saveScene (render: RenderVersion, sceneNumber: number, stored: StoredObject): Promise<SceneClip> {
    const { projectId, videoId, version } = render
    const pk = videoKey(projectId, videoId).pk
    const scene: SceneClip = { projectId, videoId, version, sceneNumber, bucket, key: stored.key, sizeBytes: stored.sizeBytes, sha256: stored.sha256, contentType: stored.contentType, createdAt: new Date().toISOString() }
    await ddb.send(new PutCommand({ TableName: table, Item: { pk, sk: sceneSortKey(version, sceneNumber), itemType: 'scene', ...scene } }))
    const { Count } = await ddb.send(new QueryCommand({
      TableName: table,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
      ExpressionAttributeValues: { ':pk': pk, ':prefix': `${versionSortKey('RENDER', version)}#SCENE#` },
      Select: 'COUNT',
      ConsistentRead: true
    }))
    const sceneCount = Count ?? 0
    await ddb.send(new UpdateCommand({ TableName: table, Key: { pk, sk: versionSortKey('RENDER', version) }, UpdateExpression: 'SET sceneCount = :count', ExpressionAttributeValues: { ':count': sceneCount } }))
    // The video record counts the scenes of its latest render only.
    await ddb.send(new UpdateCommand({
      TableName: table,
      Key: videoKey(projectId, videoId),
      UpdateExpression: 'SET sceneCount = :count',
      ConditionExpression: 'latestRenderVersion = :version',
      ExpressionAttributeValues: { ':count': sceneCount, ':version': version }
    })).catch((error: unknown) => { if ((error as { name?: string }).name !== 'ConditionalCheckFailedException') throw error })
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
        ExpressionAttributeValues: { ':pk': videoKey(projectId, videoId).pk, ':prefix': `${versionSortKey('RENDER', version)}#SCENE#` },
        ConsistentRead: true,
        ExclusiveStartKey: startKey
      }))
      clips.push(...(page.Items ?? []).map((item) => strip<SceneClip>(item)))
      startKey = page.LastEvaluatedKey
    } while (startKey !== undefined)
    return clips
  }

  return { commitClaimed, commitFromStaging, get, list, downloadUrl, saveScene, scenes, copyObject, deleteObject, uploadedAnswer }
}

export type RenderVersions = ReturnType<typeof createRenderVersions>
