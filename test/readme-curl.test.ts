// Runs the README's curl examples, in order, against a listening service: every line starting with `curl ` in the
// ```sh blocks under "## API at a glance" (`$BASE` is the URL; files they name are in the working directory).
import t from 'tap'
import { spawn } from 'node:child_process'
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { listen } from './helper.js'

const root = new URL('..', import.meta.url).pathname
const HEADING = '## API at a glance'

// Until the README has its section: the same kind of examples, to keep this runner honest.
const INTERIM_EXAMPLES = [
  'curl -s $BASE/health',
  'curl -s -X PUT $BASE/v1/projects/demo/videos/intro -H \'content-type: application/json\' -d \'{"title":"Intro"}\'',
  'curl -s -X POST $BASE/v1/projects/demo/videos/intro/code -H \'content-type: application/json\' -d \'{"content":"print(1)\\n","message":"first"}\'',
  'curl -s -X POST $BASE/v1/projects/demo/videos/intro/code -H \'content-type: text/plain\' -H \'x-base-version: 1\' --data-binary @scene.py',
  'curl -s $BASE/v1/projects/demo/videos/intro/code/versions/2/diff?from=1',
  'curl -s -X POST $BASE/v1/projects/demo/videos/intro/renders -H \'content-type: video/mp4\' --data-binary @render.mp4',
  'curl -s $BASE/v1/projects/demo/videos/intro/renders/latest',
  'curl -s $BASE/v1/projects/demo/videos/intro/status',
  'curl -s -X POST $BASE/v1/projects/demo/videos/intro/code -H \'content-type: application/json\' -d \'{"content":"x","baseVersion":1}\'  # expect 409'
]

/** The curl lines of the README section (continuation lines joined), or undefined when it has none yet. */
function readmeCurlExamples (readme: string): string[] | undefined {
  const start = readme.indexOf(`\n${HEADING}\n`)
  if (start === -1) return undefined
  const rest = readme.slice(start + HEADING.length + 2)
  const section = rest.slice(0, rest.search(/\n## /) === -1 ? undefined : rest.search(/\n## /))
  const lines: string[] = []
  for (const block of section.matchAll(/```(?:sh|bash|shell)\n([\s\S]*?)```/g)) {
    const joined = block[1].replace(/\s*\\\n\s*/g, ' ')
    lines.push(...joined.split('\n').map((line) => line.trim()).filter((line) => line.startsWith('curl ')))
  }
  return lines.length > 0 ? lines : undefined
}

/** bash -c as a child process, without blocking the event loop the service under test runs on. */
async function bash (script: string, cwd: string, env: Record<string, string>): Promise<{ status: number | null, stdout: string, stderr: string }> {
  const child = spawn('bash', ['-c', script], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30000 })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const status = await new Promise<number | null>((resolve) => child.on('close', resolve))
  return { status, stdout, stderr }
}

t.test('readmeCurlExamples takes curl lines from the sh blocks of its section only', async (t) => {
  const readme = ['# x', '## API at a glance', 'text', '```sh', 'curl -s $BASE/health', 'echo no', 'curl -X POST \\', '  $BASE/a', '```',
    '```json', 'curl nope', '```', '## Next', '```sh', 'curl -s $BASE/other', '```'].join('\n')
  t.same(readmeCurlExamples(readme), ['curl -s $BASE/health', 'curl -X POST $BASE/a'])
  t.equal(readmeCurlExamples('# nothing here\n'), undefined)
})

t.test("the README's curl examples run against the service, each answering as it says", async (t) => {
  const fromReadme = readmeCurlExamples(readFileSync(join(root, 'README.md'), 'utf8'))
  const examples = fromReadme ?? INTERIM_EXAMPLES
  if (fromReadme === undefined) t.comment(`README.md has no curl examples under "${HEADING}" yet: running the interim list`)
  const { baseUrl } = await listen(t)
  const directory = mkdtempSync(join(tmpdir(), 'render-store-curl-'))
  t.teardown(() => { rmSync(directory, { recursive: true, force: true }) })
  copyFileSync(join(root, 'test', 'fixtures', 'render.mp4'), join(directory, 'render.mp4'))
  writeFileSync(join(directory, 'scene.py'), 'from manim import *\n\nclass Intro(Scene):\n    pass\n')

  for (const example of examples) {
    const expected = /#\s*expect\s+(\d{3})\s*$/.exec(example)?.[1]
    // The wrapper prints the status on its own last line; the example's own options stay as written.
    const script = `curl () { command curl -sS -w '\\n%{http_code}\\n' "$@"; }\n${example}`
    const run = await bash(script, directory, { BASE: baseUrl, API_KEY: 'unused-in-open-mode' })
    const status = run.stdout.trim().split('\n').at(-1) ?? ''
    t.equal(run.status, 0, `${example}\n${run.stderr}`)
    if (expected !== undefined) t.equal(status, expected, `${example} answers ${expected}`)
    else t.match(status, /^[23]\d\d$/, `${example} answers ${status}: ${run.stdout.slice(0, 300)}`)
  }
})
