import { fork, type ChildProcess } from 'node:child_process'
import { createRequire } from 'node:module'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

// A start is given up when the child has not said it is still starting for EMBEDDED_START_STALL_MS (it says so every
// second while it loads and binds, so a busy machine that is slow but moving keeps it going), or after
// EMBEDDED_START_TIMEOUT_MS in all.
const startLimits = (): { stallMs: number, timeoutMs: number } => ({
  stallMs: Number(process.env.EMBEDDED_START_STALL_MS ?? 60_000),
  timeoutMs: Number(process.env.EMBEDDED_START_TIMEOUT_MS ?? 300_000)
})
const entry = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './emulator.ts' : './emulator.js', import.meta.url))

/** The emulators are optional dependencies: an AWS-mode install (`npm ci --omit=optional`) leaves them out. */
export const EMULATOR_PACKAGES = ['s3rver', 'dynalite'] as const

/** The emulator packages this install lacks (none on a plain `npm ci`). */
export function missingEmulatorPackages (resolve: (name: string) => string = createRequire(import.meta.url).resolve): string[] {
  return EMULATOR_PACKAGES.filter((name) => {
    try {
      resolve(name)
      return false
    } catch {
      return true
    }
  })
}

export interface Emulator {
  kind: 's3' | 'dynamodb'
  endpoint: string
  port: number
  /** the emulator's child process id */
  readonly pid: number | undefined
  stop: () => Promise<void>
  /** Starts it again on the same port and data directory (used by fault tests and restarts). */
  restart: () => Promise<void>
  /** true once stop() was called (and no restart since): a supervisor leaves it stopped */
  readonly stopped: boolean
}

type StartMessage = { starting: true } | { ready: true, port: number } | { error: string }

async function spawnEmulator (kind: 's3' | 'dynamodb', directory: string, port: number, buckets: string[]): Promise<{ child: ChildProcess, port: number }> {
  const child = fork(entry, [kind, directory, String(port), buckets.join(',')], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const where = port === 0 ? 'a free port' : `port ${port}`
  const { stallMs, timeoutMs } = startLimits()
  const actualPort = await new Promise<number>((resolve, reject) => {
    let reason: string | undefined
    const fail = (message: string): void => { clearTimeout(stall); clearTimeout(deadline); reject(new Error(`embedded ${kind} (${where}): ${message}`)) }
    // Killed, and reported by the 'exit' handler below once the child is gone: a start that fails leaves nothing running
    // at the moment it says so (before, the rejection could come while the killed child was still alive).
    const giveUp = (message: string): void => { reason = message; clearTimeout(stall); clearTimeout(deadline); child.kill('SIGKILL') }
    let stall = setTimeout(() => { giveUp(`no sign of life for ${stallMs / 1000} s while starting`) }, stallMs)
    const deadline = setTimeout(() => { giveUp(`did not start within ${timeoutMs / 1000} s`) }, timeoutMs)
    child.on('message', (message: StartMessage) => {
      if ('error' in message) reason = message.error
      else if ('ready' in message) {
        clearTimeout(stall)
        clearTimeout(deadline)
        resolve(message.port)
      } else {
        clearTimeout(stall)
        stall = setTimeout(() => { giveUp(`no sign of life for ${stallMs / 1000} s while starting`) }, stallMs)
      }
    })
    child.once('exit', (code, signal) => { fail(reason ?? `exited (${signal ?? `code ${code}`}) before it was ready`) })
  })
  child.removeAllListeners('exit')
  child.removeAllListeners('message')
  return { child, port: actualPort }
}

export interface EmulatorOptions {
  directory: string
  port?: number
  buckets?: string[]
  /** called when the emulator process ends without stop() or restart() having asked it to */
  onUnexpectedExit?: (emulator: Emulator, code: number | null, signal: NodeJS.Signals | null) => void
}

export async function startEmulator (kind: 's3' | 'dynamodb', options: EmulatorOptions): Promise<Emulator> {
  let { child, port } = await spawnEmulator(kind, options.directory, options.port ?? 0, options.buckets ?? [])
  let stopping = false
  let stopped = false
  const watch = (): void => {
    child.once('exit', (code, signal) => { if (!stopping) options.onUnexpectedExit?.(emulator, code, signal) })
  }
  const stopChild = async (): Promise<void> => {
    stopping = true
    if (child.exitCode !== null || child.signalCode !== null) return
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      child.once('exit', () => { clearTimeout(timer); resolve() })
      child.kill('SIGTERM')
    })
  }
  const emulator: Emulator = {
    kind,
    port,
    get pid () { return child.pid },
    endpoint: `http://127.0.0.1:${port}`,
    get stopped () { return stopped },
    async stop () {
      stopped = true
      await stopChild()
    },
    async restart () {
      await stopChild()
      stopped = false
      ;({ child } = await spawnEmulator(kind, options.directory, port, options.buckets ?? []))
      stopping = false
      watch()
    }
  }
  watch()
  return emulator
}

export interface EmbeddedAws {
  s3: Emulator
  dynamodb: Emulator
  close: () => Promise<void>
}

/** Where the ports of the last start are kept, so a restarted service is at the same endpoints (presigned URLs hold). */
export const PORTS_FILE = 'embedded-ports.json'

interface SavedPorts { s3?: number, dynamodb?: number }

function savedPorts (dataDir: string): SavedPorts {
  try {
    const saved = JSON.parse(readFileSync(join(dataDir, PORTS_FILE), 'utf8')) as SavedPorts
    const valid = (port: unknown): number | undefined => Number.isInteger(port) && (port as number) > 0 && (port as number) < 65536 ? port as number : undefined
    return { s3: valid(saved.s3), dynamodb: valid(saved.dynamodb) }
  } catch {
    return {} // first start, or a file that is not ours to trust: new ports
  }
}

/** Starts on the saved port when there is one; when that port is taken now, on a new one (presigned URLs then break). */
async function startOnSavedPort (kind: 's3' | 'dynamodb', options: EmulatorOptions, saved: number | undefined): Promise<Emulator> {
  if (options.port !== undefined || saved === undefined) return await startEmulator(kind, options)
  try {
    return await startEmulator(kind, { ...options, port: saved })
  } catch {
    return await startEmulator(kind, { ...options, port: 0 })
  }
}

/**
 * Starts local S3 (s3rver) and DynamoDB (dynalite) on loopback, keeping their data under dataDir. Without explicit
 * ports they take the ones of the previous start (kept in dataDir/embedded-ports.json), else free ones.
 */
export async function startEmbeddedAws (options: { dataDir: string, buckets: string[], s3Port?: number, dynamodbPort?: number, onUnexpectedExit?: EmulatorOptions['onUnexpectedExit'] }): Promise<EmbeddedAws> {
  const saved = savedPorts(options.dataDir)
  const started = await Promise.allSettled([
    startOnSavedPort('s3', { directory: join(options.dataDir, 's3'), port: options.s3Port, buckets: options.buckets, onUnexpectedExit: options.onUnexpectedExit }, saved.s3),
    startOnSavedPort('dynamodb', { directory: join(options.dataDir, 'dynamodb'), port: options.dynamodbPort, onUnexpectedExit: options.onUnexpectedExit }, saved.dynamodb)
  ])
  const failed = started.flatMap((result) => result.status === 'rejected' ? [result.reason as Error] : [])
  if (failed.length > 0) {
    // A partial start leaves nothing running: the one that did start is stopped before the failure is reported.
    await Promise.all(started.map(async (result) => { if (result.status === 'fulfilled') await result.value.stop() }))
    throw failed.length === 1 ? failed[0] : new Error(failed.map((error) => error.message).join('; '))
  }
  const [s3, dynamodb] = started.map((result) => (result as PromiseFulfilledResult<Emulator>).value)
  mkdirSync(options.dataDir, { recursive: true })
  writeFileSync(join(options.dataDir, PORTS_FILE), `${JSON.stringify({ s3: s3.port, dynamodb: dynamodb.port })}\n`)
  return {
    s3,
    dynamodb,
    async close () { await Promise.all([s3.stop(), dynamodb.stop()]) }
  }
}
