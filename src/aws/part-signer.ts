// SigV4 query-string signing of many UploadPart URLs of one upload. The SDK's getSignedUrl builds each URL through
// the whole command middleware stack (about 2 ms of CPU per URL here: 640 URLs blocked the event loop for 0.8-1.7 s);
// its S3RequestPresigner still costs ~0.2 ms per URL. Here one signing key is derived per request and each URL
// costs one SHA-256 and one HMAC (tens of microseconds). The address, region and credentials come from the SDK (the
// first URL of a request is the SDK's own, see src/uploads/direct/sign.ts); test/aws/part-signer.test.ts checks every URL this
// signs equals the SDK presigner's for the same request and time, and the strict tier's S3 checks the signatures.
import { createHash, createHmac } from 'node:crypto'

export interface SigningIdentity { accessKeyId: string, secretAccessKey: string, sessionToken?: string }

/** RFC 3986 encoding as SigV4 canonicalises query strings (encodeURIComponent leaves !'()* alone). */
export const escapeUri = (value: string): string => encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)

const hmac = (key: Buffer | string, data: string): Buffer => createHmac('sha256', key).update(data).digest()

export interface PresignRequest {
  method: string
  /** scheme and authority, e.g. https://bucket.s3.amazonaws.com */
  origin: string
  /** the Host header value */
  host: string
  /** the URI-encoded path, as it goes on the wire (S3 does not encode it again for signing) */
  path: string
  /** query parameters other than the X-Amz-* ones */
  query: Record<string, string>
  /** signed headers besides host, lower-case names */
  headers: Record<string, string>
}

/**
 * A signer for one region, service and moment (`amzDate`, YYYYMMDDTHHMMSSZ): every URL it signs carries that date
 * and `expiresIn`.
 */
export function createPartSigner ({ identity, region, service = 's3', amzDate, expiresIn }: { identity: SigningIdentity, region: string, service?: string, amzDate: string, expiresIn: number }) {
  const day = amzDate.slice(0, 8)
  const scope = `${day}/${region}/${service}/aws4_request`
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${identity.secretAccessKey}`, day), region), service), 'aws4_request')

  return function presign (request: PresignRequest): string {
    const headers: Record<string, string> = { host: request.host }
    for (const [name, value] of Object.entries(request.headers)) headers[name.toLowerCase()] = value
    const names = Object.keys(headers).sort()
    const signedHeaders = names.join(';')
    const query: Record<string, string> = {
      ...request.query,
      'X-Amz-Algorithm': 'AWS4-HMAC-SHA256',
      'X-Amz-Content-Sha256': 'UNSIGNED-PAYLOAD',
      'X-Amz-Credential': `${identity.accessKeyId}/${scope}`,
      'X-Amz-Date': amzDate,
      'X-Amz-Expires': String(expiresIn),
      'X-Amz-SignedHeaders': signedHeaders,
      ...(identity.sessionToken === undefined ? {} : { 'X-Amz-Security-Token': identity.sessionToken })
    }
    const canonicalQuery = Object.keys(query).sort().map((name) => `${escapeUri(name)}=${escapeUri(query[name])}`).join('&')
    const canonicalHeaders = names.map((name) => `${name}:${headers[name].trim().replace(/\s+/g, ' ')}\n`).join('')
    const canonicalRequest = [request.method, request.path, canonicalQuery, canonicalHeaders, signedHeaders, 'UNSIGNED-PAYLOAD'].join('\n')
    const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonicalRequest).digest('hex')].join('\n')
    const signature = hmac(signingKey, stringToSign).toString('hex')
    return `${request.origin}${request.path}?${canonicalQuery}&X-Amz-Signature=${signature}`
  }
}
