import { Type, type Static } from 'typebox'

export const VIDEO_STATUSES = ['created', 'code_ready', 'rendering', 'uploaded', 'failed'] as const
/** Where a video is in its lifecycle (the record's `status`); not the /status report (VideoStatusReport). */
export const VideoLifecycleStatus = Type.Union([Type.Literal('created'), Type.Literal('code_ready'), Type.Literal('rendering'), Type.Literal('uploaded'), Type.Literal('failed')], {
  description: 'created → code_ready → rendering → uploaded; failed from anywhere; uploaded → code_ready starts a new iteration; failed → code_ready or rendering retries'
})
export type VideoLifecycleStatus = typeof VIDEO_STATUSES[number]

const Title = Type.String({ maxLength: 200 })
const Description = Type.String({ maxLength: 5000 })
const Tags = Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 50 })
const CustomMetadata = Type.Record(Type.String({ minLength: 1, maxLength: 128 }), Type.String({ maxLength: 2048 }), {
  maxProperties: 50, description: 'string values only, at most 50 keys'
})

export const PutVideoBody = Type.Object({
  title: Type.Optional(Title),
  description: Type.Optional(Description),
  tags: Type.Optional(Tags),
  customMetadata: Type.Optional(CustomMetadata)
}, { $id: 'PutVideoBody', additionalProperties: false, description: 'fields left out keep their stored value' })
export type PutVideoBodyType = Static<typeof PutVideoBody>

export const PatchVideoBody = Type.Object({
  title: Type.Optional(Title),
  description: Type.Optional(Description),
  tags: Type.Optional(Tags),
  customMetadata: Type.Optional(CustomMetadata),
  status: Type.Optional(VideoLifecycleStatus),
  durationSeconds: Type.Optional(Type.Number({ minimum: 0 })),
  resolution: Type.Optional(Type.String({ pattern: '^[0-9]{1,5}x[0-9]{1,5}$', examples: ['1920x1080'] })),
  sceneCount: Type.Optional(Type.Integer({ minimum: 0, maximum: 99999 }))
}, { $id: 'PatchVideoBody', additionalProperties: false, minProperties: 1 })
export type PatchVideoBodyType = Static<typeof PatchVideoBody>

export const IfMatchHeaders = Type.Object({
  'if-match': Type.Optional(Type.String({ maxLength: 512, description: 'the ETag of GET .../{videoId}; required (428 without it), 412 when stale' }))
})

export const Video = Type.Object({
  projectId: Type.String(),
  videoId: Type.String(),
  title: Type.Optional(Type.String()),
  description: Type.Optional(Type.String()),
  tags: Type.Array(Type.String()),
  customMetadata: Type.Record(Type.String(), Type.String()),
  status: VideoLifecycleStatus,
  latestRenderVersion: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], { description: 'null until the first render version' }),
  latestCodeVersion: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], { description: 'null until the first code version' }),
  durationSeconds: Type.Optional(Type.Number()),
  resolution: Type.Optional(Type.String()),
  sizeBytes: Type.Optional(Type.Integer()),
  sceneCount: Type.Optional(Type.Integer()),
  s3Paths: Type.Object({
    video: Type.Optional(Type.String({ description: 's3:// URI of the latest render' })),
    code: Type.Optional(Type.String({ description: 's3:// URI of the latest code version' })),
    prefix: Type.String({ description: 's3:// prefix under which the renders live' })
  }),
  revision: Type.Integer({ description: 'increases on every change; the ETag is W/"r{revision}"' }),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' })
}, { $id: 'Video' })
export type VideoType = Static<typeof Video>

export const VideoList = Type.Object({
  items: Type.Array(Video),
  nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'pass as ?cursor= for the next page; null on the last page' })
}, { $id: 'VideoList' })
export type VideoListType = Static<typeof VideoList>
