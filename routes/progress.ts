import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { problemResponses, VideoParams } from '../schemas/common.js'
import { UploadProgress, VideoStatus } from '../schemas/renders.js'
import { notFound } from '../src/errors.js'
import { TERMINAL_UPLOAD_STATUSES } from '../src/upload-sessions.js'
import { toProgress } from '../src/video-status.js'

const POLL_MS = 500
const HEARTBEAT_MS = 15_000

const wantsEventStream = (accept: string | undefined): boolean => accept?.includes('text/event-stream') === true

const progressRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const base = '/v1/projects/:projectId/videos/:videoId'

  app.get(`${base}/progress`, {
    schema: {
      tags: ['renders'],
      summary: 'Progress of the newest upload; with Accept: text/event-stream, Server-Sent Events until it ends',
      description: 'Each SSE event is `event: progress` with the JSON below as data, sent when it changes; the stream ends after a terminal status ' +
        '(completed, failed, aborted, expired). Progress is stored in DynamoDB at most about once a second per upload, so any replica answers. ' +
        'An upload whose replica stopped (its lease, UPLOAD_LEASE_MS, was not renewed) reads `failed` with `failureReason: abandoned`, ' +
        'so a stream ends at most about one lease after the replica receiving the upload died.',
      params: VideoParams,
      response: {
        200: { description: 'the progress (JSON), or an SSE stream of it', content: { 'application/json': { schema: UploadProgress }, 'text/event-stream': { schema: { type: 'string' } } } },
        ...problemResponses(400, 404, 503)
      }
    }
  }, async (request, reply) => {
    const { projectId, videoId } = request.params
    const first = await app.uploadSessions.latest(projectId, videoId)
    if (first === undefined) throw notFound(`video ${videoId} of project ${projectId} has no upload`)
    if (!wantsEventStream(request.headers.accept)) return toProgress(first)

    reply.hijack()
    const raw = reply.raw
    raw.writeHead(200, {
      ...reply.getHeaders() as Record<string, string>,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no'
    })
    let open = true
    let timer: NodeJS.Timeout | undefined
    let heartbeat: NodeJS.Timeout | undefined
    let eventId = 0
    let lastSent = ''
    const close = (): void => {
      if (!open) return
      open = false
      clearTimeout(timer)
      clearInterval(heartbeat)
      raw.end()
    }
    raw.once('close', close)
    heartbeat = setInterval(() => { if (open) raw.write(': keep-alive\n\n') }, HEARTBEAT_MS)

    const send = (event: string, data: unknown): void => {
      const text = JSON.stringify(data)
      if (event === 'progress' && text === lastSent) return
      if (event === 'progress') lastSent = text
      raw.write(`id: ${++eventId}\nevent: ${event}\ndata: ${text}\n\n`)
    }
    const tick = async (session = first): Promise<void> => {
      if (!open) return
      send('progress', toProgress(session))
      if (TERMINAL_UPLOAD_STATUSES.includes(session.status)) { close(); return }
      timer = setTimeout(() => {
        app.uploadSessions.latest(projectId, videoId)
          .then(async (next) => {
            // The upload was withdrawn (refused input leaves no session): nothing more will happen to it.
            if (next === undefined) { close(); return }
            await tick(next)
          })
          .catch((error: unknown) => {
            request.log.warn({ err: error }, 'progress stream: reading the upload failed')
            if (open) send('error', { title: 'Service Unavailable', status: 503, detail: 'Storage is temporarily unavailable; reconnect shortly.' })
            close()
          })
      }, POLL_MS)
    }
    await tick()
  })

  app.get(`${base}/status`, {
    schema: {
      tags: ['renders'],
      summary: 'Combined status of a video: its state and newest upload (progress, last error, retries), its latest code, and service availability',
      params: VideoParams,
      response: { 200: VideoStatus, ...problemResponses(400, 404, 503) }
    }
  }, async (request) => {
    const { projectId, videoId } = request.params
    const status = await app.videoStatus.get(projectId, videoId)
    if (status === undefined) throw notFound(`no video ${videoId} in project ${projectId}`)
    return status
  })
}

export default progressRoutes
