// Scene clips of a render version: one item each (sk SCENE#{version}#{scene}), replaced by a new upload of the scene.
import { DeleteCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb'
import { notFound } from '../errors.js'
import { scenePrefix, sceneSortKey, versionKey, videoKey } from '../table/keys.js'
import { writeIf } from '../table/conditions.js'
import type { RenderContext, RenderVersion, SceneClip, StoredObject } from './store.js'
import { deleteObject, withoutKeys } from './objects.js'

/** How many clips a render version has now (a consistent count). */
async function countScenes ({ ddb, table }: RenderContext, pk: string, version: number): Promise<number> {
  const { Count } = await ddb.send(new QueryCommand({
    TableName: table,
    KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
    ExpressionAttributeValues: { ':pk': pk, ':prefix': scenePrefix(version) },
    Select: 'COUNT',
    ConsistentRead: true
  }))
  return Count ?? 0
}

/**
 * Records (or replaces) one scene clip of a render version and refreshes the scene count. The clip's object is
 * unique to its upload; the one it replaces is deleted once the item no longer names it.
 */
export async function saveScene (context: RenderContext, render: RenderVersion, sceneNumber: number, stored: StoredObject): Promise<SceneClip> {
  const { ddb, table, bucket } = context
  const { projectId, videoId, version } = render
  const pk = videoKey(projectId, videoId).pk
  const scene: SceneClip = { projectId, videoId, version, sceneNumber, bucket, key: stored.key, sizeBytes: stored.sizeBytes, sha256: stored.sha256, contentType: stored.contentType, createdAt: new Date().toISOString() }
  const { Attributes: previous } = await ddb.send(new PutCommand({ TableName: table, Item: { pk, sk: sceneSortKey(version, sceneNumber), itemType: 'scene', ...scene }, ReturnValues: 'ALL_OLD' }))
  if (typeof previous?.key === 'string' && previous.key !== stored.key) await deleteObject(context, previous.key)
  const sceneCount = await countScenes(context, pk, version)
  // Only on the version item that exists: an unconditional update would make a stub RENDER# item (no version,
  // no token) for a render deleted meanwhile, and every later commit of the video would collide with it.
  const counted = await writeIf(ddb, new UpdateCommand({
    TableName: table,
    Key: versionKey('RENDER', projectId, videoId, version),
    UpdateExpression: 'SET sceneCount = :count',
    ConditionExpression: 'attribute_exists(sk)',
    ExpressionAttributeValues: { ':count': sceneCount }
  }))
  if (!counted) {
    // The render version went (its video was deleted) while the clip was uploading: the clip's item goes too.
    await writeIf(ddb, new DeleteCommand({
      TableName: table,
      Key: { pk, sk: sceneSortKey(version, sceneNumber) },
      ConditionExpression: '#key = :key',
      ExpressionAttributeNames: { '#key': 'key' },
      ExpressionAttributeValues: { ':key': stored.key }
    }))
    throw notFound(`render version ${version} of video ${projectId}/${videoId} was deleted while the scene was uploading`)
  }
  // The video record counts the scenes of its latest render only.
  await writeIf(ddb, new UpdateCommand({
    TableName: table,
    Key: videoKey(projectId, videoId),
    UpdateExpression: 'SET sceneCount = :count',
    ConditionExpression: 'latestRenderVersion = :version',
    ExpressionAttributeValues: { ':count': sceneCount, ':version': version }
  }))
  return scene
}

/** The scene clips of one render version, in scene order. */
export async function scenes ({ ddb, table }: RenderContext, projectId: string, videoId: string, version: number): Promise<SceneClip[]> {
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
    clips.push(...(page.Items ?? []).map((item) => withoutKeys<SceneClip>(item)))
    startKey = page.LastEvaluatedKey
  } while (startKey !== undefined)
  return clips
}
