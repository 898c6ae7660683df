// Threads and their LangGraph checkpoints (RenderStoreCheckpointSaver's side of the wire): put a checkpoint under its
// id, put a task's pending writes, read one or the latest, list newest first with LangGraph's filters, delete a thread.
// Same auth, Idempotency-Key handling and problem+json answers as every other /v1 route.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ProjectParams, problemResponses } from '../schemas/common.js'
import {
  CheckpointList, CheckpointParams, CheckpointQuery, CheckpointRecord, CheckpointStored, ListCheckpointsQuery, ListThreadsQuery,
  PutCheckpoint, PutWrites, ThreadList, ThreadParams, WriteParams, WritesStored
} from '../schemas/checkpoints.js'
import { badRequest } from '../src/errors.js'
import { decodeCursor, encodeCursor } from '../src/table/cursor.js'
import { createCheckpointStore } from '../src/checkpoints/store.js'
import { encryptionParams } from '../src/aws/encryption.js'

/** Largest checkpoint or writes request: state carries code and paths, not media (payloads past 96 KiB go to S3). */
export const MAX_CHECKPOINT_BODY_BYTES = 16 * 1024 * 1024

function parseFilter (filter: string | undefined): Record<string, unknown> | undefined {
  if (filter === undefined) return undefined
  let parsed: unknown
  try {
    parsed = JSON.parse(filter)
  } catch {
    throw badRequest('filter must be a JSON object of metadata keys and values')
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw badRequest('filter must be a JSON object of metadata keys and values')
  return parsed as Record<string, unknown>
}

const checkpointRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config } = app
  const store = createCheckpointStore({ ddb: app.aws.ddb, s3: app.aws.s3, table: config.table, bucket: config.videoBucket, sse: encryptionParams(config), log: app.log })
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: MAX_CHECKPOINT_BODY_BYTES }, app.getDefaultJsonParser('error', 'error'))

  const thread = '/v1/projects/:projectId/threads/:threadId'

  app.get('/v1/projects/:projectId/threads', {
    schema: { tags: ['threads'], summary: 'The project\'s agent threads (those with checkpoints), in id order', params: ProjectParams, querystring: ListThreadsQuery, response: { 200: ThreadList, ...problemResponses(400, 503) } }
  }, async (request) => {
    const after = request.query.cursor === undefined ? undefined : decodeCursor(request.query.cursor, (position) => typeof position.thread === 'string' ? position.thread : undefined)
    const page = await store.listThreads(request.params.projectId, request.query.limit, after)
    return { items: page.items, nextCursor: page.next === undefined ? null : encodeCursor({ thread: page.next }) }
  })

  app.delete(thread, {
    schema: { tags: ['threads'], summary: 'Delete a thread with all its checkpoints and writes (204 also when there was none)', params: ThreadParams, response: { 204: { description: 'deleted', type: 'null' }, ...problemResponses(400, 503) } }
  }, async (request, reply) => {
    const { deletedItems } = await store.deleteThread(request.params.projectId, request.params.threadId)
    request.log.debug({ threadId: request.params.threadId, deletedItems }, 'thread deleted')
    return await reply.code(204).send(null)
  })

  app.get(`${thread}/checkpoints`, {
    schema: {
      tags: ['threads'],
      summary: 'A thread\'s checkpoints, newest first (per namespace), with LangGraph\'s filters: checkpointNs, before, filter (metadata), limit',
      params: ThreadParams,
      querystring: ListCheckpointsQuery,
      response: { 200: CheckpointList, ...problemResponses(400, 503) }
    }
  }, async (request) => {
    const { projectId, threadId } = request.params
    const query = request.query
    const cursor = query.cursor === undefined ? undefined : decodeCursor(query.cursor, (position) => typeof position.sk === 'string' && position.sk.startsWith('CHECKPOINT#') ? position.sk : undefined, ' for this thread')
    const page = await store.listCheckpoints(projectId, threadId, { checkpointNs: query.checkpointNs, before: query.before, filter: parseFilter(query.filter), limit: query.limit, cursor })
    return { items: page.items, nextCursor: page.next === undefined ? null : encodeCursor({ sk: page.next }) }
  })

  app.get(`${thread}/checkpoints/:checkpointId`, {
    schema: {
      tags: ['threads'],
      summary: 'One checkpoint (or the newest: `latest`) with its channel values and pending writes',
      params: CheckpointParams,
      querystring: CheckpointQuery,
      response: { 200: CheckpointRecord, ...problemResponses(400, 404, 503) }
    }
  }, async (request) => {
    const { projectId, threadId, checkpointId } = request.params
    return await store.getCheckpoint(projectId, threadId, checkpointId, request.query.checkpointNs ?? '')
  })

  app.put(`${thread}/checkpoints/:checkpointId`, {
    schema: {
      tags: ['threads'],
      summary: 'Store a checkpoint under its id: 201 when stored, 200 when this checkpoint was already stored (a repeat), 409 when another one has the id',
      params: CheckpointParams,
      body: PutCheckpoint,
      response: { 200: CheckpointStored, 201: CheckpointStored, ...problemResponses(400, 409, 413, 503) }
    }
  }, async (request, reply) => {
    const { projectId, threadId, checkpointId } = request.params
    if (checkpointId === 'latest') throw badRequest('`latest` names the newest checkpoint when reading; store a checkpoint under its own id')
    const body = request.body
    if (body.parentCheckpointId === checkpointId) throw badRequest('a checkpoint cannot be its own parent')
    const { created, checkpointNs } = await store.putCheckpoint(projectId, threadId, checkpointId, { ...body, checkpointNs: body.checkpointNs ?? '' })
    request.log.debug({ threadId, checkpointId, checkpointNs, created }, created ? 'checkpoint stored' : 'checkpoint was already stored')
    return await reply.code(created ? 201 : 200).send({ threadId, checkpointNs, checkpointId, created })
  })

  app.put(`${thread}/checkpoints/:checkpointId/writes/:taskId`, {
    schema: {
      tags: ['threads'],
      summary: 'Store one task\'s pending writes against a checkpoint; repeating it stores nothing again (same task id and index, same write)',
      params: WriteParams,
      body: PutWrites,
      response: { 200: WritesStored, ...problemResponses(400, 413, 503) }
    }
  }, async (request) => {
    const { projectId, threadId, checkpointId, taskId } = request.params
    const body = request.body
    const { stored } = await store.putWrites(projectId, threadId, checkpointId, taskId, body.checkpointNs ?? '', body.taskPath ?? '', body.writes)
    return { threadId, checkpointId, taskId, stored }
  })
}

export default checkpointRoutes
