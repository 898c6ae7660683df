import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Multipart, MultipartFile } from '@fastify/multipart'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Readable } from 'node:stream'
import { ListQuery, problemResponses, VideoParams } from '../schemas/common.js'
import { RenderList, RenderParams, RenderRecord, RenderUploaded, RenderUploadForm, RenderUploadHeaders, SceneClip, SceneParams } from '../schemas/renders.js'
import { badRequest, notFound, unsupportedMediaType } from '../src/errors.js'
import type { UploadBody } from '../src/uploads/proxied.js'
import { renderLocation, type RenderDetails, type RenderVersion } from '../src/renders/store.js'
import { writeIdentityOf } from '../src/idempotency/plugin.js'

const toVersion = (version: string): number | 'latest' => version === 'latest' ? 'latest' : Number(version)

/** Multipart forms carry a few bytes of framing around the file; allowed on top of the maximum video size. */
const FORM_OVERHEAD_BYTES = 1024 * 1024

/**
 * Upload routes document their bodies but stream them: the body schema is for OpenAPI only, so a validation
 * failure of the body is ignored while one of the path parameters (checked first) is still a 400.
 */
function paramsOnly (request: FastifyRequest): void {
  const failure = request.validationError as (Error & { validationContext?: string }) | undefined
  if (failure !== undefined && failure.validationContext !== 'body') throw failure
}

const RAW_BODY = {
  'video/*': { schema: { type: 'string', format: 'binary', description: 'the raw video bytes (application/octet-stream is accepted too)' } }
}

function fieldValue (part: MultipartFile, name: string): string | undefined {
  const field = part.fields[name]
  const single = Array.isArray(field) ? field[0] : field
  if (single === undefined || single.type !== 'field') return undefined
  return typeof single.value === 'string' ? single.value : JSON.stringify(single.value)
}

/** The multipart fields sent before the file part, checked before a byte of the file is read. */
function formDetails (part: MultipartFile): RenderDetails {
  return checkedDetails({ title: fieldValue(part, 'title'), durationSeconds: fieldValue(part, 'durationSeconds'), resolution: fieldValue(part, 'resolution'), metadata: fieldValue(part, 'metadata') })
}

/** Title, duration, resolution and metadata as sent (form fields or X- headers), each checked: 400 when malformed. */
function checkedDetails (given: { title?: string, durationSeconds?: string, resolution?: string, metadata?: string }): RenderDetails {
  const details: RenderDetails = {}
  const title = given.title
  if (title !== undefined) {
    if (title.length > 500) throw badRequest('title must be at most 500 characters')
    details.title = title
  }
  const duration = given.durationSeconds
  if (duration !== undefined) {
    const seconds = Number(duration)
    if (duration.trim() === '' || !Number.isFinite(seconds) || seconds < 0) throw badRequest('durationSeconds must be a non-negative number')
    details.durationSeconds = seconds
  }
  const resolution = given.resolution
  if (resolution !== undefined) {
    if (!/^[0-9]{1,5}x[0-9]{1,5}$/.test(resolution)) throw badRequest('resolution must look like 1920x1080')
    details.resolution = resolution
  }
  const metadata = given.metadata
  if (metadata !== undefined) {
    let parsed: unknown
    try { parsed = JSON.parse(metadata) } catch { throw badRequest('metadata must be a JSON object') }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw badRequest('metadata must be a JSON object')
    details.metadata = parsed as Record<string, unknown>
  }
  return details
}

const ONE_FILE = 'the form has more than one file part; send exactly one part named "file"'

/** Reads the rest of a form after its file part: another file part (or the parser's file limit) is a 400. */
async function onlyFilePart (parts: AsyncIterableIterator<Multipart>): Promise<void> {
  try {
    for (let next = await parts.next(); next.done !== true; next = await parts.next()) {
      if (next.value.type === 'file') {
        next.value.file.resume()
        throw badRequest(ONE_FILE)
      }
    }
  } catch (error) {
    if ((error as { code?: string }).code === 'FST_FILES_LIMIT') throw badRequest(ONE_FILE)
    throw error
  }
}

/** An AbortSignal that fires when the client goes away before its body has fully arrived. */
function clientGoneSignal (request: FastifyRequest): AbortSignal {
  const controller = new AbortController()
  const onGone = (): void => { if (!request.raw.complete) controller.abort() }
  // 'close' also fires when the socket goes; a completed body means the client sent everything, so it is not gone.
  request.raw.once('close', onGone)
  return controller.signal
}

/** The video bytes of a request, raw or as the `file` part of a form, with what is known about their length. */
async function uploadBody (request: FastifyRequest, maxBytes: number): Promise<{ body: UploadBody, details: RenderDetails }> {
  const signal = clientGoneSignal(request)
  const declared = request.headers['content-length'] === undefined ? undefined : Number(request.headers['content-length'])
  if (request.isMultipart()) {
    const limited = declared !== undefined && declared > maxBytes + FORM_OVERHEAD_BYTES ? maxBytes + 1 : undefined
    if (limited !== undefined) return { body: { stream: Readable.from([]), declaredLength: limited, signal }, details: {} }
    const parts = request.parts()
    let next = await parts.next()
    while (next.done !== true && next.value.type === 'field') next = await parts.next()
    if (next.done === true) throw badRequest('the form has no file part; send the video as the part named "file"')
    const part = next.value as MultipartFile
    if (part.fieldname !== 'file') throw badRequest(`the file part must be named "file", not "${part.fieldname}"`)
    const details = formDetails(part)
    return { body: { stream: part.file, truncated: () => part.file.truncated, signal, finished: async () => { await onlyFilePart(parts) } }, details }
  }
  if (!(request.body instanceof Readable)) throw unsupportedMediaType('send the video as a raw video/* (or application/octet-stream) body or as multipart/form-data')
  // Header validation may already have coerced x-duration-seconds to a number.
  const header = (name: string): string | undefined => { const value = request.headers[name]; return value === undefined ? undefined : String(value) }
  const details = checkedDetails({ title: header('x-title'), durationSeconds: header('x-duration-seconds'), resolution: header('x-resolution') })
  return { body: { stream: request.body, declaredLength: declared, signal }, details }
}

const renderRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const base = '/v1/projects/:projectId/videos/:videoId/renders'

  // Video bodies are streamed by the handler, never buffered by a parser (and so not subject to bodyLimit).
  const passThrough = (_request: FastifyRequest, payload: Readable, done: (error: Error | null, body?: unknown) => void): void => { done(null, payload) }
  app.addContentTypeParser('application/octet-stream', passThrough)
  app.addContentTypeParser(/^video\/[A-Za-z0-9.+-]+$/, passThrough)

  const withLink = async <T extends { key: string }>(record: T): Promise<T & { downloadUrl: string, expiresAt: string }> =>
    ({ ...record, ...await app.renderVersions.downloadUrl(record) })

  /**
   * Runs an upload handler in one of the replica's upload slots (429 when none is free). An upload that fails before
   * its body has arrived closes the connection rather than reading the rest.
   */
  async function receiving<T> (request: FastifyRequest, reply: FastifyReply, run: () => Promise<T>): Promise<T> {
    paramsOnly(request)
    const release = app.renderUploads.admit()
    try {
      return await run()
    } catch (error) {
      if (!request.raw.complete) reply.header('connection', 'close')
      throw error
    } finally {
      release()
    }
  }

  app.post(base, {
    schema: {
      tags: ['renders'],
      summary: 'Upload a rendered video through the service (raw video/* body or multipart/form-data); streams to S3 and creates the next render version',
      description: 'The body is streamed to S3 (never buffered), hashed with SHA-256 on the way and checked to be a video container from its first bytes. ' +
        'Each successful upload creates the next render version; two concurrent uploads get two versions.',
      params: VideoParams,
      headers: RenderUploadHeaders,
      body: { content: { 'multipart/form-data': { schema: RenderUploadForm }, ...RAW_BODY } },
      response: { 201: RenderUploaded, ...problemResponses(400, 404, 413, 415, 429, 503) }
    },
    attachValidation: true
  }, async (request, reply) => await receiving(request, reply, async () => {
    const { projectId, videoId } = request.params
    const { body, details } = await uploadBody(request, app.config.maxVideoBytes)
    const { render, uploadId } = await app.renderUploads.uploadRender({ projectId, videoId, body, details, identity: writeIdentityOf(request) })
    reply.code(201).header('location', renderLocation(projectId, videoId, render.version))
    return await app.renderVersions.uploadedAnswer(render, uploadId)
  }))

  app.put(`${base}/:version/scenes/:sceneNumber`, {
    schema: {
      tags: ['renders'],
      summary: 'Attach one scene clip to an existing render version (raw video/* body or multipart part "file"); re-putting a scene replaces its clip',
      params: SceneParams,
      body: { content: { 'multipart/form-data': { schema: RenderUploadForm }, ...RAW_BODY } },
      response: { 201: SceneClip, ...problemResponses(400, 404, 413, 415, 429, 503) }
    },
    attachValidation: true
  }, async (request, reply) => await receiving(request, reply, async () => {
    const { projectId, videoId, version, sceneNumber } = request.params
    const render = await app.renderVersions.get(projectId, videoId, toVersion(version))
    if (render === undefined) throw notFound(`video ${videoId} of project ${projectId} has no render version ${version}`)
    const { body } = await uploadBody(request, app.config.maxVideoBytes)
    const scene = await app.renderUploads.uploadScene({ render, sceneNumber, body })
    reply.code(201).header('location', renderLocation(projectId, videoId, render.version))
    return await withLink(scene)
  }))

  app.get(base, {
    schema: {
      tags: ['renders'],
      summary: 'List render versions, newest first',
      params: VideoParams,
      querystring: ListQuery,
      response: { 200: RenderList, ...problemResponses(400, 404, 503) }
    }
  }, async (request) => {
    const { projectId, videoId } = request.params
    const page = await app.renderVersions.list(projectId, videoId, request.query)
    return { items: await Promise.all(page.items.map(withLink)), nextCursor: page.nextCursor }
  })

  const findRender = async (projectId: string, videoId: string, version: string): Promise<RenderVersion> => {
    const render = await app.renderVersions.get(projectId, videoId, toVersion(version))
    if (render === undefined) throw notFound(`video ${videoId} of project ${projectId} has no render version ${version}`)
    return render
  }

  app.get(`${base}/:version`, {
    schema: {
      tags: ['renders'],
      summary: 'One render version with a fresh presigned downloadUrl and its scene clips',
      params: RenderParams,
      response: { 200: RenderRecord, ...problemResponses(400, 404, 503) }
    }
  }, async (request) => {
    const { projectId, videoId, version } = request.params
    const render = await findRender(projectId, videoId, version)
    const scenes = await app.renderVersions.scenes(projectId, videoId, render.version)
    return { ...await withLink(render), scenes: await Promise.all(scenes.map(withLink)) }
  })

  app.get(`${base}/:version/content`, {
    schema: {
      tags: ['renders'],
      summary: 'Redirect (302) to a presigned GET URL of the render',
      params: RenderParams,
      response: { 302: { description: 'Location is a presigned GET URL', type: 'null' }, ...problemResponses(400, 404, 503) }
    }
  }, async (request, reply) => {
    const { projectId, videoId, version } = request.params
    const { downloadUrl } = await app.renderVersions.downloadUrl(await findRender(projectId, videoId, version))
    return await reply.code(302).header('cache-control', 'no-store').redirect(downloadUrl)
  })
}

export default renderRoutes
