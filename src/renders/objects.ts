// The render objects in the video bucket: server-side copies, best-effort deletes and presigned downloads.
import { CopyObjectCommand, DeleteObjectCommand, GetObjectCommand } from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { encryptionParams } from '../aws/encryption.js'
import { recordBestEffortFailure } from '../http/metrics.js'
import type { RenderContext } from './store.js'

const ITEM_KEYS = new Set(['pk', 'sk', 'itemType', 'commitToken'])

/** A render or scene item without its table keys: what the API shows. */
export const withoutKeys = <T>(item: Record<string, unknown>): T => Object.fromEntries(Object.entries(item).filter(([name]) => !ITEM_KEYS.has(name))) as T

/** Deletes an object nothing references (best effort: a failure is logged and counted, reconcile finds the object). */
export async function deleteObject ({ s3, bucket, log }: RenderContext, key: string): Promise<void> {
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })).catch((error: unknown) => { recordBestEffortFailure('video-object-cleanup', error, log) })
}

/** Server-side copy within the video bucket, with SSE and fresh metadata. */
export async function copyObject ({ s3, bucket, config }: RenderContext, fromKey: string, toKey: string, { contentType, metadata, ifMatch }: { contentType: string, metadata: Record<string, string>, ifMatch?: string }): Promise<void> {
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

/** A fresh presigned GET for a render (or scene) object, valid for config.presignExpiresSeconds. */
export async function downloadUrl ({ s3, bucket, config }: RenderContext, record: { key: string, bucket?: string }): Promise<{ downloadUrl: string, expiresAt: string }> {
  const expiresIn = config.presignExpiresSeconds
  const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: record.bucket ?? bucket, Key: record.key }), { expiresIn })
  return { downloadUrl: url, expiresAt: new Date(Date.now() + expiresIn * 1000).toISOString() }
}
