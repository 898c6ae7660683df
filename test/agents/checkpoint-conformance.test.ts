// LangChain's own checkpointer conformance suite (@langchain/langgraph-checkpoint-validation: put, putWrites, getTuple,
// list, deleteThread) against RenderStoreCheckpointSaver and a listening render-store on the embedded default. The
// suite is written for vitest, so it runs in a vitest child process (test/agents/support/checkpoint-conformance.spec.ts) whose
// JSON report gives the counts asserted here.
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import t from 'tap'
import { listen } from '../helper.js'

const require = createRequire(import.meta.url)
const vitest = join(dirname(require.resolve('vitest/package.json')), 'vitest.mjs')

interface Report { numTotalTests: number, numPassedTests: number, numFailedTests: number, numPendingTests: number, testResults: Array<{ assertionResults: Array<{ fullName: string, status: string, failureMessages: string[] }> }> }

t.test('the conformance suite passes against the service', async (t) => {
  const { baseUrl } = await listen(t)
  const dir = mkdtempSync(join(tmpdir(), 'render-store-conformance-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const outputFile = join(dir, 'report.json')
  const child = spawn(process.execPath, [vitest, 'run', '--globals', '--reporter=json', `--outputFile=${outputFile}`, 'test/agents/support/checkpoint-conformance.spec.ts'], {
    // Without tap's NODE_OPTIONS (its loaders and coverage hooks are not for vitest's workers).
    env: { ...process.env, NODE_OPTIONS: '', RENDER_STORE_URL: baseUrl, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  let report: Report | undefined
  try {
    report = JSON.parse(readFileSync(outputFile, 'utf8')) as Report
  } catch {
    t.comment(output.slice(-4000))
  }
  const failures = report?.testResults.flatMap((file) => file.assertionResults).filter((result) => result.status === 'failed') ?? []
  for (const failure of failures.slice(0, 20)) t.comment(`FAILED ${failure.fullName}: ${failure.failureMessages[0]?.split('\n')[0] ?? ''}`)
  t.comment(`conformance: ${report?.numPassedTests ?? 0} passed, ${report?.numFailedTests ?? 0} failed, ${report?.numPendingTests ?? 0} skipped of ${report?.numTotalTests ?? 0}`)
  t.equal(code, 0, 'vitest exits 0')
  t.equal(report?.numFailedTests, 0, 'no conformance test failed')
  t.equal(report?.numPendingTests, 0, 'none skipped: no test of the suite is waived for this saver')
  // 718 with @langchain/langgraph-checkpoint-validation 1.1.1; a later version may add tests, never fewer.
  t.ok((report?.numTotalTests ?? 0) >= 718, `the whole suite ran (${report?.numTotalTests ?? 0} tests)`)
  t.equal(report?.numPassedTests, report?.numTotalTests, 'every test passed')
})
