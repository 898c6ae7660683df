import { Type, type Static } from 'typebox'
import { ProjectId, VersionParam, VideoId } from './common.js'

/** A plain file name: no folders, no `..`, so it can never leave its version's prefix. */
export const FILENAME_PATTERN = '^(?!.*\\.\\.)[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'

export const CodeFilename = Type.String({ pattern: FILENAME_PATTERN, description: 'file name (default {videoId}.py, or {videoId}_scene{n}.py with sceneNumber)', examples: ['intro.py'] })

export const CodeVersionParams = Type.Object({ projectId: ProjectId, videoId: VideoId, version: VersionParam }, { $id: 'CodeVersionParams' })
export type CodeVersionParamsType = Static<typeof CodeVersionParams>

export const RetentionLock = Type.Object({
  mode: Type.Union([Type.Literal('GOVERNANCE'), Type.Literal('COMPLIANCE')]),
  retainUntil: Type.String({ format: 'date-time', description: 'RFC 3339 time in the future' })
}, { additionalProperties: false })

export const LegalHoldLock = Type.Object({
  legalHold: Type.Boolean()
}, { additionalProperties: false })

export const CodeLockRequest = Type.Union([RetentionLock, LegalHoldLock], { $id: 'CodeLockRequest', description: 'S3 Object Lock retention or a legal hold' })
export type CodeLockRequestType = Static<typeof CodeLockRequest>

export const CreateCodeVersion = Type.Object({
  content: Type.String({ minLength: 1, description: 'the code, as text' }),
  filename: Type.Optional(CodeFilename),
  language: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  message: Type.Optional(Type.String({ maxLength: 2000, description: 'what changed' })),
  sceneNumber: Type.Optional(Type.Integer({ minimum: 1, maximum: 99999 })),
  baseVersion: Type.Optional(Type.Integer({ minimum: 0, maximum: 999999999, description: 'the version this edit was made on; 409 when it is not the latest' })),
  lock: Type.Optional(CodeLockRequest)
}, { $id: 'CreateCodeVersion', additionalProperties: false })
export type CreateCodeVersionType = Static<typeof CreateCodeVersion>

export const RawCodeHeaders = Type.Object({
  'x-base-version': Type.Optional(Type.String({ pattern: '^(0|[1-9][0-9]{0,8})$', description: 'as baseVersion, for raw text bodies' })),
  'x-filename': Type.Optional(CodeFilename)
})

export const CodeLockState = Type.Object({
  mode: Type.Optional(Type.Union([Type.Literal('GOVERNANCE'), Type.Literal('COMPLIANCE')])),
  retainUntil: Type.Optional(Type.String({ format: 'date-time' })),
  legalHold: Type.Optional(Type.Boolean())
})

const codeVersionFields = {
  version: Type.Integer({ minimum: 1 }),
  filename: Type.String(),
  key: Type.String({ description: 'S3 key' }),
  bucket: Type.String(),
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  sizeBytes: Type.Integer({ minimum: 1 }),
  contentType: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
  message: Type.Optional(Type.String()),
  language: Type.Optional(Type.String()),
  sceneNumber: Type.Optional(Type.Integer()),
  locked: Type.Boolean(),
  lock: Type.Optional(CodeLockState)
}

export const CodeVersion = Type.Object(codeVersionFields, { $id: 'CodeVersion', description: 'a code version without its content' })
export type CodeVersionType = Static<typeof CodeVersion>

export const CodeVersionWithContent = Type.Object({
  ...codeVersionFields,
  content: Type.String(),
  downloadUrl: Type.String({ description: 'presigned GET URL of the object' }),
  expiresAt: Type.String({ format: 'date-time' })
}, { $id: 'CodeVersionWithContent' })
export type CodeVersionWithContentType = Static<typeof CodeVersionWithContent>

export const CodeVersionList = Type.Object({
  items: Type.Array(CodeVersion),
  nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'pass as ?cursor= for the next page; null on the last' })
}, { $id: 'CodeVersionList' })
export type CodeVersionListType = Static<typeof CodeVersionList>

export const DiffQuery = Type.Object({
  from: VersionParam
}, { additionalProperties: false })
