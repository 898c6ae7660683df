// What reconcile reads: every object of both buckets, open multipart uploads, the whole table, its TTL, and each
// record's object (size, and sha256 where it is known or --deep hashes it).
import { createHash } from 'node:crypto'
import { GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsCommand } from '@aws-sdk/client-s3'
import { DescribeTimeToLiveCommand } from '@aws-sdk/client-dynamodb'
import { ScanCommand } from '@aws-sdk/lib-dynamodb'
import type { AwsClients } from '../../aws/clients.js'
import type { BrokenRecord, ListedObject, OpenMultipartUpload, RecordRef } from './report.js'

const statusOf = (error: unknown): number | undefined => (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode
const isMissing = (error: unknown): boolean => {
  const name = (error as { name?: string }).name
  return name === 'NotFound' || name === 'NoSuchKey' || statusOf(error) === 404
}
/** S3 that lacks a feature: s3rver answers 501 NotImplemented or 405 MethodNotAllowed. */
export const isUnsupported = (error: unknown): boolean => {
  const name = (error as { name?: string }).name
  return name === 'NotImplemented' || name === 'MethodNotAllowed' || statusOf(error) === 501 || statusOf(error) === 405
}
export const describeError = (error: unknown): string => `${(error as { name?: string }).name ?? 'Error'}${statusOf(error) === undefined ? '' : ` (${statusOf(error) ?? ''})`}`

/**
 * Every object of a bucket, page by page from the last key seen (ListObjects' Marker, which every S3 keeps): the
 * embedded s3rver builds ListObjectsV2 continuation tokens with a cipher only OpenSSL's legacy provider has
 * (--openssl-legacy-provider on Node 20+), so a V2 listing past one page answers 500 there, StartAfter or not.
 */
export async function listObjects (aws: AwsClients, bucket: string, pageSize?: number): Promise<ListedObject[]> {
  const objects: ListedObject[] = []
  let after: string | undefined
  for (;;) {
    const page = await aws.s3.send(new ListObjectsCommand({ Bucket: bucket, Marker: after, MaxKeys: pageSize }))
    for (const object of page.Contents ?? []) {
      if (object.Key !== undefined) objects.push({ bucket, key: object.Key, sizeBytes: object.Size ?? 0, lastModified: object.LastModified?.toISOString() })
    }
    const last = page.Contents?.at(-1)?.Key
    if (page.IsTruncated !== true || last === undefined || last === after) return objects
    after = last
  }
}

/** Open multipart uploads of a bucket, or why this S3 cannot list them. */
export async function listMultipartUploads (aws: AwsClients, bucket: string): Promise<{ uploads: OpenMultipartUpload[], unsupported?: string }> {
  const uploads: OpenMultipartUpload[] = []
  let keyMarker: string | undefined
  let uploadIdMarker: string | undefined
  try {
    for (;;) {
      const page = await aws.s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }))
      for (const upload of page.Uploads ?? []) {
        if (upload.Key !== undefined && upload.UploadId !== undefined) uploads.push({ bucket, key: upload.Key, uploadId: upload.UploadId, initiated: upload.Initiated?.toISOString() })
      }
      if (page.IsTruncated !== true) break
      keyMarker = page.NextKeyMarker
      uploadIdMarker = page.NextUploadIdMarker
    }
    return { uploads }
  } catch (error) {
    if (isUnsupported(error)) return { uploads, unsupported: `this S3 does not list multipart uploads: ListMultipartUploads answered ${describeError(error)}` }
    throw error
  }
}

export async function scanTable (aws: AwsClients, table: string): Promise<Array<Record<string, unknown>>> {
  const items: Array<Record<string, unknown>> = []
  let startKey: Record<string, unknown> | undefined
  do {
    const page = await aws.ddb.send(new ScanCommand({ TableName: table, ConsistentRead: true, ExclusiveStartKey: startKey }))
    items.push(...(page.Items ?? []))
    startKey = page.LastEvaluatedKey
  } while (startKey !== undefined)
  return items
}

/** TTL status of the table: ENABLED where expired items go by themselves; anything else means reconcile removes them. */
export async function ttlStatus (aws: AwsClients, table: string): Promise<string> {
  try {
    const { TimeToLiveDescription } = await aws.dynamodb.send(new DescribeTimeToLiveCommand({ TableName: table }))
    return TimeToLiveDescription?.TimeToLiveStatus ?? 'DISABLED'
  } catch (error) {
    return `unknown: ${describeError(error)}`
  }
}

async function sha256Of (aws: AwsClients, bucket: string, key: string): Promise<string> {
  const { Body } = await aws.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
  const hash = createHash('sha256')
  for await (const chunk of Body as AsyncIterable<Uint8Array>) hash.update(chunk)
  return hash.digest('hex')
}

export async function checkRecord (aws: AwsClients, record: RecordRef, deep: boolean): Promise<{ broken?: BrokenRecord, hashVerified: boolean }> {
  try {
    const head = await aws.s3.send(new HeadObjectCommand({ Bucket: record.bucket, Key: record.key }))
    if ((head.ContentLength ?? -1) !== record.sizeBytes) return { broken: { ...record, problem: 'size', actual: head.ContentLength }, hashVerified: false }
    const stated = head.Metadata?.sha256
    const actual = deep ? await sha256Of(aws, record.bucket, record.key) : stated
    if (actual !== undefined && actual !== record.sha256) return { broken: { ...record, problem: 'sha256', actual }, hashVerified: true }
    return { hashVerified: actual !== undefined }
  } catch (error) {
    if (isMissing(error)) return { broken: { ...record, problem: 'missing-object' }, hashVerified: false }
    throw error
  }
}
