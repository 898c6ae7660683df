// tus 1.0.0 (https://tus.io/protocols/resumable-upload): the headers each request sends and each answer carries.
// Header values are checked by the route (the protocol fixes its own status codes: 412, 409, 415, 460), so every
// header here is optional to the validator and documented for clients.
import { Type } from 'typebox'
import { UploadParams, type UploadParamsType } from './uploads.js'

/** A tus upload is an upload session: the same project, video and upload id (the last segment of POST's Location). */
export const TusParams = UploadParams
export type TusParamsType = UploadParamsType

const TusResumable = Type.String({ description: 'must be 1.0.0 (else 412 with Tus-Version)', examples: ['1.0.0'] })

export const TusCreateHeaders = Type.Object({
  'tus-resumable': Type.Optional(TusResumable),
  'upload-length': Type.Optional(Type.String({ description: 'the size of the whole video in bytes (required; at most MAX_VIDEO_BYTES, else 413). Upload-Defer-Length is not supported' })),
  'upload-metadata': Type.Optional(Type.String({ description: 'comma-separated "key base64value" pairs: filename, filetype (a video/* type), title, durationSeconds, resolution (e.g. 1920x1080)' })),
  'upload-checksum': Type.Optional(Type.String({ description: 'creation-with-upload only: "sha1|sha256|md5 base64digest" of the body' })),
  'content-type': Type.Optional(Type.String({ description: 'application/offset+octet-stream when the POST carries the first bytes (creation-with-upload)' }))
}, { additionalProperties: true })

export const TusPatchHeaders = Type.Object({
  'tus-resumable': Type.Optional(TusResumable),
  'upload-offset': Type.Optional(Type.String({ description: 'the offset these bytes start at: the Upload-Offset a HEAD answered (else 409)' })),
  'upload-checksum': Type.Optional(Type.String({ description: '"sha1|sha256|md5 base64digest" of this body; a mismatch is 460 and nothing of the body is kept' })),
  'content-type': Type.Optional(Type.String({ description: 'must be application/offset+octet-stream (else 415)' }))
}, { additionalProperties: true })

export const TusHeaders = Type.Object({
  'tus-resumable': Type.Optional(TusResumable)
}, { additionalProperties: true })

export const TUS_BODY = {
  'application/offset+octet-stream': { schema: { type: 'string', format: 'binary', description: 'the next bytes of the video, starting at Upload-Offset' } }
}

const header = (description: string, type: 'string' | 'integer' = 'string'): { description: string, type: string } => ({ description, type })
const TUS_RESUMABLE_HEADER = header('1.0.0')
const EXPIRES_HEADER = header('when the upload expires unless more bytes arrive (RFC 9110 date)')

export const TusOptionsAnswer = {
  description: 'what this tus server supports',
  headers: {
    'Tus-Resumable': TUS_RESUMABLE_HEADER,
    'Tus-Version': header('1.0.0'),
    'Tus-Extension': header('creation,creation-with-upload,termination,expiration,checksum'),
    'Tus-Max-Size': header('MAX_VIDEO_BYTES', 'integer'),
    'Tus-Checksum-Algorithm': header('sha1,sha256,md5')
  },
  type: 'null'
}

export const TusCreated = {
  description: 'the upload was created; Location is its URL. With a body (creation-with-upload), Upload-Offset says how much of it was kept',
  headers: { 'Tus-Resumable': TUS_RESUMABLE_HEADER, Location: header('/v1/projects/{projectId}/videos/{videoId}/tus/{uploadId}'), 'Upload-Offset': header('bytes stored so far', 'integer'), 'Upload-Expires': EXPIRES_HEADER },
  type: 'null'
}

export const TusHeadAnswer = {
  description: 'the upload\'s offset (bytes stored so far; continue from there) and length. Cache-Control: no-store. Once the last byte arrived the upload is a render version (X-Render-Version)',
  headers: {
    'Tus-Resumable': TUS_RESUMABLE_HEADER,
    'Upload-Offset': header('bytes stored so far', 'integer'),
    'Upload-Length': header('bytes of the whole upload', 'integer'),
    'Upload-Expires': EXPIRES_HEADER,
    'Upload-Metadata': header('the metadata given at creation'),
    'Cache-Control': header('no-store'),
    'X-Render-Version': header('the render version this upload became, once complete', 'integer')
  },
  type: 'null'
}

export const TusPatched = {
  description: 'the bytes are stored; Upload-Offset is the new offset. The PATCH that brings the last byte answers once the upload is the next render version (X-Render-Version)',
  headers: { 'Tus-Resumable': TUS_RESUMABLE_HEADER, 'Upload-Offset': header('the new offset', 'integer'), 'Upload-Expires': EXPIRES_HEADER, 'X-Render-Version': header('set when this PATCH completed the upload', 'integer') },
  type: 'null'
}

export const TusTerminated = { description: 'terminated: the upload\'s bytes are gone', headers: { 'Tus-Resumable': TUS_RESUMABLE_HEADER }, type: 'null' }
