// tus 1.0.0 at /v1/projects/{projectId}/videos/{videoId}/tus: creation (+ with upload), HEAD, PATCH, termination,
// expiration and checksums. The upload's state is in DynamoDB and its bytes in S3, so any replica answers.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Readable } from 'node:stream'
import { problemResponses, VideoParams } from '../../schemas/common.js'
import { TUS_BODY, TusCreated, TusCreateHeaders, TusHeadAnswer, TusHeaders, TusOptionsAnswer, TusParams, TusPatched, TusPatchHeaders, TusTerminated } from '../../schemas/tus.js'
import { badRequest, unsupportedMediaType } from '../../src/errors.js'
import { recordBestEffortFailure } from '../../src/http/metrics.js'
import {
  OFFSET_CONTENT_TYPE, TUS_CHECKSUM_ALGORITHMS, TUS_EXTENSIONS, TUS_VERSION, checkedFiletype, integerHeader, parseChecksum, parseMetadata, formatMetadata, unsupportedVersion
} from '../../src/uploads/tus/protocol.js'
import { TusClientGone, createTusUploads, type TusBody, type TusUploadState } from '../../src/uploads/tus/store.js'

const single = (value: string | string[] | undefined): string | undefined => Array.isArray(value) ? value.join(',') : value

/** An AbortSignal that fires when the client goes away before its body has fully arrived. */
function clientGoneSignal (request: FastifyRequest): AbortSignal {
  const controller = new AbortController()
  request.raw.once('close', () => { if (!request.raw.complete) controller.abort() })
  return controller.signal
}

/** The body of a PATCH (or creation-with-upload), which must be application/offset+octet-stream. */
function offsetBody (request: FastifyRequest): TusBody {
  const type = request.headers['content-type']?.split(';')[0].trim().toLowerCase()
  if (type !== OFFSET_CONTENT_TYPE || !(request.body instanceof Readable)) throw unsupportedMediaType(`Content-Type must be ${OFFSET_CONTENT_TYPE}`)
  return { stream: request.body, declaredLength: integerHeader('Content-Length', request.headers['content-length']), signal: clientGoneSignal(request) }
}

/** The body schema is for OpenAPI only (the body is streamed): ignore its validation, keep the others'. */
function paramsOnly (request: FastifyRequest): void {
  const failure = request.validationError as (Error & { validationContext?: string }) | undefined
  if (failure !== undefined && failure.validationContext !== 'body') throw failure
}

const tusRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const base = '/v1/projects/:projectId/videos/:videoId/tus'
  const tus = createTusUploads({ aws: app.aws, config: app.config, sessions: app.uploadSessions, renders: app.renderVersions, log: app.log })
  const location = (projectId: string, videoId: string, uploadId: string): string => `/v1/projects/${projectId}/videos/${videoId}/tus/${uploadId}`

  app.addContentTypeParser(OFFSET_CONTENT_TYPE, (_request: FastifyRequest, payload: Readable, done: (error: Error | null, body?: unknown) => void) => { done(null, payload) })

  // Every answer says which protocol it speaks; every request but OPTIONS must speak 1.0.0.
  app.addHook('onRequest', async (request, reply) => {
    reply.header('tus-resumable', TUS_VERSION)
    if (request.method === 'OPTIONS') return
    const given = single(request.headers['tus-resumable'])
    if (given !== TUS_VERSION) {
      reply.header('connection', 'close')
      throw unsupportedVersion(given)
    }
  })
  app.addHook('onSend', async (request, reply, payload) => {
    // A refusal before the body was read: close rather than read the rest of a large body.
    if (reply.statusCode >= 400 && !request.raw.complete) reply.header('connection', 'close')
    // A repeated creation (same Idempotency-Key) answers the recorded Location; its Upload-Offset and Upload-Expires
    // are the upload's as they are now (a creation-with-upload may have been continued since).
    const recorded = reply.getHeader('location')
    if (request.method === 'POST' && reply.statusCode === 201 && reply.getHeader('idempotent-replayed') === 'true' && typeof recorded === 'string') {
      const { projectId, videoId } = request.params as { projectId: string, videoId: string }
      const state = await tus.read(projectId, videoId, recorded.split('/').pop() ?? '')
        .catch((error: unknown) => { recordBestEffortFailure('tus-replay-state', error, request.log) })
      if (state !== undefined) answerState(reply, state)
    }
    return payload
  })

  const answerState = (reply: FastifyReply, state: TusUploadState): FastifyReply => {
    reply.header('upload-offset', String(state.offset)).header('upload-expires', state.expiresAt.toUTCString())
    if (state.renderVersion !== undefined) reply.header('x-render-version', String(state.renderVersion))
    return reply
  }

  const options = {
    tags: ['tus'],
    summary: 'tus discovery: the protocol version, extensions, maximum size and checksum algorithms this server supports',
    description: 'Like a CORS preflight, OPTIONS needs no API key (the auth plugin lets every OPTIONS through); it serves no data.',
    response: { 204: TusOptionsAnswer, ...problemResponses(400) }
  }
  const discover = async (_request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => reply.code(204)
    .header('tus-version', TUS_VERSION)
    .header('tus-extension', TUS_EXTENSIONS.join(','))
    .header('tus-max-size', String(app.config.maxVideoBytes))
    .header('tus-checksum-algorithm', TUS_CHECKSUM_ALGORITHMS.join(','))
    .send()
  app.options(base, { schema: { ...options, params: VideoParams } }, discover)
  app.options(`${base}/:uploadId`, { schema: { ...options, params: TusParams } }, discover)

  app.post(base, {
    schema: {
      tags: ['tus'],
      summary: 'tus creation: open a resumable upload of the next render version (Upload-Length, Upload-Metadata); with a body, its first bytes (creation-with-upload)',
      description: 'Answers 201 with Location (the upload URL for HEAD, PATCH and DELETE). When the last byte arrives the upload is checked like every upload ' +
        '(container sniffed from its first bytes, size, SHA-256) and becomes the next render version. An Idempotency-Key makes a repeated POST answer the same Location.',
      params: VideoParams,
      headers: TusCreateHeaders,
      body: { content: TUS_BODY },
      response: { 201: TusCreated, ...problemResponses(400, 412, 413, 415, 429, 460, 503) }
    },
    attachValidation: true
  }, async (request, reply) => {
    paramsOnly(request)
    const { projectId, videoId } = request.params
    if (request.headers['upload-defer-length'] !== undefined) throw badRequest('Upload-Defer-Length is not supported: send Upload-Length')
    const length = integerHeader('Upload-Length', request.headers['upload-length'])
    if (length === undefined) throw badRequest('Upload-Length is required')
    const metadata = parseMetadata(single(request.headers['upload-metadata']))
    const filetype = checkedFiletype(metadata.filetype)
    const withBody = request.headers['content-type'] !== undefined && request.body !== undefined && request.body !== null
    const body = withBody ? offsetBody(request) : undefined
    const checksum = parseChecksum(single(request.headers['upload-checksum']))
    let state = await tus.create({ projectId, videoId, length, metadata, filetype })
    reply.header('location', location(projectId, videoId, state.uploadId))
    if (body !== undefined && (body.declaredLength ?? 1) > 0) {
      const release = app.renderUploads.admit()
      try {
        state = await tus.append({ projectId, videoId, uploadId: state.uploadId, offset: 0, body, checksum })
      } catch (error) {
        // The upload exists; only a refusal of the upload itself is the answer. Otherwise the client continues with HEAD.
        if (error instanceof TusClientGone || !(typeof (error as { statusCode?: number }).statusCode === 'number' && [413, 415].includes((error as { statusCode: number }).statusCode))) {
          const created = state
          state = await tus.read(projectId, videoId, state.uploadId).catch((read: unknown) => {
            recordBestEffortFailure('tus-creation-state', read, request.log)
            return created
          })
        } else {
          throw error
        }
      } finally {
        release()
      }
    }
    return answerState(reply.code(201), state).send()
  })

  app.head(`${base}/:uploadId`, {
    // @fastify/swagger leaves HEAD routes out (they are usually GET's twin); this one is tus's own request.
    config: { swagger: { exposeHeadRoute: true } },
    schema: {
      tags: ['tus'],
      summary: 'tus: how many bytes of the upload are stored (Upload-Offset): resume from there',
      params: TusParams,
      headers: TusHeaders,
      response: { 200: TusHeadAnswer, ...problemResponses(400, 404, 410, 412, 423, 503) }
    }
  }, async (request, reply) => {
    const { projectId, videoId, uploadId } = request.params
    const state = await tus.status(projectId, videoId, uploadId)
    reply.header('cache-control', 'no-store').header('upload-length', String(state.length))
    if (Object.keys(state.metadata).length > 0) reply.header('upload-metadata', formatMetadata(state.metadata))
    return answerState(reply.code(200), state).send()
  })

  app.patch(`${base}/:uploadId`, {
    schema: {
      tags: ['tus'],
      summary: 'tus: append bytes at Upload-Offset (application/offset+octet-stream); the PATCH with the last byte makes the upload the next render version',
      description: 'A wrong Upload-Offset is 409 (ask with HEAD); another PATCH on the same upload at the same time is 423 with Retry-After; a body that is no ' +
        'video container is 415 (the upload fails). With Upload-Checksum a mismatch is 460 and none of the body is kept. Without it, a connection that drops keeps what arrived.',
      params: TusParams,
      headers: TusPatchHeaders,
      body: { content: TUS_BODY },
      response: { 204: TusPatched, ...problemResponses(400, 404, 409, 410, 412, 413, 415, 423, 429, 460, 503) }
    },
    attachValidation: true
  }, async (request, reply) => {
    paramsOnly(request)
    const { projectId, videoId, uploadId } = request.params
    const body = offsetBody(request)
    const offset = integerHeader('Upload-Offset', request.headers['upload-offset'])
    if (offset === undefined) throw badRequest('Upload-Offset is required')
    const checksum = parseChecksum(single(request.headers['upload-checksum']))
    const release = app.renderUploads.admit()
    try {
      const state = await tus.append({ projectId, videoId, uploadId, offset, body, checksum })
      return answerState(reply.code(204), state).send()
    } finally {
      release()
    }
  })

  app.delete(`${base}/:uploadId`, {
    schema: {
      tags: ['tus'],
      summary: 'tus termination: drop an unfinished upload and its bytes (a completed one is a render version: 409)',
      params: TusParams,
      headers: TusHeaders,
      response: { 204: TusTerminated, ...problemResponses(400, 404, 409, 410, 412, 423, 503) }
    }
  }, async (request, reply) => {
    const { projectId, videoId, uploadId } = request.params
    await tus.terminate(projectId, videoId, uploadId)
    return reply.code(204).send()
  })
}

export default tusRoutes
