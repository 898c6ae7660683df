import type { FastifyReply } from 'fastify'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { ListQuery, ProjectParams, VideoParams, problemResponses } from '../schemas/common.js'
import { IfMatchHeaders, PatchVideoBody, PutVideoBody, Video, VideoList } from '../schemas/videos.js'
import { VideoDeletedWithRetained } from '../schemas/video-delete.js'
import { HttpProblem } from '../src/errors.js'
import { parseIfMatch, revisionEtag } from '../src/http/etag.js'

const videoRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const base = '/v1/projects/:projectId/videos'

  app.get(base, {
    schema: {
      tags: ['videos'],
      summary: "List a project's videos, newest first",
      params: ProjectParams,
      querystring: ListQuery,
      response: { 200: VideoList, ...problemResponses(400, 503) }
    }
  }, async (request) => await app.videoStore.listVideos(request.params.projectId, request.query))

  app.put(`${base}/:videoId`, {
    schema: {
      tags: ['videos'],
      summary: 'Create a video record (201) or update the given fields (200); versions and status are kept',
      params: VideoParams,
      body: PutVideoBody,
      response: { 200: Video, 201: Video, ...problemResponses(400, 503) }
    }
  }, async (request, reply) => {
    const { video, created } = await app.videoStore.putVideo(request.params.projectId, request.params.videoId, request.body)
    return reply.code(created ? 201 : 200).header('etag', revisionEtag(video.revision)).send(video)
  })

  app.get(`${base}/:videoId`, {
    schema: {
      tags: ['videos'],
      summary: 'The video record, with its ETag; If-None-Match with the current ETag answers 304',
      params: VideoParams,
      response: { 200: Video, 304: Type.Null({ description: 'not modified since the ETag given in If-None-Match' }), ...problemResponses(400, 404, 503) }
    }
  }, async (request, reply) => {
    const video = await app.videoStore.getVideo(request.params.projectId, request.params.videoId)
    reply.header('etag', revisionEtag(video.revision))
    const ifNoneMatch = request.headers['if-none-match']
    if (ifNoneMatch !== undefined) {
      const known = parseIfMatch(ifNoneMatch)
      // RFC 9110: a 304 has no body (send(null) would serialize "null", with a JSON type and content-length 4).
      if (known === '*' || known.includes(video.revision)) return (reply as unknown as FastifyReply).code(304).send(undefined)
    }
    return reply.send(video)
  })

  app.patch(`${base}/:videoId`, {
    schema: {
      tags: ['videos'],
      summary: 'Partial update under If-Match: 428 without it, 412 when stale, 409 for a status change the lifecycle forbids',
      params: VideoParams,
      headers: IfMatchHeaders,
      body: PatchVideoBody,
      response: { 200: Video, ...problemResponses(400, 404, 409, 412, 428, 503) }
    }
  }, async (request, reply) => {
    const ifMatch = request.headers['if-match']
    if (ifMatch === undefined) throw new HttpProblem(428, 'Precondition Required', 'send If-Match with the ETag of GET .../{videoId}')
    const video = await app.videoStore.patchVideo(request.params.projectId, request.params.videoId, parseIfMatch(ifMatch), request.body)
    return reply.header('etag', revisionEtag(video.revision)).send(video)
  })

  app.delete(`${base}/:videoId`, {
    schema: {
      tags: ['videos'],
      summary: 'Delete the video: every object (every version, in a versioned bucket) in both buckets, then its versions, sessions and record',
      description: '204 when everything is gone. 200 with the list of what remains when S3 Object Lock keeps some object versions ' +
        '(legal hold or retention): everything else is deleted, the video included, and each kept version is named with its lock and ' +
        'until when. A failure part way (503, or a permanent 500) leaves the record, and the same DELETE again finishes the job.',
      params: VideoParams,
      response: { 200: VideoDeletedWithRetained, 204: Type.Null({ description: 'deleted, nothing left' }), ...problemResponses(400, 404, 409, 500, 503) }
    }
  }, async (request, reply) => {
    const { projectId, videoId } = request.params
    const { retained } = await app.videoStore.deleteVideo(projectId, videoId)
    if (retained.length === 0) return reply.code(204).send(null)
    const held = retained.filter((version) => version.legalHold).length
    const until = retained.flatMap((version) => version.retainUntil === undefined ? [] : [version.retainUntil]).sort().at(-1)
    const detail = `the video is deleted, but S3 Object Lock keeps ${retained.length} object version${retained.length === 1 ? '' : 's'} it owned` +
      `${held > 0 ? ` (${held} under a legal hold, kept until the hold is removed)` : ''}${until !== undefined ? `; retention lasts until ${until} at the latest` : ''}; ` +
      'they stay under a delete marker and the lifecycle rule expire-noncurrent-versions removes them after their lock lapses'
    return reply.code(200).send({ projectId, videoId, deleted: true as const, retained, detail })
  })
}

export default videoRoutes
