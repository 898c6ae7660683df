import { Type, type Static } from 'typebox'

export const RetainedVersion = Type.Object({
  bucket: Type.String(),
  key: Type.String(),
  versionId: Type.String(),
  legalHold: Type.Boolean({ description: 'under a legal hold: stays until the hold is removed (S3 PutObjectLegalHold)' }),
  mode: Type.Optional(Type.Union([Type.Literal('GOVERNANCE'), Type.Literal('COMPLIANCE')])),
  retainUntil: Type.Optional(Type.String({ format: 'date-time', description: 'retained until this time' }))
}, { description: 'an object version S3 Object Lock keeps' })

export const VideoDeletedWithRetained = Type.Object({
  projectId: Type.String(),
  videoId: Type.String(),
  deleted: Type.Literal(true),
  retained: Type.Array(RetainedVersion, { minItems: 1 }),
  detail: Type.String()
}, {
  $id: 'VideoDeletedWithRetained',
  description: 'The video is deleted (record, versions, sessions, every object version it owned) except the object versions S3 Object ' +
    'Lock keeps: they stay in the bucket, under a delete marker (nothing reads as current), until their retention date passes or their ' +
    'legal hold is removed; the lifecycle rule expire-noncurrent-versions (npm run setup, deploy/) then removes them.'
})

export type RetainedVersionType = Static<typeof RetainedVersion>
