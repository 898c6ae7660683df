import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { problemResponses, VideoParams } from '../../schemas/common.js'
import { RenderUploaded } from '../../schemas/renders.js'
import { DirectUploadComplete, DirectUploadCreated, DirectUploadRequest, PartUrls, PartUrlsRequest, UploadParams, UploadState } from '../../schemas/uploads.js'
import { renderLocation } from '../../src/renders/store.js'

const directUploadRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const base = '/v1/projects/:projectId/videos/:videoId/uploads'

  app.post(base, {
    schema: {
      tags: ['renders'],
      summary: 'Open a direct-to-S3 upload: one presigned PUT below DIRECT_MULTIPART_THRESHOLD, a multipart upload from it (part URLs on demand)',
      description: 'method PUT: send the PUT with the returned `headers` (Content-Type and, where configured, SSE headers are signed into the URL, ' +
        'and so is its Content-Length). method MULTIPART: no URLs yet; ask POST .../uploads/{uploadId}/parts for part URLs as you go (at most 100 ' +
        'at a time), PUT each part, and GET the session to see which parts S3 holds (to resume). The session lives until `completeBy` ' +
        '(DIRECT_SESSION_TTL_SECONDS), whatever one URL\'s lifetime. Then call complete; the object becomes a render version only once verified. ' +
        'Open sessions are capped per project and per video (MAX_OPEN_UPLOADS_PER_PROJECT, MAX_OPEN_UPLOADS_PER_VIDEO): past a cap 429 with Retry-After.',
      params: VideoParams,
      body: DirectUploadRequest,
      response: { 201: DirectUploadCreated, ...problemResponses(400, 413, 415, 429, 503) }
    }
  }, async (request, reply) => {
    const { projectId, videoId } = request.params
    const plan = await app.directUploads.start({ projectId, videoId, ...request.body }, () => request.raw.socket.destroyed)
    return reply.code(201).header('location', `/v1/projects/${projectId}/videos/${videoId}/uploads/${plan.uploadId}`).send(plan)
  })

  app.post(`${base}/:uploadId/parts`, {
    schema: {
      tags: ['renders'],
      summary: 'Presigned URLs for parts of a pending multipart upload, signed now (at most 100 per request)',
      description: 'Each URL expires at `expiresAt` (PRESIGN_EXPIRES_SECONDS from now, never after the session\'s completeBy); ask again for a fresh one. ' +
        'A part number outside 1..partCount, or listed twice, is 400; a single-PUT or non-pending session 409; an expired one 410.',
      params: UploadParams,
      body: PartUrlsRequest,
      response: { 200: PartUrls, ...problemResponses(400, 404, 409, 410, 503) }
    }
  }, async (request) => {
    const { projectId, videoId, uploadId } = request.params
    return { parts: await app.directUploads.signParts({ projectId, videoId, uploadId, partNumbers: request.body.partNumbers }, () => request.raw.socket.destroyed) }
  })

  app.get(`${base}/:uploadId`, {
    schema: {
      tags: ['renders'],
      summary: "An upload session's state (direct or proxied); a pending multipart session lists the parts S3 holds",
      params: UploadParams,
      response: { 200: UploadState, ...problemResponses(400, 404, 503) }
    }
  }, async (request) => await app.directUploads.state(request.params))

  app.post(`${base}/:uploadId/complete`, {
    schema: {
      tags: ['renders'],
      summary: 'Verify the uploaded object (size, part ETags, container, SHA-256) and create the render version: 201; 200 with the same render when already completed',
      description: 'Parts that S3 does not hold are 409 naming them (missingParts); a report that does not fit the upload otherwise (numbering, wrong ETags) is 400; either way the session stays open; an object that fails ' +
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
    const outcome = await app.directUploads.complete({ projectId, videoId, uploadId, parts: request.body.parts, sha256: request.body.sha256 })
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
