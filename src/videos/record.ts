// The one place a stored video record becomes the API's video, and the lifecycle a status change must follow.
import type { Config } from '../config.js'
import { projectIndexKey, videoObjectPrefix } from '../table/keys.js'
import { decodeCursor } from '../table/cursor.js'
import type { VideoRecord } from '../table/video-record.js'
import type { VideoLifecycleStatus, VideoType } from '../../schemas/videos.js'

/** Allowed status changes; setting the current status again is always allowed. */
export const STATUS_TRANSITIONS: Record<VideoLifecycleStatus, readonly VideoLifecycleStatus[]> = {
  created: ['code_ready', 'failed'],
  code_ready: ['rendering', 'failed'],
  rendering: ['uploaded', 'failed'],
  uploaded: ['code_ready', 'failed'],
  failed: ['code_ready', 'rendering']
}

/** The API's video for a record: keys and index attributes stay inside. */
export function toVideo (record: VideoRecord, config: Pick<Config, 'videoBucket' | 'codeBucket'>): VideoType {
  const { projectId, videoId, latestRenderKey: renderKey, latestCodeKey: codeKey } = record
  return {
    projectId,
    videoId,
    title: record.title,
    description: record.description,
    tags: record.tags ?? [],
    customMetadata: record.customMetadata ?? {},
    status: record.status ?? 'created',
    latestRenderVersion: record.latestRenderVersion ?? null,
    latestCodeVersion: record.latestCodeVersion ?? null,
    durationSeconds: record.durationSeconds,
    resolution: record.resolution,
    sizeBytes: record.sizeBytes ?? record.latestRenderSizeBytes,
    sceneCount: record.sceneCount,
    s3Paths: {
      video: renderKey === undefined ? undefined : `s3://${config.videoBucket}/${renderKey}`,
      code: codeKey === undefined ? undefined : `s3://${config.codeBucket}/${codeKey}`,
      prefix: `s3://${config.videoBucket}/${videoObjectPrefix(projectId, videoId)}`
    },
    revision: record.revision ?? 1,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt ?? record.createdAt
  }
}

/** A 409 detail when the lifecycle does not allow `from` to become `to`; undefined when it does. */
export function refusedTransition (from: VideoLifecycleStatus, to: VideoLifecycleStatus | undefined): string | undefined {
  if (to === undefined || to === from || STATUS_TRANSITIONS[from].includes(to)) return undefined
  return `status cannot change from ${from} to ${to}; from ${from} it may become ${STATUS_TRANSITIONS[from].join(' or ')}`
}

export const CURSOR_KEYS = ['pk', 'sk', 'gsi1pk', 'gsi1sk'] as const

/** An opaque cursor back into the index position it came from; anything else (or another project's) is a 400. */
export function decodeVideoCursor (cursor: string, projectId: string): Record<string, string> {
  return decodeCursor(cursor, (position) => {
    const valid = Object.keys(position).length === CURSOR_KEYS.length &&
      CURSOR_KEYS.every((name) => typeof position[name] === 'string') &&
      position.gsi1pk === projectIndexKey(projectId)
    return valid ? position as Record<string, string> : undefined
  }, ' for this project')
}
