// Brings an embedded emulator that died back on its port and data, within a restart budget per time window: a
// crash loop is not restarted faster than `max` times per `windowMs`, and once the window has room again the
// emulator is restarted (never "five in the process's life, then unready for good").
import type { Emulator } from './embedded.js'

export interface RestartBudget {
  /** true (and counted) when a restart may happen now */
  take: () => boolean
  /** ms until take() can succeed again (0 when it can now) */
  waitMs: () => number
}

export function restartBudget (options: { max: number, windowMs: number, now?: () => number }): RestartBudget {
  const now = options.now ?? Date.now
  const times: number[] = []
  const prune = (at: number): void => { while (times.length > 0 && times[0] <= at - options.windowMs) times.shift() }
  return {
    take () {
      const at = now()
      prune(at)
      if (times.length >= options.max) return false
      times.push(at)
      return true
    },
    waitMs () {
      const at = now()
      prune(at)
      return times.length < options.max ? 0 : times[0] + options.windowMs - at
    }
  }
}

export interface SupervisorLog {
  info: (object: object, message: string) => void
  error: (object: object, message: string) => void
}

export const RESTART_MAX = Number(process.env.EMBEDDED_RESTART_MAX ?? 5)
export const RESTART_WINDOW_MS = Number(process.env.EMBEDDED_RESTART_WINDOW_MS ?? 60_000)

/**
 * The `onUnexpectedExit` handler for startEmbeddedAws: restarts the emulator at once while the budget allows,
 * else when the window has room again; a restart that fails is tried again the same way. One budget per emulator.
 */
export function superviseEmulators (options: { log: () => SupervisorLog | undefined, max?: number, windowMs?: number, now?: () => number, /** longest sleep before the budget is looked at again (default 5 s) */ recheckMs?: number, onRestarted?: (emulator: Emulator) => void }): (emulator: Emulator, code: number | null, signal: NodeJS.Signals | null) => void {
  const budgets = new Map<string, RestartBudget>()
  const budgetOf = (kind: string): RestartBudget => {
    let budget = budgets.get(kind)
    if (budget === undefined) {
      budget = restartBudget({ max: options.max ?? RESTART_MAX, windowMs: options.windowMs ?? RESTART_WINDOW_MS, now: options.now })
      budgets.set(kind, budget)
    }
    return budget
  }
  const attempt = (emulator: Emulator): void => {
    if (emulator.stopped) return // closed on purpose since (the service is shutting down)
    const budget = budgetOf(emulator.kind)
    if (!budget.take()) {
      const waitMs = Math.max(budget.waitMs(), 10)
      options.log()?.error({ emulator: emulator.kind, waitMs }, `embedded ${emulator.kind} keeps exiting; next restart in ${Math.ceil(waitMs / 1000)} s`)
      setTimeout(() => { attempt(emulator) }, Math.min(waitMs, options.recheckMs ?? 5000)).unref()
      return
    }
    emulator.restart().then(
      () => {
        options.log()?.info({ emulator: emulator.kind, endpoint: emulator.endpoint }, `embedded ${emulator.kind} is back at ${emulator.endpoint}`)
        options.onRestarted?.(emulator)
      },
      (error: unknown) => {
        options.log()?.error({ err: error, emulator: emulator.kind }, `embedded ${emulator.kind} could not be restarted; trying again`)
        attempt(emulator)
      }
    )
  }
  return (emulator, code, signal) => {
    options.log()?.error({ emulator: emulator.kind, code, signal }, `embedded ${emulator.kind} exited unexpectedly; restarting it`)
    attempt(emulator)
  }
}
