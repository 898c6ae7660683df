// What --fix changes: deletes orphans, marks broken records, advances lagging pointers, marks abandoned sessions
// failed and aborts their multipart uploads, deletes expired idempotency records. Each write is conditional on
// what the scan saw, so a writer that came back meanwhile keeps its work. Never deletes a referenced object.
import { AbortMultipartUploadCommand, DeleteObjectCommand } from '@aws-sdk/client-s3'
import { DeleteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb'
import type { AwsClients } from '../../aws/clients.js'
import type { Config } from '../../config.js'
import { writeIf } from '../../table/conditions.js'
import type { VideoRecord } from '../../table/video-record.js'
import { ABANDONED_ERROR } from '../../uploads/sessions.js'
import { advanceCommand } from '../../versions/publish.js'
import type { Classified } from './findings.js'
import type { LaggingLatest, ReconcileReport } from './report.js'
import { describeError, isUnsupported } from './scan.js'

type Fixed = NonNullable<ReconcileReport['fixed']>

/** Sets the pointer to the highest item (never lowers it) with what that version's commit would have set. */
async function advanceLatest (aws: AwsClients, config: Config, lag: LaggingLatest, item: Record<string, unknown>, video: VideoRecord | undefined, now: number): Promise<boolean> {
  const set: Record<string, unknown> = { updatedAt: new Date(now).toISOString() }
  if (lag.kind === 'CODE') {
    if (typeof item.sha256 === 'string') set.latestCodeSha256 = item.sha256
    if (typeof item.key === 'string') set.latestCodeKey = item.key
    if ((video?.status ?? 'created') === 'created') set.status = 'code_ready'
  } else {
    if (typeof item.sha256 === 'string') set.latestRenderSha256 = item.sha256
    if (typeof item.key === 'string') set.latestRenderKey = item.key
    set.status = 'uploaded'
  }
  // False when a writer advanced it meanwhile (or a DELETE of the video began): nothing left to do.
  return await writeIf(aws.ddb, advanceCommand(config.table, { pk: lag.pk, sk: 'VIDEO' }, lag.kind, lag.highest, set))
}

/** Marks a session whose replica died failed, only while nobody renewed it since the scan (a replica that came back keeps it). */
async function markAbandoned (aws: AwsClients, config: Config, session: { pk: string, sk: string }, seenLease: unknown, now: number): Promise<boolean> {
  return await writeIf(aws.ddb, new UpdateCommand({
    TableName: config.table,
    Key: { pk: session.pk, sk: session.sk },
    UpdateExpression: 'SET #status = :failed, failureReason = :abandoned, lastError = :error, updatedAt = :now',
    ConditionExpression: '#status = :uploading AND leaseUntil = :seen',
    ExpressionAttributeNames: { '#status': 'status' },
    ExpressionAttributeValues: { ':failed': 'failed', ':abandoned': 'abandoned', ':error': ABANDONED_ERROR, ':now': new Date(now).toISOString(), ':uploading': 'uploading', ':seen': seenLease }
  }))
}

/** Applies --fix to a report (in place: report.fixed says what was done). */
export async function applyFixes (aws: AwsClients, config: Config, report: ReconcileReport, classified: Classified, expiredIdempotency: Array<Record<string, unknown>>, now: number): Promise<void> {
  const fixed: Fixed = { deletedObjects: 0, markedBroken: 0, advancedLatest: 0, markedAbandoned: 0, abortedMultipartUploads: 0, deletedIdempotencyRecords: 0 }
  const skipped: string[] = []
  for (const orphan of report.orphans) {
    await aws.s3.send(new DeleteObjectCommand({ Bucket: orphan.bucket, Key: orphan.key }))
    fixed.deletedObjects++
  }
  for (const record of report.brokenRecords) {
    await aws.ddb.send(new UpdateCommand({
      TableName: config.table,
      Key: { pk: record.pk, sk: record.sk },
      UpdateExpression: 'SET #status = :broken, brokenReason = :reason, brokenAt = :now',
      ConditionExpression: 'attribute_exists(pk)',
      ExpressionAttributeNames: { '#status': 'status' },
      ExpressionAttributeValues: { ':broken': 'broken', ':reason': record.problem, ':now': new Date(now).toISOString() }
    }))
    fixed.markedBroken++
  }
  for (const lag of report.laggingLatest) {
    const item = classified.versions.get(lag.pk)?.[lag.kind].get(lag.highest) ?? {}
    if (await advanceLatest(aws, config, lag, item, classified.videos.get(lag.pk), now)) fixed.advancedLatest++
  }
  for (const session of report.abandonedSessions) {
    const stored = classified.sessions.find((item) => item.pk === session.pk && item.sk === session.sk)
    if (await markAbandoned(aws, config, session, stored?.leaseUntil, now)) fixed.markedAbandoned++
  }
  for (const upload of report.multipartUploads.stale) {
    try {
      await aws.s3.send(new AbortMultipartUploadCommand({ Bucket: upload.bucket, Key: upload.key, UploadId: upload.uploadId }))
      fixed.abortedMultipartUploads++
    } catch (error) {
      if (!isUnsupported(error) && (error as { name?: string }).name !== 'NoSuchUpload') throw error
      if (isUnsupported(error)) skipped.push(`AbortMultipartUpload answered ${describeError(error)}`)
    }
  }
  if (!report.multipartUploads.supported && report.abandonedSessions.length > 0) {
    skipped.push(`multipart uploads of abandoned sessions were not aborted: ${report.multipartUploads.reason ?? 'not supported'}; S3's lifecycle rule (AbortIncompleteMultipartUpload, 1 day) removes them where it runs`)
  }
  for (const item of expiredIdempotency) {
    const deleted = await writeIf(aws.ddb, new DeleteCommand({
      TableName: config.table,
      Key: { pk: item.pk, sk: item.sk },
      ConditionExpression: 'expiresAtEpoch < :now',
      ExpressionAttributeValues: { ':now': Math.floor(now / 1000) }
    }))
    if (deleted) fixed.deletedIdempotencyRecords++
  }
  if (skipped.length > 0) fixed.skipped = [...new Set(skipped)]
  report.fixed = fixed
}
