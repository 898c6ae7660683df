// Redocly CLI lints the committed openapi.yaml with its recommended rules: 0 errors, and 0 warnings beyond the ones
// .redocly.lint-ignore.yaml names with a reason.
import t from 'tap'
import { execFile } from 'node:child_process'
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { parse, stringify } from 'yaml'

const root = new URL('../..', import.meta.url).pathname
const redocly = join(root, 'node_modules', '.bin', 'redocly')
const quiet = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' }

interface Totals { errors: number, warnings: number, ignored: number }
interface Lint { totals: Totals, problems: Array<{ ruleId: string, severity: string, message: string }> }

async function lint (directory: string): Promise<Lint> {
  // Redocly exits 1 when it finds errors: its JSON report is on stdout either way.
  const run = await promisify(execFile)(redocly, ['lint', 'openapi.yaml', '--format=json'], { cwd: directory, env: quiet, maxBuffer: 64 * 1024 * 1024 })
    .catch((error: { stdout?: string, stderr?: string }) => ({ stdout: error.stdout ?? '', stderr: error.stderr ?? '' }))
  return JSON.parse(run.stdout) as Lint
}

t.test('openapi.yaml passes Redocly lint: 0 errors, 0 unexplained warnings', async (t) => {
  const report = await lint(root)
  t.same(report.problems.map((problem) => `${problem.severity} ${problem.ruleId}: ${problem.message}`), [])
  t.equal(report.totals.errors, 0)
  t.equal(report.totals.warnings, 0)
})

t.test('the lint finds what issue 14 found: empty servers, an operation without operationId', async (t) => {
  const directory = mkdtempSync(join(tmpdir(), 'render-store-lint-'))
  t.teardown(() => { rmSync(directory, { recursive: true, force: true }) })
  const document = parse(readFileSync(join(root, 'openapi.yaml'), 'utf8')) as { servers?: unknown, paths: Record<string, Record<string, { operationId?: string }>> }
  delete document.servers
  delete document.paths['/health'].get.operationId
  writeFileSync(join(directory, 'openapi.yaml'), stringify(document))
  copyFileSync(join(root, '.redocly.lint-ignore.yaml'), join(directory, '.redocly.lint-ignore.yaml'))
  const report = await lint(directory)
  const rules = report.problems.map((problem) => problem.ruleId)
  t.ok(rules.includes('no-empty-servers'), 'no-empty-servers')
  t.ok(rules.includes('operation-operationId'), 'operation-operationId')
  t.ok(report.totals.errors > 0)
})
