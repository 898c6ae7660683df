import { Type, type Static } from 'typebox'

export const Liveness = Type.Object({
  status: Type.Literal('ok'),
  version: Type.String(),
  uptimeSeconds: Type.Number()
}, { $id: 'Liveness' })

const DependencyStatus = Type.Union([Type.Literal('healthy'), Type.Literal('degraded'), Type.Literal('unhealthy')])

const Writable = Type.Optional(Type.Boolean({ description: 'the last canary write and delete (HEALTH_WRITE_CHECK_MS) worked (true) or was refused (false)' }))
const WriteCheckedAt = Type.Optional(Type.String({ format: 'date-time', description: 'when the canary write last worked' }))
const Hidden = ' (only for callers with a valid API key when keys are configured, unless HEALTH_DETAILS=public)'

export const BucketCheck = Type.Object({
  status: DependencyStatus,
  bucket: Type.Optional(Type.String({ description: `the bucket's name${Hidden}` })),
  latencyMs: Type.Number(),
  writable: Writable,
  writeCheckedAt: WriteCheckedAt,
  error: Type.Optional(Type.String({ description: `why it is not healthy${Hidden}` }))
})

export const TableCheck = Type.Object({
  status: DependencyStatus,
  table: Type.Optional(Type.String({ description: `the table's name${Hidden}` })),
  tableStatus: Type.Optional(Type.String()),
  latencyMs: Type.Number(),
  writable: Writable,
  writeCheckedAt: WriteCheckedAt,
  error: Type.Optional(Type.String({ description: `why it is not healthy${Hidden}` }))
}, { $id: 'TableCheck' })

export const Readiness = Type.Object({
  overallStatus: DependencyStatus,
  timestamp: Type.String({ format: 'date-time' }),
  services: Type.Object({ s3Video: BucketCheck, s3Code: BucketCheck, dynamodb: TableCheck }, { $id: 'ServiceChecks' }),
  detail: Type.Optional(Type.String({ description: 'says that details were left out, and how to see them' }))
}, { $id: 'Readiness' })

export type ReadinessType = Static<typeof Readiness>
export type BucketCheckType = Static<typeof BucketCheck>
export type TableCheckType = Static<typeof TableCheck>
