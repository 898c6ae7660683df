// The small JSON file a multipart direct upload is saved to while it runs, so a later process resumes it.
import { createHash } from 'node:crypto'
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { dirname, join, resolve } from 'node:path'

/** What a session file holds: enough to find the session again and to know it is for the same file. */
export interface SavedSession {
  version: 1
  baseUrl: string
  projectId: string
  videoId: string
  uploadId: string
  file: string
  size: number
  mtimeMs: number
  contentType: string
  partSize: number
  partCount: number
  completeBy: string
  sha256?: string
  idempotencyKey?: string
  /** ETags of parts this client PUT (used only where the service cannot list the parts S3 holds) */
  etags: Record<string, string>
}

/** Something that went wrong without failing the upload (a session file not written, a session not aborted). */
export type WarningCallback = (warning: { message: string, error: unknown }) => void

export function defaultStateDir (): string {
  const cache = process.env.XDG_CACHE_HOME !== undefined && process.env.XDG_CACHE_HOME !== '' ? process.env.XDG_CACHE_HOME : join(homedir(), '.cache')
  return join(cache, 'render-store', 'uploads')
}

/** The default session file of one (service, project, video, file): the same name in every run. */
export function sessionFileFor (stateDir: string, baseUrl: string, projectId: string, videoId: string, file: string): string {
  const id = createHash('sha256').update(JSON.stringify([baseUrl, projectId, videoId, resolve(file)])).digest('hex').slice(0, 32)
  return join(stateDir, `${id}.json`)
}

/** The saved session at path; undefined when there is none, or it is unreadable or of another format (a new one replaces it). */
export async function readSavedSession (path: string): Promise<SavedSession | undefined> {
  try {
    const saved = JSON.parse(await readFile(path, 'utf8')) as SavedSession
    return saved.version === 1 && typeof saved.uploadId === 'string' ? saved : undefined
  } catch {
    return undefined
  }
}

export interface SessionWriter {
  save: (session: SavedSession) => Promise<void>
  remove: () => Promise<void>
  flush: () => Promise<void>
}

/**
 * Writes the file whole or not at all (temp file + rename), one write at a time. A write that fails does not fail
 * the upload (only a resume after a restart needs the file): it is told to onWarning, and the next save tries again.
 */
export function sessionWriter (path: string | undefined, onWarning?: WarningCallback): SessionWriter {
  let chain: Promise<void> = Promise.resolve()
  return {
    save: async (session) => {
      if (path === undefined) return
      const text = JSON.stringify(session, null, 2)
      chain = chain.then(async () => {
        await mkdir(dirname(path), { recursive: true })
        const temp = `${path}.${process.pid}.tmp`
        await writeFile(temp, text)
        await rename(temp, path)
      }).catch((error: unknown) => { onWarning?.({ message: `could not save the upload session to ${path}: a restart will not resume it`, error }) })
      await chain
    },
    remove: async () => {
      if (path === undefined) return
      await chain
      await rm(path, { force: true })
    },
    flush: async () => { await chain }
  }
}
