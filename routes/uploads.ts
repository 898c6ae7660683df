import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { problemResponses, VideoParams } from '../schemas/common.js'
import { RenderUploaded } from '../schemas/renders.js'
import { DirectUploadComplete, DirectUploadCreated, DirectUploadRequest, UploadParams, UploadState } from '../schemas/uploads.js'
import { renderLocation } from '../src/render-versions.js'

const directUploadRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const base = '/v1/projects/:projectId/videos/:videoId/uploads'

  app.post(base, {
    schema: {
      tags: ['renders'],
      summary: 'Open a direct-to-S3 upload: one presigned PUT below DIRECT_MULTIPART_THRESHOLD, presigned multipart parts from it',
      description: 'Send every PUT with the returned `headers` (Content-Type and, where configured, SSE headers are signed into the URLs, ' +
        'and so is each Content-Length). Then call complete; the object becomes a render version only once it is verified.',
      params: VideoParams,
      body: DirectUploadRequest,
      response: { 201: DirectUploadCreated, ...problemResponses(400, 413, 415, 503) }
    }
  }, async (request, reply) => {
    const { projectId, videoId } = request.params
    const plan = await app.directUploads.start({ projectId, videoId, ...request.body })
    return reply.code(201).header('location', `/v1/projects/${projectId}/videos/${videoId}/uploads/${plan.uploadId}`).send(plan)
  })

  app.get(`${base}/:uploadId`, {
    schema: {
      tags: ['renders'],
      summary: "An upload session's state (direct or proxied)",
      params: UploadParams,
      response: { 200: UploadState, ...problemResponses(400, 404, 503) }
    }
  }, async (request) => await app.directUploads.state(request.params))

  app.post(`${base}/:uploadId/complete`, {
    schema: {
      tags: ['renders'],
      summary: 'Verify the uploaded object (size, part ETags, container, SHA-256) and create the render version: 201; 200 with the same render when already completed',
      description: 'A report that does not fit the upload (missing parts, wrong ETags) is 400 and the session stays open; an object that fails ' +
        'verification (size, SHA-256, not a video) is 400/415, is deleted and the session fails; an expired session is 410. ' +
        'When verifying takes longer than COMPLETE_WAIT_MS, or another request is completing this session, the answer is 202 with the ' +
        'session as Location: poll it until it is completed, then complete again (200 with the render). Repeating complete never makes a second version.',
      params: UploadParams,
      body: DirectUploadComplete,
      response: { 200: RenderUploaded, 201: RenderUploaded, 202: UploadState, ...problemResponses(400, 404, 409, 410, 415, 503) }
    },
    // A single-PUT session may be completed with a bare POST: no body reads as {}.
    preValidation: async (request) => { request.body ??= {} }
  }, async (request, reply) => {
    const { projectId, videoId, uploadId } = request.params
    const outcome = await app.directUploads.complete({ projectId, videoId, uploadId, parts: request.body.parts })
    if ('accepted' in outcome) {
      // Still verifying (or another request is): poll the session, then complete again for the render.
      return reply.code(202).header('location', `/v1/projects/${projectId}/videos/${videoId}/uploads/${uploadId}`).header('retry-after', '2').send(outcome.accepted)
    }
    const { render, created } = outcome
    if (created) reply.code(201).header('location', renderLocation(projectId, videoId, render.version))
    return await app.renderVersions.uploadedAnswer(render, uploadId)
  })

  app.delete(`${base}/:uploadId`, {
    schema: {
      tags: ['renders'],
      summary: 'Abort a direct upload: its parts and staged object are deleted, the session reads aborted',
      params: UploadParams,
      response: { 204: Type.Null({ description: 'aborted' }), ...problemResponses(400, 404, 409, 503) }
    }
  }, async (request, reply) => {
    await app.directUploads.abort(request.params)
    return reply.code(204).send(null)
  })
}

export default directUploadRoutes
