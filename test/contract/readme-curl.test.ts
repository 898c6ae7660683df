// Runs the README's curl examples, in order, against a listening service: every line starting with `curl ` in the
// ```sh blocks under "## API at a glance" (`$BASE` is the URL; files they name are in the working directory).
import t from 'tap'
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { listen } from '../helper.js'
import { HEADING, bash, readmeCurlExamples } from '../support/readme-curl.js'

const root = new URL('../..', import.meta.url).pathname

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
