// Starting the embedded emulators: a start that fails says which emulator and why, and leaves nothing running (the
// one that did start is stopped), so a test file fails at once instead of hanging on a live child process.
import t from 'tap'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startEmbeddedAws } from '../../src/local/embedded.js'

/** The pids of this process's emulator children that are alive now (Linux /proc). */
function emulatorChildren (): Map<number, string> {
  const children = new Map<number, string>()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(fields[1]) !== process.pid || fields[0] === 'Z') continue
      const command = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0')
      const at = command.findIndex((argument) => /local\/emulator\.(ts|js)$/.test(argument))
      if (at >= 0) children.set(Number(name), command[at + 1])
    } catch {} // gone meanwhile
  }
  return children
}

t.test('DynamoDB port taken: the start fails naming dynamodb, its port and EADDRINUSE; the S3 child is stopped', async (t) => {
  const blocker = createServer()
  await new Promise<void>((resolve) => { blocker.listen(0, '127.0.0.1', resolve) })
  t.teardown(() => { blocker.close() })
  const port = (blocker.address() as { port: number }).port
  const dataDir = mkdtempSync(join(tmpdir(), 'render-store-start-'))
  t.teardown(() => { rmSync(dataDir, { recursive: true, force: true }) })

  // Every emulator child seen while the start runs (polled), to check afterwards that none outlives the failure.
  const seen = new Map<number, string>()
  const watcher = setInterval(() => { for (const [pid, kind] of emulatorChildren()) seen.set(pid, kind) }, 10)
  const error = await startEmbeddedAws({ dataDir, buckets: ['render-store-videos'], dynamodbPort: port }).then(() => undefined, (reason: unknown) => reason as Error)
  clearInterval(watcher)
  t.ok(error instanceof Error, 'the start rejects')
  t.match(error?.message, new RegExp(`^embedded dynamodb \\(port ${port}\\): .*EADDRINUSE`), `says which and why: ${error?.message}`)
  t.ok([...seen.values()].includes('s3'), 'the S3 emulator was started')
  t.same([...emulatorChildren().keys()], [], 'no emulator child is left')
  for (const pid of seen.keys()) t.throws(() => process.kill(pid, 0), `emulator ${pid} is gone`)
})

t.test('an emulator that stops making progress while starting is given up after EMBEDDED_START_STALL_MS, and the other stopped', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'render-store-start-'))
  t.teardown(() => { rmSync(dataDir, { recursive: true, force: true }) })
  const before = process.env.EMBEDDED_START_STALL_MS
  process.env.EMBEDDED_START_STALL_MS = '2000'
  t.teardown(() => { if (before === undefined) delete process.env.EMBEDDED_START_STALL_MS; else process.env.EMBEDDED_START_STALL_MS = before })
  // The DynamoDB child is frozen (SIGSTOP) as soon as it exists: a child that is alive but no longer says "starting".
  // It exists long before it can be ready (a Node process loading TypeScript and the emulator), so the stop wins.
  const seen = new Map<number, string>()
  const frozen: number[] = []
  const watcher = setInterval(() => {
    for (const [pid, kind] of emulatorChildren()) {
      seen.set(pid, kind)
      if (kind === 'dynamodb' && !frozen.includes(pid)) { process.kill(pid, 'SIGSTOP'); frozen.push(pid) }
    }
  }, 5)
  const error = await startEmbeddedAws({ dataDir, buckets: ['render-store-videos'] }).then(() => undefined, (reason: unknown) => reason as Error)
  clearInterval(watcher)
  t.equal(frozen.length, 1, 'one DynamoDB child was frozen')
  // (On a loaded machine the S3 child may take over 2 s to say its first word too; then the message names both.)
  t.match(error?.message, /(^|; )embedded dynamodb \(a free port\): no sign of life for 2 s while starting($|; )/, `says which and why: ${error?.message}`)
  t.ok([...seen.values()].includes('s3'), 'the S3 emulator was started')
  t.same([...emulatorChildren().keys()], [], 'no emulator child is left: the frozen one was killed, the S3 one stopped')
})

t.test('after a failed start, a start with a free port works (nothing of the failed one is in the way)', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'render-store-start-'))
  t.teardown(() => { rmSync(dataDir, { recursive: true, force: true }) })
  const embedded = await startEmbeddedAws({ dataDir, buckets: ['render-store-videos'] })
  t.teardown(async () => { await embedded.close() })
  t.equal((await fetch(`${embedded.s3.endpoint}/`)).status, 200)
  t.equal(emulatorChildren().size, 2, 'two emulator children while it runs')
  await embedded.close()
  t.same([...emulatorChildren().keys()], [], 'none after close')
})
