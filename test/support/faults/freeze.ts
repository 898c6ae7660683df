// Stalls instead of crashes: SIGSTOP an emulator (or a replica) so its sockets stay open and silent, as a hung
// dependency's do, then SIGCONT it. Every stop is undone: in a finally, at the test's teardown, and when this process
// exits or is told to stop, so no test leaves a stopped emulator behind.
import { setTimeout as sleep } from 'node:timers/promises'

type Teardown = { teardown: (fn: () => unknown) => void }

/** pid -> how many holds are on it; the process is continued when the last one is released. */
const stopped = new Map<number, number>()

function signal (pid: number, name: 'SIGSTOP' | 'SIGCONT'): boolean {
  try {
    process.kill(pid, name)
    return true
  } catch {
    return false // gone already: nothing to stop or continue
  }
}

/** Continues every process this module stopped. */
export function thawAll (): void {
  for (const pid of stopped.keys()) signal(pid, 'SIGCONT')
  stopped.clear()
}

process.once('exit', thawAll)
for (const name of ['SIGTERM', 'SIGINT'] as const) {
  const onSignal = (): void => {
    thawAll()
    // Keep the default behaviour (exit) unless someone else handles the signal too.
    if (process.listenerCount(name) === 0) process.kill(process.pid, name)
  }
  process.once(name, onSignal)
}

export interface Hold {
  pid: number
  frozenAt: number
  /** continues the process (idempotent); returns how long it was held */
  thaw: () => number
}

/** Stops `pid` until thaw() (or the test's teardown). Throws when the process does not exist. */
export function hold (pid: number | undefined, t?: Teardown): Hold {
  if (pid === undefined) throw new Error('freeze: no pid (is the process running?)')
  if (!signal(pid, 'SIGSTOP')) throw new Error(`freeze: process ${pid} is not running`)
  stopped.set(pid, (stopped.get(pid) ?? 0) + 1)
  const frozenAt = Date.now()
  let thawedAfter: number | undefined
  const thaw = (): number => {
    if (thawedAfter !== undefined) return thawedAfter
    thawedAfter = Date.now() - frozenAt
    const holds = (stopped.get(pid) ?? 1) - 1
    if (holds <= 0) {
      stopped.delete(pid)
      signal(pid, 'SIGCONT')
    } else {
      stopped.set(pid, holds)
    }
    return thawedAfter
  }
  t?.teardown(() => { thaw() })
  return { pid, frozenAt, thaw }
}

/** Stops `pid` for `ms` milliseconds, then continues it (also when the wait is interrupted). Resolves after SIGCONT. */
export async function freeze (pid: number | undefined, ms: number, t?: Teardown): Promise<{ frozenMs: number }> {
  const held = hold(pid, t)
  try {
    await sleep(ms)
  } finally {
    held.thaw()
  }
  return { frozenMs: Date.now() - held.frozenAt }
}

/** True while this module holds `pid` stopped. */
export const isFrozen = (pid: number | undefined): boolean => pid !== undefined && stopped.has(pid)

export { checkStore, assertStoreConsistent, type StoreCheck, type StoreCheckOptions } from '../store-check.js'
