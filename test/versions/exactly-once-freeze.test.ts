// freeze() from test/support/faults/freeze.ts: the process is really stopped while frozen, and always continued after,
// also when the wait is interrupted or a hold is never released by the test itself.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { freeze, hold, isFrozen, thawAll } from '../support/faults/freeze.js'

/** The state letter of /proc/{pid}/stat: T when stopped, S or R when running. */
const state = (pid: number): string => /\) (\w) /.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1] ?? '?'

/** The state once the signal has taken effect: the kernel applies SIGSTOP/SIGCONT when it next schedules the process. */
async function settled (pid: number, stopped: boolean): Promise<string> {
  for (let round = 0; round < 100 && (state(pid) === 'T') !== stopped; round++) await sleep(20)
  return state(pid)
}

function sleeper (t: { teardown: (fn: () => unknown) => void }): ChildProcess & { pid: number } {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' })
  t.teardown(() => { child.kill('SIGKILL') })
  return child as ChildProcess & { pid: number }
}

t.test('freeze stops the process for the time given, then continues it', async (t) => {
  const child = sleeper(t)
  const frozen = freeze(child.pid, 300, t)
  t.equal(await settled(child.pid, true), 'T', 'stopped while frozen')
  t.ok(isFrozen(child.pid))
  const { frozenMs } = await frozen
  t.ok(frozenMs >= 300, `held ${frozenMs} ms`)
  t.not(await settled(child.pid, false), 'T', 'running again')
  t.notOk(isFrozen(child.pid))
})

t.test('two holds on one process: it runs again only when both are released', async (t) => {
  const child = sleeper(t)
  const first = hold(child.pid, t)
  const second = hold(child.pid, t)
  t.equal(await settled(child.pid, true), 'T')
  first.thaw()
  await sleep(200)
  t.equal(state(child.pid), 'T', 'still stopped: the other hold remains')
  second.thaw()
  second.thaw()
  t.not(await settled(child.pid, false), 'T', 'continued once the last hold went')
})

t.test('a hold the test never releases is released at its teardown; thawAll continues everything', async (t) => {
  const child = sleeper(t)
  await t.test('a subtest that forgets to thaw', async (t) => {
    hold(child.pid, t)
    t.equal(await settled(child.pid, true), 'T')
  })
  t.not(await settled(child.pid, false), 'T', 'continued at the subtest teardown')
  const other = sleeper(t)
  hold(other.pid)
  t.equal(await settled(other.pid, true), 'T')
  thawAll()
  t.not(await settled(other.pid, false), 'T', 'thawAll continued it')
})

t.test('freezing a process that is not there is an error, not a silent no-op', async (t) => {
  t.throws(() => hold(undefined), /no pid/)
  const child = sleeper(t)
  child.kill('SIGKILL')
  await new Promise((resolve) => child.once('exit', resolve))
  await t.rejects(freeze(child.pid, 10), /not running/)
})
