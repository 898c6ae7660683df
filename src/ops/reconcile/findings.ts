// What reconcile concludes from what it read: which items are what, version gaps, lagging pointers, what each item
// names (and so protects), and which upload an object key belongs to.
import { versionSortKey } from '../../table/keys.js'
import { LATEST_ATTRIBUTE, type VideoRecord } from '../../table/video-record.js'
import { TERMINAL_UPLOAD_STATUSES, leaseLapsed, toSession } from '../../uploads/sessions.js'
import type { AbandonedSession, Kind, LaggingLatest } from './report.js'

export const VERSION_SK = /^(CODE|RENDER)#(\d{9})$/
/** scene items: SCENE#{v}#{s} now, RENDER#{v}#SCENE#{s} before issue 10 */
export const SCENE_SK = /^(?:SCENE#\d{9}#\d{5}|RENDER#\d{9}#SCENE#\d{5})$/

/** Every string in an item (nested too), with s3://bucket/key paths also as their key: what it may name. */
export function namedKeys (value: unknown, into: Set<string>): void {
  if (typeof value === 'string') {
    into.add(value)
    const path = /^s3:\/\/[^/]+\/(.+)$/.exec(value)
    if (path !== null) into.add(path[1])
  } else if (Array.isArray(value)) {
    for (const entry of value) namedKeys(entry, into)
  } else if (value !== null && typeof value === 'object') {
    for (const entry of Object.values(value)) namedKeys(entry, into)
  }
}

export interface Classified {
  videos: Map<string, VideoRecord>
  /** version and scene items */
  versionItems: Array<Record<string, unknown>>
  /** pk -> kind -> version -> item */
  versions: Map<string, Record<Kind, Map<number, Record<string, unknown>>>>
  sessions: Array<Record<string, unknown>>
  idempotency: Array<Record<string, unknown>>
}

export function classify (items: Array<Record<string, unknown>>): Classified {
  const result: Classified = { videos: new Map(), versionItems: [], versions: new Map(), sessions: [], idempotency: [] }
  for (const item of items) {
    const pk = String(item.pk)
    const sk = String(item.sk)
    if (pk.startsWith('IDEMP#')) { result.idempotency.push(item); continue }
    if (sk === 'VIDEO') { result.videos.set(pk, item as unknown as VideoRecord); continue }
    if (sk.startsWith('UPLOAD#')) { result.sessions.push(item); continue }
    if (SCENE_SK.test(sk)) { result.versionItems.push(item); continue }
    const match = VERSION_SK.exec(sk)
    if (match === null) continue
    result.versionItems.push(item)
    const byKind = result.versions.get(pk) ?? { CODE: new Map(), RENDER: new Map() }
    result.versions.set(pk, byKind)
    byKind[match[1] as Kind].set(Number(match[2]), item)
  }
  return result
}

/** Version gaps and lagging latest pointers, per video and kind. */
export function versionFindings (classified: Classified): { missing: Array<{ pk: string, sk: string }>, lagging: LaggingLatest[] } {
  const missing: Array<{ pk: string, sk: string }> = []
  const lagging: LaggingLatest[] = []
  const pks = new Set([...classified.videos.keys(), ...classified.versions.keys()])
  for (const pk of [...pks].sort()) {
    const video = classified.videos.get(pk)
    for (const kind of ['CODE', 'RENDER'] as const) {
      const present = classified.versions.get(pk)?.[kind] ?? new Map<number, Record<string, unknown>>()
      const highest = Math.max(0, ...present.keys())
      const recorded = video?.[LATEST_ATTRIBUTE[kind]]
      if (video !== undefined && highest > (recorded ?? 0)) {
        lagging.push({ pk, projectId: video.projectId, videoId: video.videoId, kind, recorded: recorded ?? null, highest })
      }
      for (let version = 1; version <= Math.max(highest, recorded ?? 0); version++) {
        if (!present.has(version)) missing.push({ pk, sk: versionSortKey(kind, version) })
      }
    }
  }
  return { missing, lagging }
}

/**
 * The upload ids an object key may belong to: each folder segment and the file name without its extension
 * (videos/{p}/{v}/uploads/{id}/..., staging/{p}/{v}/{id}/..., videos/{p}/{v}/scenes/v{n}/{s}/{id}.ext).
 */
export function uploadIdsIn (key: string): string[] {
  const segments = key.split('/')
  const file = segments.pop() ?? ''
  const dot = file.indexOf('.')
  return [...segments, dot === -1 ? file : file.slice(0, dot)]
}

/** Which sessions are live (their objects are in flight), which were abandoned by a replica that died. */
export function sessionFindings (sessions: Array<Record<string, unknown>>, now: number): { liveUploads: Set<string>, liveNames: Set<string>, abandonedSessions: AbandonedSession[], interruptedCompletions: AbandonedSession[] } {
  const liveUploads = new Set<string>()
  const liveNames = new Set<string>()
  const abandonedSessions: AbandonedSession[] = []
  const interruptedCompletions: AbandonedSession[] = []
  for (const item of sessions) {
    const session = toSession(item, now)
    const uploadId = String(item.uploadId ?? String(item.sk).slice('UPLOAD#'.length))
    if (!TERMINAL_UPLOAD_STATUSES.includes(session.status)) {
      liveUploads.add(uploadId)
      namedKeys(item, liveNames)
    }
    if (leaseLapsed(item, now) && session.status !== 'expired') {
      const entry: AbandonedSession = {
        pk: String(item.pk), sk: String(item.sk), uploadId, projectId: item.projectId as string | undefined, videoId: item.videoId as string | undefined,
        mode: String(item.mode), leaseUntil: new Date(item.leaseUntil as number).toISOString()
      }
      if (item.mode === 'direct') interruptedCompletions.push(entry)
      else abandonedSessions.push(entry)
    }
  }
  return { liveUploads, liveNames, abandonedSessions, interruptedCompletions }
}
