import { Type, type Static } from 'typebox'

export const ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$'

export const ProjectId = Type.String({ pattern: ID_PATTERN, description: 'project id', examples: ['demo'] })
export const VideoId = Type.String({ pattern: ID_PATTERN, description: 'video id', examples: ['intro'] })

/** An upload session's state, for every kind of upload (the one union: schemas and src/uploads/sessions.ts use it). */
export const UploadStatus = Type.Union([Type.Literal('pending'), Type.Literal('uploading'), Type.Literal('completed'), Type.Literal('failed'), Type.Literal('aborted'), Type.Literal('expired')], {
  $id: 'UploadStatus',
  description: 'direct uploads: pending until complete is called, uploading while complete assembles and verifies, then completed, failed, aborted or expired'
})
export type UploadStatus = Static<typeof UploadStatus>

export const ProjectParams = Type.Object({ projectId: ProjectId }, { $id: 'ProjectParams' })
export const VideoParams = Type.Object({ projectId: ProjectId, videoId: VideoId }, { $id: 'VideoParams' })
export type VideoParamsType = Static<typeof VideoParams>

/** `latest` or a positive integer that DynamoDB and JavaScript both hold exactly. */
export const VersionParam = Type.Union([
  Type.Literal('latest'),
  Type.String({ pattern: '^[1-9][0-9]{0,8}$' })
], { description: 'a version number (1 to 999999999) or `latest`' })

export const ListQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 }))
}, { additionalProperties: false })
export type ListQueryType = Static<typeof ListQuery>

export const ProblemDetails = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Integer(),
  detail: Type.Optional(Type.String()),
  instance: Type.Optional(Type.String()),
  errors: Type.Optional(Type.Array(Type.Object({ path: Type.String(), message: Type.String() }))),
  latestVersion: Type.Optional(Type.Integer())
}, { $id: 'Problem', additionalProperties: true, description: 'RFC 9457 problem details (application/problem+json)' })
export type ProblemDetailsType = Static<typeof ProblemDetails>

const ProblemResponse = {
  description: 'RFC 9457 problem details',
  content: { 'application/problem+json': { schema: ProblemDetails } }
}

/** The problem response for each status a route may answer with, for its `response` map. */
export function problemResponses (...statuses: number[]): Record<number, typeof ProblemResponse> {
  return Object.fromEntries(statuses.map((status) => [status, ProblemResponse]))
}

/** The Idempotency-Key request header every write under /v1 takes (checked by the idempotency plugin). */
export const IdempotencyKeyHeader = Type.String({
  minLength: 1,
  maxLength: 257,
  description: 'Optional. One key per logical write (a UUID is good), sent again unchanged on every retry of it: the first request runs and its ' +
    'answer is kept 24 h; a repeat gets that answer (with Idempotent-Replayed: true) and stores nothing; a repeat while the first still ' +
    'runs is 409 with Retry-After; the same key on a different request is 422. 1-255 visible ASCII characters, optionally quoted.'
})
