// The DynamoDB layout every store shares, and the one primitive that makes version numbers safe:
// a per-video claim taken with a single-item conditional write (works on dynalite, DynamoDB Local and AWS).
import { randomUUID } from 'node:crypto'
import { GetCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb'
import { conflict, serviceUnavailable } from './errors.js'

/*
 * Items, all in one table with string keys pk / sk:
 *   video record         pk=VIDEO#{projectId}#{videoId}  sk=VIDEO
 *                        gsi1pk=PROJECT#{projectId} gsi1sk={createdAt}#{videoId}  (project listing, newest first)
 *                        attributes: projectId, videoId, title, description, tags, customMetadata, status,
 *                        createdAt, updatedAt, revision (ETag source, +1 on every change),
 *                        latestCodeVersion, latestCodeSha256, latestRenderVersion, latestUploadId,
 *                        codeClaim / renderClaim: { version, token, expiresAt } while a version is being written
 *   code version         pk=VIDEO#…  sk=CODE#{version:09d}
 *   render version       pk=VIDEO#…  sk=RENDER#{version:09d}
 *   scene clip           pk=VIDEO#…  sk=RENDER#{version:09d}#SCENE#{scene:05d}
 *   upload session       pk=VIDEO#…  sk=UPLOAD#{uploadId}   (expiresAtEpoch: TTL)
 * IDs match ^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$, so '#' never occurs inside them.
 */
export function videoKey (projectId: string, videoId: string): { pk: string, sk: string } {
  return { pk: `VIDEO#${projectId}#${videoId}`, sk: 'VIDEO' }
}

/** The video record, read consistently (undefined for an unknown video): every store and the claims read it so. */
export async function readVideoRecord (ddb: DynamoDBDocumentClient, table: string, projectId: string, videoId: string): Promise<Record<string, unknown> | undefined> {
  const { Item } = await ddb.send(new GetCommand({ TableName: table, Key: videoKey(projectId, videoId), ConsistentRead: true }))
  return Item
}

export function projectIndexKey (projectId: string): string {
  return `PROJECT#${projectId}`
}

export type VersionKind = 'CODE' | 'RENDER'

export function versionSortKey (kind: VersionKind, version: number): string {
  return `${kind}#${String(version).padStart(9, '0')}`
}

export function sceneSortKey (version: number, sceneNumber: number): string {
  return `${versionSortKey('RENDER', version)}#SCENE#${String(sceneNumber).padStart(5, '0')}`
}

export function uploadSortKey (uploadId: string): string {
  return `UPLOAD#${uploadId}`
}

const ATTRIBUTES: Record<VersionKind, { counter: string, claim: string, committedBy: string }> = {
  CODE: { counter: 'latestCodeVersion', claim: 'codeClaim', committedBy: 'codeCommittedBy' },
  RENDER: { counter: 'latestRenderVersion', claim: 'renderClaim', committedBy: 'renderCommittedBy' }
}

export interface VersionClaim {
  kind: VersionKind
  projectId: string
  videoId: string
  version: number
  token: string
  /** the video record as it was when the claim was taken */
  previous: Record<string, unknown> | undefined
}

const isConditionFailure = (error: unknown): boolean => (error as { name?: string }).name === 'ConditionalCheckFailedException'
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

export function createVersionClaims ({ ddb, table, claimTtlMs = 60_000, maxWaitMs = 20_000 }: { ddb: DynamoDBDocumentClient, table: string, claimTtlMs?: number, maxWaitMs?: number }) {
  /**
   * Claims the next version of a kind for one video: at most one claim per video and kind exists at a time, so
   * numbers are handed out in order with no gaps and no duplicates. Creates the video record if it is missing.
   * With expectedLatest, a latest version other than that is a 409 carrying latestVersion.
   */
  async function claim ({ kind, projectId, videoId, expectedLatest, waitMs = maxWaitMs }: { kind: VersionKind, projectId: string, videoId: string, expectedLatest?: number, waitMs?: number }): Promise<VersionClaim> {
    const { counter, claim: claimAttribute } = ATTRIBUTES[kind]
    const key = videoKey(projectId, videoId)
    const deadline = Date.now() + waitMs
    for (let attempt = 0; ; attempt++) {
      const record = await readVideoRecord(ddb, table, projectId, videoId)
      const latest = (record?.[counter] as number | undefined) ?? 0
      if (expectedLatest !== undefined && expectedLatest !== latest) {
        throw conflict(`version ${expectedLatest} is not the latest; the latest is ${latest}`, { latestVersion: latest })
      }
      const held = record?.[claimAttribute] as { expiresAt: number } | undefined
      const now = Date.now()
      if (held === undefined || held.expiresAt < now) {
        const token = randomUUID()
        const version = latest + 1
        const nowIso = new Date(now).toISOString()
        try {
          await ddb.send(new UpdateCommand({
            TableName: table,
            Key: key,
            UpdateExpression: 'SET #claim = :claim, projectId = :projectId, videoId = :videoId, createdAt = if_not_exists(createdAt, :now), ' +
              'updatedAt = if_not_exists(updatedAt, :now), #status = if_not_exists(#status, :created), gsi1pk = :gsi1pk, ' +
              'gsi1sk = if_not_exists(gsi1sk, :gsi1sk), tags = if_not_exists(tags, :emptyList), revision = if_not_exists(revision, :one)',
            ConditionExpression: `${latest === 0 ? 'attribute_not_exists(#counter)' : '#counter = :latest'} AND (attribute_not_exists(#claim) OR #claim.expiresAt < :now_ms)`,
            ExpressionAttributeNames: { '#claim': claimAttribute, '#counter': counter, '#status': 'status' },
            ExpressionAttributeValues: {
              ':claim': { version, token, expiresAt: now + claimTtlMs },
              ':projectId': projectId,
              ':videoId': videoId,
              ':now': nowIso,
              ':created': 'created',
              ':gsi1pk': projectIndexKey(projectId),
              ':gsi1sk': `${nowIso}#${videoId}`,
              ':emptyList': [],
              ':one': 1,
              ':now_ms': now,
              ...(latest === 0 ? {} : { ':latest': latest })
            }
          }))
          return { kind, projectId, videoId, version, token, previous: record }
        } catch (error) {
          if (!isConditionFailure(error)) throw error
        }
      }
      if (Date.now() > deadline) throw serviceUnavailable(`another ${kind.toLowerCase()} version of this video is being written; retry shortly`, 1)
      await sleep(Math.min(200, 10 * 2 ** Math.min(attempt, 4)) * (0.5 + Math.random()))
    }
  }

  /**
   * Makes the claimed version the latest and drops the claim; `set` adds attributes to the video record. The claim's
   * token is recorded as the commit's, so a commit whose answer was lost is recognised as landed (and returned)
   * rather than rolled back. A claim that is no longer ours is a 503: the caller removes what it wrote.
   */
  async function commit (held: VersionClaim, set: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const { counter, claim: claimAttribute, committedBy } = ATTRIBUTES[held.kind]
    const names: Record<string, string> = { '#claim': claimAttribute, '#counter': counter, '#committedBy': committedBy }
    const values: Record<string, unknown> = { ':version': held.version, ':token': held.token, ':one': 1, ':now': new Date().toISOString() }
    const assignments = ['#counter = :version', '#committedBy = :token', 'updatedAt = :now']
    Object.entries(set).forEach(([name, value], index) => {
      names[`#a${index}`] = name
      values[`:a${index}`] = value
      assignments.push(`#a${index} = :a${index}`)
    })
    try {
      const { Attributes } = await ddb.send(new UpdateCommand({
        TableName: table,
        Key: videoKey(held.projectId, held.videoId),
        UpdateExpression: `SET ${assignments.join(', ')} REMOVE #claim ADD revision :one`,
        ConditionExpression: '#claim.#token = :token',
        ExpressionAttributeNames: { ...names, '#token': 'token' },
        ExpressionAttributeValues: values,
        ReturnValues: 'ALL_NEW'
      }))
      return Attributes ?? {}
    } catch (error) {
      const record = await readVideoRecord(ddb, table, held.projectId, held.videoId).catch(() => undefined)
      if (record?.[committedBy] === held.token) return record
      if (isConditionFailure(error)) throw serviceUnavailable(`the ${held.kind.toLowerCase()} version claim expired before the write finished; retry`, 1)
      throw error
    }
  }

  /** Applies an update to the video record only while the claim is this holder's; false when it is not. */
  async function updateWhileHeld (held: VersionClaim, updateExpression: string, values: Record<string, unknown> = {}): Promise<boolean> {
    try {
      await ddb.send(new UpdateCommand({
        TableName: table,
        Key: videoKey(held.projectId, held.videoId),
        UpdateExpression: updateExpression,
        ConditionExpression: '#claim.#token = :token',
        ExpressionAttributeNames: { '#claim': ATTRIBUTES[held.kind].claim, '#token': 'token' },
        ExpressionAttributeValues: { ':token': held.token, ...values }
      }))
      return true
    } catch (error) {
      if (isConditionFailure(error)) return false
      throw error
    }
  }

  /** Gives the claim back after a failed write, so the number is free again (best effort: it also expires). */
  async function release (held: VersionClaim): Promise<void> {
    await updateWhileHeld(held, 'REMOVE #claim')
  }

  /**
   * True while the claim is still this holder's: only then is nobody else writing its number. Callers that cannot
   * find out (DynamoDB down) clean up anyway: an orphan is the likely harm, another writer's loss the unlikely one.
   */
  async function holds (held: VersionClaim): Promise<boolean> {
    const { claim: claimAttribute } = ATTRIBUTES[held.kind]
    const record = await readVideoRecord(ddb, table, held.projectId, held.videoId)
    return (record?.[claimAttribute] as { token?: string } | undefined)?.token === held.token
  }

  /** Keeps a claim alive during a long write (a streamed upload); false if it was lost. */
  async function extend (held: VersionClaim, ttlMs = claimTtlMs): Promise<boolean> {
    return await updateWhileHeld(held, 'SET #claim.expiresAt = :expiresAt', { ':expiresAt': Date.now() + ttlMs })
  }

  return { claim, commit, release, extend, holds }
}

export type VersionClaims = ReturnType<typeof createVersionClaims>
