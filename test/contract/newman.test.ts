// Runs the committed Postman collection with newman (its CLI, as a user would) against a listening service, with
// and without API keys: every request runs, in order, and passes its status test.
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { listen } from '../helper.js'
import { KEYS, writeKeysFile } from '../support/auth.js'

const root = new URL('../..', import.meta.url).pathname
const newmanBin = join(root, 'node_modules', '.bin', 'newman')
const collection = join(root, 'postman', 'render-store.postman_collection.json')

interface Execution { item: { name: string }, response?: { code: number }, assertions?: Array<{ assertion: string, error?: { message: string } }> }
interface Report { run: { stats: { requests: { total: number, failed: number }, assertions: { total: number, failed: number } }, executions: Execution[], failures: Array<{ error: { message: string }, source?: { name?: string } }> } }

/** newman run as a child process (the service under test keeps its event loop); its JSON report. */
async function runNewman (t: { teardown: (fn: () => unknown) => void }, baseUrl: string, apiKey: string): Promise<{ status: number | null, report: Report, output: string }> {
  const directory = mkdtempSync(join(tmpdir(), 'render-store-newman-'))
  t.teardown(() => { rmSync(directory, { recursive: true, force: true }) })
  const reportFile = join(directory, 'report.json')
  const args = ['run', collection, '--working-dir', join(root, 'postman'), '--env-var', `baseUrl=${baseUrl}`, '--env-var', `apiKey=${apiKey}`,
    '--reporters', 'cli,json', '--reporter-json-export', reportFile, '--color', 'off', '--disable-unicode', '--timeout-request', '60000']
  const child = spawn(newmanBin, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 300000 })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const status = await new Promise<number | null>((resolve) => child.on('close', resolve))
  return { status, report: JSON.parse(readFileSync(reportFile, 'utf8')) as Report, output }
}

function checkRun (t: Test, run: Awaited<ReturnType<typeof runNewman>>): void {
  const requests = (JSON.parse(readFileSync(collection, 'utf8')) as { item: Array<{ item: unknown[] }> }).item.flatMap((folder) => folder.item).length
  const { stats, executions, failures } = run.report.run
  t.same(failures.map((failure) => `${failure.source?.name ?? '?'}: ${failure.error.message}`), [], 'no failure')
  t.equal(run.status, 0, run.output.slice(-3000))
  t.equal(stats.requests.total, requests, 'every request ran')
  t.equal(stats.requests.failed, 0)
  t.ok(executions.every((execution) => (execution.assertions?.length ?? 0) >= 1), 'each request ran a test')
  t.equal(stats.assertions.failed, 0)
  t.ok(stats.assertions.total >= requests, `${stats.assertions.total} assertions`)
}

t.test('newman runs the collection against a service without API keys: every request passes its test', async (t) => {
  const { baseUrl } = await listen(t)
  checkRun(t, await runNewman(t, baseUrl, ''))
})

t.test('and against a service with API keys, the key given once as apiKey', async (t) => {
  const { baseUrl } = await listen(t, { config: { apiKeysFile: writeKeysFile(t) } })
  checkRun(t, await runNewman(t, baseUrl, KEYS.admin))
  // The same collection without the key: the API answers 401 (only health passes), so the key is what made it pass.
  const without = await runNewman(t, baseUrl, '')
  t.ok(without.report.run.stats.assertions.failed > 10, `${without.report.run.stats.assertions.failed} requests fail without the key`)
})
