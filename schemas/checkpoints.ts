// Threads and their LangGraph checkpoints: the shapes RenderStoreCheckpointSaver sends and reads.
import { Type, type Static } from 'typebox'
import { ID_PATTERN, ProjectId } from './common.js'

export const ThreadId = Type.String({ pattern: ID_PATTERN, description: 'thread id (LangGraph configurable.thread_id)', examples: ['intro-run-1'] })
export const CheckpointId = Type.String({ pattern: ID_PATTERN, description: 'checkpoint id (a uuid6 from LangGraph)' })
const CheckpointNs = Type.String({ maxLength: 1024, description: 'checkpoint namespace ("" for the root graph)' })
const Base64 = Type.String({ pattern: '^[A-Za-z0-9+/]*={0,2}$', description: 'bytes, base64' })
const SerdeType = Type.String({ minLength: 1, maxLength: 64, description: 'the serializer\'s type tag (json, bytes, empty, ...)' })

export const ThreadParams = Type.Object({ projectId: ProjectId, threadId: ThreadId })
export const CheckpointParams = Type.Object({ projectId: ProjectId, threadId: ThreadId, checkpointId: Type.Union([Type.Literal('latest'), CheckpointId], { description: 'a checkpoint id, or `latest`' }) })
export const WriteParams = Type.Object({ projectId: ProjectId, threadId: ThreadId, checkpointId: CheckpointId, taskId: Type.String({ pattern: ID_PATTERN, description: 'the task that wrote' }) })

export const Payload = Type.Object({ type: SerdeType, data: Base64 }, { $id: 'CheckpointPayload', additionalProperties: false })
export const Blob = Type.Object({ channel: Type.String({ minLength: 1, maxLength: 512 }), version: Type.String({ minLength: 1, maxLength: 128 }), type: SerdeType, data: Base64 }, { $id: 'CheckpointBlob', additionalProperties: false })
const Versions = Type.Record(Type.String(), Type.Union([Type.String({ maxLength: 128 }), Type.Number()]), { $id: 'ChannelVersions' })

export const PutCheckpoint = Type.Object({
  checkpointNs: Type.Optional(CheckpointNs),
  parentCheckpointId: Type.Optional(CheckpointId),
  checkpoint: Payload,
  metadata: Type.Record(Type.String(), Type.Unknown(), { description: 'checkpoint metadata (JSON); lists filter on it' }),
  channelVersions: Versions,
  blobs: Type.Array(Blob, { maxItems: 1000, description: 'values of the channels this checkpoint changed, by version' })
}, { $id: 'PutCheckpoint', additionalProperties: false })
export type PutCheckpointType = Static<typeof PutCheckpoint>

export const PutWrites = Type.Object({
  checkpointNs: Type.Optional(CheckpointNs),
  taskPath: Type.Optional(Type.String({ maxLength: 2048 })),
  writes: Type.Array(Type.Object({ idx: Type.Integer({ minimum: -1000, maximum: 1_000_000 }), channel: Type.String({ minLength: 1, maxLength: 512 }), type: SerdeType, data: Base64 }, { additionalProperties: false }), { minItems: 1, maxItems: 1000 })
}, { $id: 'PutCheckpointWrites', additionalProperties: false })
export type PutWritesType = Static<typeof PutWrites>

export const CheckpointStored = Type.Object({ threadId: Type.String(), checkpointNs: Type.String(), checkpointId: Type.String(), created: Type.Boolean() }, { $id: 'CheckpointStored' })
export const WritesStored = Type.Object({ threadId: Type.String(), checkpointId: Type.String(), taskId: Type.String(), stored: Type.Integer({ description: 'writes newly kept (a repeat keeps none)' }) }, { $id: 'CheckpointWritesStored' })

export const PendingWrite = Type.Object({ taskId: Type.String(), idx: Type.Integer(), channel: Type.String(), taskPath: Type.String(), type: Type.String(), data: Type.String() }, { $id: 'PendingWrite' })

export const CheckpointRecord = Type.Object({
  threadId: Type.String(),
  checkpointNs: Type.String(),
  checkpointId: Type.String(),
  parentCheckpointId: Type.Optional(Type.String()),
  checkpoint: Payload,
  metadata: Type.Record(Type.String(), Type.Unknown()),
  channelVersions: Versions,
  blobs: Type.Array(Blob),
  pendingWrites: Type.Array(PendingWrite),
  createdAt: Type.String()
}, { $id: 'CheckpointRecord' })
export const CheckpointList = Type.Object({ items: Type.Array(CheckpointRecord), nextCursor: Type.Union([Type.String(), Type.Null()]) }, { $id: 'CheckpointList' })

export const CheckpointQuery = Type.Object({ checkpointNs: Type.Optional(CheckpointNs) }, { additionalProperties: false })
export const ListCheckpointsQuery = Type.Object({
  checkpointNs: Type.Optional(CheckpointNs),
  before: Type.Optional(CheckpointId),
  filter: Type.Optional(Type.String({ maxLength: 4096, description: 'JSON object: metadata keys and the values they must equal' })),
  limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 }))
}, { additionalProperties: false })
export const ListThreadsQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 }))
}, { additionalProperties: false })
export const ThreadList = Type.Object({
  items: Type.Array(Type.Object({ threadId: Type.String(), createdAt: Type.String(), updatedAt: Type.String() }, { $id: 'ThreadSummary' })),
  nextCursor: Type.Union([Type.String(), Type.Null()])
}, { $id: 'ThreadList' })
