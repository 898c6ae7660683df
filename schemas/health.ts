import { Type, type Static } from 'typebox'

export const Liveness = Type.Object({
  status: Type.Literal('ok'),
  version: Type.String(),
  uptimeSeconds: Type.Number()
}, { $id: 'Liveness' })

const DependencyStatus = Type.Union([Type.Literal('healthy'), Type.Literal('degraded'), Type.Literal('unhealthy')])

export const BucketCheck = Type.Object({
  status: DependencyStatus,
  bucket: Type.String(),
  latencyMs: Type.Number(),
  error: Type.Optional(Type.String())
})

export const TableCheck = Type.Object({
  status: DependencyStatus,
  table: Type.String(),
  tableStatus: Type.Optional(Type.String()),
  latencyMs: Type.Number(),
  error: Type.Optional(Type.String())
})

export const Readiness = Type.Object({
  overallStatus: DependencyStatus,
  timestamp: Type.String({ format: 'date-time' }),
  services: Type.Object({ s3Video: BucketCheck, s3Code: BucketCheck, dynamodb: TableCheck })
}, { $id: 'Readiness' })

export type ReadinessType = Static<typeof Readiness>
export type BucketCheckType = Static<typeof BucketCheck>
export type TableCheckType = Static<typeof TableCheck>
