import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { problemResponses, VideoParams } from '../../schemas/common.js'
import { UploadProgress, VideoStatusReport } from '../../schemas/renders.js'
import { HttpProblem, notFound } from '../../src/errors.js'
import { TERMINAL_UPLOAD_STATUSES } from '../../src/uploads/sessions.js'
import { toProgress } from '../../src/videos/status.js'

const POLL_MS = 500
const HEARTBEAT_MS = 15_000

const wantsEventStream = (accept: string | undefined): boolean => accept?.includes('text/event-stream') === true

type UploadSessionLike = Parameters<typeof toProgress>[0]
type Update = UploadSessionLike | undefined | Error

/** How many progress streams are open, per client (API key or address) and in all; 429 past either cap. */
function streamLimits (perClient: number, perReplica: number) {
  const byClient = new Map<string, number>()
  let total = 0
  return {
    admit (client: string): void {
      const mine = byClient.get(client) ?? 0
      if (total >= perReplica) throw new HttpProblem(429, 'Too Many Requests', `This replica serves at most ${perReplica} progress streams at once; poll the JSON progress or retry later.`, { headers: { 'retry-after': '5' } })
      if (mine >= perClient) throw new HttpProblem(429, 'Too Many Requests', `At most ${perClient} progress streams per client at once; close one or poll the JSON progress.`, { headers: { 'retry-after': '5' } })
      byClient.set(client, mine + 1)
      total++
    },
    release (client: string): void {
      const mine = (byClient.get(client) ?? 1) - 1
      if (mine <= 0) byClient.delete(client)
      else byClient.set(client, mine)
      total = Math.max(0, total - 1)
    },
    get open (): number { return total }
  }
}

/** One timer and one read per upload per interval on this replica, its result handed to every watcher. */
function sharedPollers (read: (projectId: string, videoId: string) => Promise<UploadSessionLike | undefined>, intervalMs: number) {
  const polls = new Map<string, { listeners: Set<(update: Update) => void>, timer: NodeJS.Timeout }>()
  return {
    watch (projectId: string, videoId: string, listener: (update: Update) => void): () => void {
      const key = `${projectId}\u0000${videoId}`
      let poll = polls.get(key)
      if (poll === undefined) {
        const listeners = new Set<(update: Update) => void>()
        const tick = (): void => {
          read(projectId, videoId).then((update) => update, (error: unknown) => error instanceof Error ? error : new Error(String(error))).then((update) => {
            for (const each of [...listeners]) each(update)
            const current = polls.get(key)
            if (current !== undefined && current.listeners.size > 0) current.timer = setTimeout(tick, intervalMs)
            else polls.delete(key)
          })
        }
        poll = { listeners, timer: setTimeout(tick, intervalMs) }
        polls.set(key, poll)
      }
      poll.listeners.add(listener)
      const own = poll
      return () => {
        own.listeners.delete(listener)
        if (own.listeners.size === 0 && polls.get(key) === own) { clearTimeout(own.timer); polls.delete(key) }
      }
    },
    get uploads (): number { return polls.size }
  }
}

const progressRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const base = '/v1/projects/:projectId/videos/:videoId'
  const streams = streamLimits(app.config.progressStreams?.maxPerClient ?? 10, app.config.progressStreams?.maxPerReplica ?? 200)
  const pollers = sharedPollers(async (projectId, videoId) => await app.uploadSessions.latest(projectId, videoId), app.config.progressStreams?.pollMs ?? POLL_MS)

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
        ...problemResponses(400, 404, 429, 503)
      }
    }
  }, async (request, reply) => {
    const { projectId, videoId } = request.params
    const first = await app.uploadSessions.latest(projectId, videoId)
    if (first === undefined) throw notFound(`video ${videoId} of project ${projectId} has no upload`)
    if (!wantsEventStream(request.headers.accept)) return toProgress(first)

    const client = request.apiKey !== undefined ? `key:${request.apiKey.id}` : `ip:${request.ip}`
    streams.admit(client)

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
    let heartbeat: NodeJS.Timeout | undefined
    let unwatch: (() => void) | undefined
    let eventId = 0
    let lastSent = ''
    const close = (): void => {
      if (!open) return
      open = false
      clearInterval(heartbeat)
      unwatch?.()
      streams.release(client)
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
    const show = (session: UploadSessionLike): boolean => {
      send('progress', toProgress(session))
      if (TERMINAL_UPLOAD_STATUSES.includes(session.status)) { close(); return false }
      return true
    }
    if (!show(first)) return
    // Every watcher of this upload on this replica shares one poll: one read per interval however many watch.
    unwatch = pollers.watch(projectId, videoId, (next) => {
      if (!open) return
      if (next instanceof Error) {
        request.log.warn({ err: next }, 'progress stream: reading the upload failed')
        send('error', { title: 'Service Unavailable', status: 503, detail: 'Storage is temporarily unavailable; reconnect shortly.' })
        close()
      } else if (next === undefined) {
        // The upload was withdrawn (refused input leaves no session): nothing more will happen to it.
        close()
      } else {
        show(next)
      }
    })
  })

  app.get(`${base}/status`, {
    schema: {
      tags: ['renders'],
      summary: 'Combined status of a video: its state and newest upload (progress, last error, retries), its latest code, and service availability',
      params: VideoParams,
      response: { 200: VideoStatusReport, ...problemResponses(400, 404, 503) }
    }
  }, async (request) => {
    const { projectId, videoId } = request.params
    const status = await app.videoStatus.get(projectId, videoId)
    if (status === undefined) throw notFound(`no video ${videoId} in project ${projectId}`)
    return status
  })
}

export default progressRoutes
