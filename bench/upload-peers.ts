// The peers bench:upload measures the service against, in their own process (as the service is in its own):
// a bare Fastify route piping the request body into lib-storage, and @tus/server with @tus/s3-store, both on the
// service's S3 with the same part size and queue. Started by bench/upload.ts with S3_ENDPOINT, BUCKET, PART_SIZE,
// QUEUE_SIZE; prints one JSON line {"bare": port, "tus": port} once both listen.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import { S3Client } from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { Server } from '@tus/server'
import { S3Store } from '@tus/s3-store'

const endpoint = process.env.S3_ENDPOINT as string
const bucket = process.env.BUCKET as string
const partSize = Number(process.env.PART_SIZE)
const queueSize = Number(process.env.QUEUE_SIZE)
const s3Config = {
  region: 'us-east-1', endpoint, forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  requestChecksumCalculation: 'WHEN_REQUIRED' as const, responseChecksumValidation: 'WHEN_REQUIRED' as const
}
const s3 = new S3Client(s3Config)

const bare = Fastify({ logger: false })
bare.addContentTypeParser('*', (_request, payload, done) => { done(null, payload) })
bare.post('/upload/:key', async (request, reply) => {
  const key = `bench/bare-${(request.params as { key: string }).key}.mp4`
  await new Upload({ client: s3, partSize, queueSize, params: { Bucket: bucket, Key: key, Body: request.body as NodeJS.ReadableStream as never, ContentType: 'video/mp4', ServerSideEncryption: 'AES256' } }).done()
  return await reply.code(201).send({ key })
})
await bare.listen({ host: '127.0.0.1', port: 0 })

const store = new S3Store({ partSize, maxConcurrentPartUploads: queueSize, s3ClientConfig: { ...s3Config, bucket } })
// s3rver has no ListParts (it answers 405), which @tus/s3-store asks on every PATCH. This process answers it from the
// parts it uploaded itself: a local lookup instead of a request to S3, so if anything the shim favours @tus/server.
const client = (store as unknown as { client: Record<string, (params: Record<string, unknown>) => Promise<Record<string, unknown>>> }).client
const uploaded = new Map<string, Map<number, { PartNumber: number, ETag: string }>>()
const uploadPart = client.uploadPart.bind(client)
client.uploadPart = async (params) => {
  const answer = await uploadPart(params)
  const parts = uploaded.get(params.UploadId as string) ?? new Map()
  uploaded.set(params.UploadId as string, parts)
  parts.set(params.PartNumber as number, { PartNumber: params.PartNumber as number, ETag: answer.ETag as string })
  return answer
}
client.listParts = async (params) => ({ Parts: [...(uploaded.get(params.UploadId as string)?.values() ?? [])], IsTruncated: false })

const tus = new Server({
  path: '/files',
  onResponseError: (_request, error) => { process.stderr.write(`@tus/server: ${String((error as Error).stack ?? error)}\n`) },
  datastore: store
})
const tusServer = createServer((request, response) => { void tus.handle(request, response) })
await new Promise<void>((resolve) => tusServer.listen(0, '127.0.0.1', resolve))

process.stdout.write(`${JSON.stringify({ bare: (bare.server.address() as AddressInfo).port, tus: (tusServer.address() as AddressInfo).port })}\n`)
process.on('SIGTERM', () => { void bare.close(); tusServer.close(); s3.destroy(); process.exit(0) })
