import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { ListQuery, VideoParams, problemResponses } from '../schemas/common.js'
import { CodeLockRequest, CodeVersion, CodeVersionList, CodeVersionParams, CodeVersionWithContent, CreateCodeVersion, DiffQuery, RawCodeHeaders, type CreateCodeVersionType } from '../schemas/code.js'
import { badRequest, unsupportedMediaType } from '../src/errors.js'
import type { CodeVersionRecord } from '../src/code/store.js'
import { writeIdentityOf } from '../src/idempotency/plugin.js'

const TEXT_BODY = /^text\/[\w.+-]+/i
const CHARSET = /;\s*charset="?([^";\s]+)"?/i

const toSelector = (version: string): number | 'latest' => version === 'latest' ? 'latest' : Number(version)

/** Raw text when the client's first choice is a text type (`Accept: text/plain`); JSON otherwise. */
function wantsRaw (accept: string | undefined): boolean {
  return accept !== undefined && /^\s*text\//i.test(accept)
}

/** If-None-Match names this content (strong or weak form of the sha256 tag, or `*`). */
function notModified (ifNoneMatch: string | undefined, sha256: string): boolean {
  if (ifNoneMatch === undefined) return false
  return ifNoneMatch.split(',').some((tag) => {
    const trimmed = tag.trim()
    return trimmed === '*' || trimmed.replace(/^W\//, '') === `"${sha256}"`
  })
}

const VersionResponses = {
  200: {
    description: 'the version with its content (JSON), or the raw text with Accept: text/plain',
    content: { 'application/json': { schema: CodeVersionWithContent }, 'text/plain': { schema: Type.String() } }
  },
  304: { description: 'Not Modified: If-None-Match names this content', type: 'null' },
  ...problemResponses(400, 404, 503)
}

const codeRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const base = '/v1/projects/:projectId/videos/:videoId/code'
  const maxCodeBytes = app.config.maxCodeBytes

  // Raw code arrives as text/*: kept as bytes so the store can refuse invalid UTF-8 instead of mangling it.
  app.removeContentTypeParser(['text/plain', 'application/json'])
  app.addContentTypeParser(TEXT_BODY, { parseAs: 'buffer', bodyLimit: maxCodeBytes }, (_request, body, done) => { done(null, body) })
  // JSON escapes (\n, \") grow the text, so the JSON envelope may be larger than the code it carries.
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: maxCodeBytes * 4 + 64 * 1024 }, app.getDefaultJsonParser('error', 'error'))

  // The store hands out one frozen view per cached latest version, so its JSON is built once, not per request.
  const serializedViews = new WeakMap<object, string>()

  async function answerVersion (request: FastifyRequest, reply: FastifyReply, record: CodeVersionRecord): Promise<FastifyReply> {
    reply.header('etag', `"${record.sha256}"`).header('vary', 'accept').header('x-code-version', String(record.version))
    if (notModified(request.headers['if-none-match'], record.sha256)) return await reply.code(304).send()
    const view = await app.codeStore.withContent(record)
    if (wantsRaw(request.headers.accept)) return await reply.type('text/plain; charset=utf-8').send(view.content)
    let json = serializedViews.get(view)
    if (json === undefined) {
      json = String(reply.serializeInput(view as unknown as Record<string, unknown>, '200', 'application/json'))
      serializedViews.set(view, json)
    }
    return await reply.type('application/json; charset=utf-8').send(json)
  }

  app.post(base, {
    schema: {
      tags: ['code'],
      summary: 'Store a new code version (JSON or a raw text/* body); 200 with the latest when the content equals it, 409 when baseVersion is stale',
      params: VideoParams,
      headers: RawCodeHeaders,
      body: { content: { 'application/json': { schema: CreateCodeVersion } } },
      response: { 200: CodeVersion, 201: CodeVersion, ...problemResponses(400, 409, 413, 415, 503) }
    }
  }, async (request, reply) => {
    const { projectId, videoId } = request.params
    const body: unknown = request.body
    const headerBase = request.headers['x-base-version']
    let fields: CreateCodeVersionType
    if (Buffer.isBuffer(body)) {
      const charset = CHARSET.exec(request.headers['content-type'] ?? '')?.[1]
      if (charset !== undefined && !/^(utf-?8|us-ascii)$/i.test(charset)) throw unsupportedMediaType(`code is stored as UTF-8; send it as UTF-8, not ${charset}`)
      fields = { content: '', filename: request.headers['x-filename'] }
    } else if (typeof body === 'object' && body !== null) {
      fields = body as CreateCodeVersionType
    } else if (request.headers['content-type'] === undefined) {
      throw badRequest('send the code as JSON { content, ... } or as a raw text/* body')
    } else {
      throw unsupportedMediaType('send the code as application/json or a text/* type')
    }
    const { created, codeVersion } = await app.codeStore.createVersion({
      ...fields,
      projectId,
      videoId,
      content: Buffer.isBuffer(body) ? body : fields.content,
      baseVersion: fields.baseVersion ?? (headerBase === undefined ? undefined : Number(headerBase))
    }, writeIdentityOf(request))
    if (created) reply.code(201).header('location', `${request.url.split('?')[0]}/versions/${codeVersion.version}`)
    return reply.header('etag', `"${codeVersion.sha256}"`).send(codeVersion)
  })

  app.get(base, {
    schema: {
      tags: ['code'],
      summary: 'The latest code version: JSON with content and a download URL, or raw with Accept: text/plain; ETag is the sha256',
      params: VideoParams,
      response: VersionResponses
    }
  }, async (request, reply) => {
    const record = await app.codeStore.getVersion(request.params.projectId, request.params.videoId, 'latest')
    return await answerVersion(request, reply, record)
  })

  app.get(`${base}/versions`, {
    schema: {
      tags: ['code'],
      summary: 'List code versions, newest first, without content',
      params: VideoParams,
      querystring: ListQuery,
      response: { 200: CodeVersionList, ...problemResponses(400, 404, 503) }
    }
  }, async (request) => await app.codeStore.listVersions(request.params.projectId, request.params.videoId, request.query))

  app.get(`${base}/versions/:version`, {
    schema: {
      tags: ['code'],
      summary: 'One code version (or `latest`), JSON or raw as GET .../code',
      params: CodeVersionParams,
      response: VersionResponses
    }
  }, async (request, reply) => {
    const { projectId, videoId, version } = request.params
    return await answerVersion(request, reply, await app.codeStore.getVersion(projectId, videoId, toSelector(version)))
  })

  app.get(`${base}/versions/:version/diff`, {
    schema: {
      tags: ['code'],
      summary: 'Unified diff from ?from= to this version (text/x-diff)',
      params: CodeVersionParams,
      querystring: DiffQuery,
      response: {
        200: { description: 'unified diff', content: { 'text/x-diff': { schema: Type.String() } } },
        ...problemResponses(400, 404, 503)
      }
    }
  }, async (request, reply) => {
    const { projectId, videoId, version } = request.params
    const patch = await app.codeStore.diffVersions(projectId, videoId, toSelector(version), toSelector(request.query.from))
    return await reply.type('text/x-diff; charset=utf-8').send(patch)
  })

  app.put(`${base}/versions/:version/lock`, {
    schema: {
      tags: ['code'],
      summary: 'Apply S3 Object Lock retention or a legal hold to a version; 409 where the code bucket has no Object Lock',
      params: CodeVersionParams,
      body: CodeLockRequest,
      response: { 200: CodeVersion, ...problemResponses(400, 404, 409, 503) }
    }
  }, async (request) => {
    const { projectId, videoId, version } = request.params
    return await app.codeStore.lockVersion(projectId, videoId, toSelector(version), request.body)
  })
}

export default codeRoutes
