// Test video bytes and storage probes for the render tests: a valid ftyp header followed by pseudo-random bytes.
import { createHash, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3'
import { ScanCommand } from '@aws-sdk/lib-dynamodb'
import { createAwsClients, type AwsClients } from '../../src/aws/clients.js'
import type { TestAws } from '../helper.js'

const FTYP = Buffer.from([0, 0, 0, 0x18, ...Buffer.from('ftypisom'), 0, 0, 2, 0, ...Buffer.from('isomiso2')])

/** An MP4-looking buffer of `size` bytes. */
export function mp4Bytes (size: number): Buffer {
  const bytes = randomBytes(size)
  FTYP.copy(bytes, 0, 0, Math.min(FTYP.length, size))
  return bytes
}

/** A stream of `size` MP4-looking bytes generated on the fly (for sizes that should not sit in memory), with its sha256. */
export function mp4Stream (size: number, chunkSize = 1024 * 1024): { stream: Readable, sha256: () => string } {
  const hash = createHash('sha256')
  const block = randomBytes(chunkSize)
  let sent = 0
  const stream = new Readable({
    read () {
      if (sent >= size) { this.push(null); return }
      const length = Math.min(chunkSize, size - sent)
      const chunk = Buffer.from(block.subarray(0, length))
      if (sent === 0) FTYP.copy(chunk, 0, 0, Math.min(FTYP.length, length))
      chunk.writeUInt32BE(sent / chunkSize, length >= 32 ? 28 : 0)
      sent += length
      hash.update(chunk)
      this.push(chunk)
    }
  })
  let digest: string | undefined
  return { stream, sha256: () => (digest ??= hash.digest('hex')) }
}

export const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')

export function clients (t: { teardown: (fn: () => unknown) => void }, testAws: TestAws): AwsClients {
  const aws = createAwsClients(testAws.config)
  t.teardown(() => { aws.destroy() })
  return aws
}

export async function objectKeys (aws: AwsClients, bucket: string): Promise<string[]> {
  const { Contents } = await aws.s3.send(new ListObjectsV2Command({ Bucket: bucket }))
  return (Contents ?? []).map((object) => object.Key ?? '')
}

export async function tableItems (aws: AwsClients, table: string): Promise<Array<Record<string, unknown>>> {
  const { Items } = await aws.ddb.send(new ScanCommand({ TableName: table, ConsistentRead: true }))
  return Items ?? []
}

/** sha256 and size of an object, read as a stream. */
export async function objectDigest (aws: AwsClients, bucket: string, key: string): Promise<{ sha256: string, size: number }> {
  const { Body } = await aws.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
  const hash = createHash('sha256')
  let size = 0
  for await (const chunk of Body as Readable) {
    hash.update(chunk as Buffer)
    size += (chunk as Buffer).length
  }
  return { sha256: hash.digest('hex'), size }
}

/** Waits for a request's buffer to drain (or the request to close), removing both listeners either way. */
export async function drainedOrClosed (request: import('node:http').ClientRequest): Promise<void> {
  await new Promise<void>((resolve) => {
    const done = (): void => { request.off('drain', done); request.off('close', done); resolve() }
    request.once('drain', done)
    request.once('close', done)
  })
}
