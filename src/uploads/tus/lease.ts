// The PATCH lease of a tus upload and the writes made under it: one replica at a time appends to an upload; every
// write of its state is conditional on still holding the lease. Also what removes an upload's bytes.
import { randomUUID } from 'node:crypto'
import { AbortMultipartUploadCommand, DeleteObjectCommand, GetObjectCommand } from '@aws-sdk/client-s3'
import { UpdateCommand, type UpdateCommandInput } from '@aws-sdk/lib-dynamodb'
import { notFound, serviceUnavailable } from '../../errors.js'
import { recordBestEffortFailure } from '../../http/metrics.js'
import { isConditionFailure, itemBehindFailedCondition, writeIf } from '../../table/video-item.js'
import { AlreadyCompleted, itemKey, keyOf, readItem, type TusContext, type TusItem } from './item.js'
import { offsetMismatch, uploadGone, uploadLocked } from './protocol.js'

/** writeIf for an update (its declared parameter type takes no lib-dynamodb command as it stands). */
const updateIf = async (ctx: TusContext, input: UpdateCommandInput): Promise<boolean> =>
  await writeIf(ctx.aws.ddb, new UpdateCommand(input) as unknown as Parameters<typeof writeIf>[1])

const expiresAtEpoch = (ctx: TusContext): number => Math.floor(Date.now() / 1000) + ctx.config.tusExpiresSeconds

export async function readTus (ctx: TusContext, projectId: string, videoId: string, uploadId: string): Promise<TusItem> {
  const item = await itemBehindFailedCondition(ctx.aws.ddb, ctx.config.table, keyOf(projectId, videoId, uploadId), undefined)
  if (item === undefined || item.protocol !== 'tus') throw notFound(`video ${projectId}/${videoId} has no tus upload ${uploadId}`)
  return readItem(item)
}

/** An upload that can take no more bytes: 410 (cleaning up an expired one first). */
export async function refuseClosed (ctx: TusContext, tus: TusItem): Promise<void> {
  const { status, uploadId } = tus.session
  if (status === 'expired') {
    await expire(ctx, tus)
    throw uploadGone(uploadId, `expired at ${new Date(tus.session.expiresAtEpoch * 1000).toISOString()}`)
  }
  if (status === 'aborted') throw uploadGone(uploadId, 'was terminated')
  if (status === 'failed') throw uploadGone(uploadId, `failed: ${tus.session.lastError ?? 'unknown'}`)
}

/**
 * Takes the upload's PATCH lease in one conditional update (and, for PATCH, checks Upload-Offset in the same
 * condition), so two replicas never append at one offset. Answers the item as it is now held.
 */
export async function lock (ctx: TusContext, projectId: string, videoId: string, uploadId: string, options: { offset?: number, uploading?: boolean }): Promise<{ tus: TusItem, owner: string }> {
  const now = Date.now()
  const owner = randomUUID()
  const values: Record<string, unknown> = {
    ':tus': 'tus', ':pending': 'pending', ':uploading': 'uploading', ':now_s': Math.floor(now / 1000), ':now_ms': now,
    ':lease': now + ctx.sessions.leaseMs, ':owner': owner, ':updated': new Date(now).toISOString(), ':expires': expiresAtEpoch(ctx)
  }
  let condition = 'protocol = :tus AND #status IN (:pending, :uploading) AND expiresAtEpoch >= :now_s AND (attribute_not_exists(tusLeaseUntil) OR tusLeaseUntil < :now_ms)'
  if (options.offset !== undefined) {
    condition += ' AND tusOffset = :offset'
    values[':offset'] = options.offset
  }
  const set = ['tusLeaseUntil = :lease', 'tusLeaseOwner = :owner', 'updatedAt = :updated', 'expiresAtEpoch = :expires']
  if (options.uploading === true) set.push('#status = :uploading')
  const key = keyOf(projectId, videoId, uploadId)
  try {
    const { Attributes } = await ctx.aws.ddb.send(new UpdateCommand({
      TableName: ctx.config.table,
      Key: key,
      UpdateExpression: `SET ${set.join(', ')}`,
      ConditionExpression: condition,
      ExpressionAttributeNames: { '#status': 'status' },
      ExpressionAttributeValues: values,
      ReturnValues: 'ALL_NEW',
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD'
    }))
    return { tus: readItem(Attributes ?? {}, now), owner }
  } catch (error) {
    // Why it failed decides the answer, so this one needs the item behind the failure (not writeIf's false).
    if (!isConditionFailure(error)) throw error
    const item = await itemBehindFailedCondition(ctx.aws.ddb, ctx.config.table, key, error)
    if (item === undefined || item.protocol !== 'tus') throw notFound(`video ${projectId}/${videoId} has no tus upload ${uploadId}`)
    const tus = readItem(item, now)
    await refuseClosed(ctx, tus)
    if (tus.session.status === 'completed') {
      if (options.offset !== undefined && options.offset !== tus.length) throw offsetMismatch(options.offset, tus.length)
      throw new AlreadyCompleted(tus)
    }
    if (tus.leaseUntil >= now) throw uploadLocked(uploadId, tus.leaseUntil, now)
    if (options.offset !== undefined && tus.offset !== options.offset) throw offsetMismatch(options.offset, tus.offset)
    // Changed between the update and the read (a lease just ended): try once more.
    return await lock(ctx, projectId, videoId, uploadId, options)
  }
}

/** Writes the upload's state under the lease (false when the lease is no longer this holder's). */
export async function save (ctx: TusContext, tus: TusItem, owner: string, set: Record<string, unknown>, remove: string[] = []): Promise<boolean> {
  const names: Record<string, string> = {}
  const values: Record<string, unknown> = { ':owner': owner }
  const clauses = Object.entries(set).map(([name, value], index) => {
    names[`#s${index}`] = name
    values[`:s${index}`] = value
    return `#s${index} = :s${index}`
  })
  const removals = remove.map((name, index) => { names[`#r${index}`] = name; return `#r${index}` })
  return await updateIf(ctx, {
    TableName: ctx.config.table,
    Key: itemKey(tus),
    UpdateExpression: `SET ${clauses.join(', ')}${removals.length > 0 ? ` REMOVE ${removals.join(', ')}` : ''}`,
    ConditionExpression: 'tusLeaseOwner = :owner',
    ExpressionAttributeNames: names,
    ExpressionAttributeValues: values
  })
}

/** Gives the lease up after a failure; a failed write only delays the next PATCH until the lease lapses. */
export async function release (ctx: TusContext, tus: TusItem, owner: string, set: Record<string, unknown> = {}): Promise<void> {
  await save(ctx, tus, owner, { ...set, tusLeaseUntil: 0 }).catch((error: unknown) => { recordBestEffortFailure('tus-lease-release', error, ctx.log) })
}

export async function deleteKey (ctx: TusContext, key: string | undefined): Promise<void> {
  if (key === undefined) return
  await ctx.aws.s3.send(new DeleteObjectCommand({ Bucket: ctx.config.videoBucket, Key: key })).catch((error: unknown) => { recordBestEffortFailure('tus-object-cleanup', error, ctx.log) })
}

/** The bytes of the incomplete part an earlier PATCH left (none when it left none). */
export async function readHeld (ctx: TusContext, tus: TusItem): Promise<Buffer> {
  if (tus.heldKey === undefined || tus.heldBytes === 0) return Buffer.alloc(0)
  const { Body } = await ctx.aws.s3.send(new GetObjectCommand({ Bucket: ctx.config.videoBucket, Key: tus.heldKey, Range: `bytes=0-${tus.heldBytes - 1}` }))
  const bytes = Buffer.from(await (Body as { transformToByteArray: () => Promise<Uint8Array> }).transformToByteArray())
  if (bytes.length !== tus.heldBytes) throw serviceUnavailable(`the held part of upload ${tus.session.uploadId} has ${bytes.length} bytes, not ${tus.heldBytes}`)
  return bytes
}

/** Leaves nothing of an upload in S3: its multipart upload and its held part (its assembled object only if asked). */
export async function discardBytes (ctx: TusContext, tus: TusItem, { object = false }: { object?: boolean } = {}): Promise<void> {
  if (tus.s3UploadId !== undefined && !tus.assembled && tus.key !== undefined) {
    await ctx.aws.s3.send(new AbortMultipartUploadCommand({ Bucket: ctx.config.videoBucket, Key: tus.key, UploadId: tus.s3UploadId }))
      .catch((error: unknown) => { recordBestEffortFailure('tus-multipart-abort', error, ctx.log) })
  }
  await deleteKey(ctx, tus.heldKey)
  if (object) await deleteKey(ctx, tus.key)
}

/** Marks an expired upload expired (unless someone holds it) and removes its bytes. */
export async function expire (ctx: TusContext, tus: TusItem): Promise<void> {
  const marked = await updateIf(ctx, {
    TableName: ctx.config.table,
    Key: itemKey(tus),
    UpdateExpression: 'SET #status = :expired, updatedAt = :now',
    ConditionExpression: '#status IN (:pending, :uploading, :expired) AND expiresAtEpoch < :now_s AND (attribute_not_exists(tusLeaseUntil) OR tusLeaseUntil < :now_ms)',
    ExpressionAttributeNames: { '#status': 'status' },
    ExpressionAttributeValues: { ':expired': 'expired', ':pending': 'pending', ':uploading': 'uploading', ':now': new Date().toISOString(), ':now_s': Math.floor(Date.now() / 1000), ':now_ms': Date.now() }
  })
  if (marked && !tus.assembled) await discardBytes(ctx, tus)
}
