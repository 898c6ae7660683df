// The part signer (src/aws/part-signer.ts) makes exactly the URL the AWS SDK's own S3 presigner makes for the same
// UploadPart request, time and credentials: path-style and virtual-hosted, with and without a session token.
// (The embedded S3 does not check signatures; the strict tier's Ceph RGW does, in test/strict/presign.test.ts.)
import t from 'tap'
import { S3Client, UploadPartCommand } from '@aws-sdk/client-s3'
import { S3RequestPresigner, getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { createPartSigner } from '../../src/aws/part-signer.js'

const cases = [
  { name: 'path style, local endpoint', endpoint: 'http://127.0.0.1:9000', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } },
  { name: 'virtual-hosted AWS, session token', endpoint: undefined, forcePathStyle: false, credentials: { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', sessionToken: 'FwoGZXIvYXdzE+/token=' } }
]

for (const options of cases) {
  t.test(options.name, async (t) => {
    const s3 = new S3Client({ region: 'eu-west-1', endpoint: options.endpoint, forcePathStyle: options.forcePathStyle, credentials: options.credentials, requestChecksumCalculation: 'WHEN_REQUIRED' })
    t.teardown(() => { s3.destroy() })
    const key = 'videos/p 1/v(1)/uploads/0b8e/v!1.mp4'
    const first = new URL(await getSignedUrl(s3, new UploadPartCommand({ Bucket: 'render-bucket', Key: key, UploadId: 'up/load+id', PartNumber: 1, ContentLength: 8 * 1024 * 1024 }), {
      expiresIn: 900, signableHeaders: new Set(['content-length'])
    }))
    const amzDate = first.searchParams.get('X-Amz-Date') as string
    const presign = createPartSigner({ identity: options.credentials, region: 'eu-west-1', amzDate, expiresIn: 900 })
    const query: Record<string, string> = {}
    for (const [name, value] of first.searchParams) if (!name.startsWith('X-Amz-')) query[name] = value
    const sdk = new S3RequestPresigner({ ...s3.config })
    const signingDate = new Date(`${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`)
    for (const [partNumber, size] of [[1, 8 * 1024 * 1024], [2, 8 * 1024 * 1024], [640, 123]]) {
      const ours = new URL(presign({ method: 'PUT', origin: first.origin, host: first.host, path: first.pathname, query: { ...query, partNumber: String(partNumber) }, headers: { 'content-length': String(size) } }))
      const theirs = await sdk.presign({
        method: 'PUT', protocol: first.protocol, hostname: first.hostname, port: first.port === '' ? undefined : Number(first.port), path: first.pathname,
        query: { ...query, partNumber: String(partNumber) }, headers: { host: first.host, 'content-length': String(size) }
      } as Parameters<typeof sdk.presign>[0], { expiresIn: 900, signableHeaders: new Set(['content-length']), signingDate, signingRegion: 'eu-west-1' })
      t.equal(ours.searchParams.get('X-Amz-Signature'), theirs.query['X-Amz-Signature'], `part ${partNumber}: the SDK's signature`)
      for (const [name, value] of Object.entries(theirs.query)) t.equal(ours.searchParams.get(name), value, `part ${partNumber}: ${name}`)
      if (partNumber === 1) t.equal(ours.searchParams.get('X-Amz-Signature'), first.searchParams.get('X-Amz-Signature'), 'part 1: the very URL getSignedUrl made')
    }
  })
}
