import t from 'tap'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { listen } from '../helper.js'

const root = new URL('../..', import.meta.url).pathname
const cliPath = join(root, 'src', 'cli', 'main.ts')

interface Run { code: number | null, stdout: string, stderr: string }

/** Runs the CLI as its own process (with the TypeScript loader this test runs under). */
async function cli (args: string[], env: Record<string, string> = {}): Promise<Run> {
  const child = spawn(process.execPath, [...process.execArgv, cliPath, ...args], {
    cwd: root, env: { ...process.env, RENDER_STORE_URL: '', RENDER_STORE_API_KEY: '', ...env }, stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  return { code, stdout, stderr }
}

function workDir (t: { teardown: (fn: () => void) => void }): string {
  const directory = mkdtempSync(join(tmpdir(), 'render-store-cli-'))
  t.teardown(() => { rmSync(directory, { recursive: true, force: true }) })
  return directory
}

/** A real MP4 (the fixture) followed by an MP4 `free` box, so it stays valid and is big enough for several progress steps. */
function paddedMp4 (size: number): Buffer {
  const fixture = readFileSync(join(root, 'test', 'fixtures', 'render.mp4'))
  const free = Buffer.alloc(size - fixture.length)
  free.writeUInt32BE(free.length, 0)
  free.write('free', 4, 'latin1')
  return Buffer.concat([fixture, free])
}

t.test('render-store health prints the liveness answer; RENDER_STORE_URL names the service', async (t) => {
  const { baseUrl } = await listen(t)
  const run = await cli(['health'], { RENDER_STORE_URL: baseUrl })
  t.equal(run.code, 0, run.stderr)
  t.equal(JSON.parse(run.stdout).status, 'ok')
  const ready = await cli(['health', '--ready', '--url', baseUrl])
  t.equal(ready.code, 0, ready.stderr)
  t.equal(JSON.parse(ready.stdout).overallStatus, 'healthy')
})

t.test('render-store upload streams a file with a progress bar on stderr and prints the render URL', async (t) => {
  const { baseUrl } = await listen(t)
  const file = join(workDir(t), 'final.mp4')
  const bytes = paddedMp4(1536 * 1024)
  writeFileSync(file, bytes)
  const run = await cli(['upload', 'demo', 'intro', file, '--url', baseUrl])
  t.equal(run.code, 0, run.stderr)
  const bars = run.stderr.split('\n').filter((line) => line.startsWith('final.mp4 ['))
  t.ok(bars.length >= 3, `several progress lines (${bars.length})`)
  t.match(bars.at(-1), /\[#{30}\] 100\.0% 1\.5 MiB\/1\.5 MiB$/)
  t.match(run.stderr, /render version 1: 1572864 bytes, sha256 [0-9a-f]{64}/)
  const url = run.stdout.trim()
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+\/.+/, 'stdout is the render URL')
  const downloaded = Buffer.from(await (await fetch(url)).arrayBuffer())
  t.equal(createHash('sha256').update(downloaded).digest('hex'), createHash('sha256').update(bytes).digest('hex'), 'the URL serves the uploaded bytes')
})

t.test('render-store code push / code get / status, and a stale --base is refused with the latest version', async (t) => {
  const { baseUrl } = await listen(t)
  const directory = workDir(t)
  const first = join(directory, 'scene.py')
  writeFileSync(first, 'print("one")\n')
  const pushed = await cli(['code', 'push', 'demo', 'intro', first, '--url', baseUrl, '--message', 'first'])
  t.equal(pushed.code, 0, pushed.stderr)
  t.equal(JSON.parse(pushed.stdout).version, 1)
  t.match(pushed.stderr, /stored code version 1/)

  writeFileSync(first, 'print("two")\n')
  const second = await cli(['code', 'push', 'demo', 'intro', first, '--base', '1', '--url', baseUrl])
  t.equal(second.code, 0, second.stderr)
  t.equal(JSON.parse(second.stdout).version, 2)

  writeFileSync(first, 'print("three")\n')
  const stale = await cli(['code', 'push', 'demo', 'intro', first, '--base', '1', '--url', baseUrl])
  t.equal(stale.code, 1)
  t.match(stale.stderr, /409.*latest is 2/, 'names the latest version')
  t.notMatch(stale.stderr, /latest is 2.*latest version is 2/, 'once (issue 14: "the latest is 2 (latest version is 2)")')

  const latest = await cli(['code', 'get', 'demo', 'intro', '--url', baseUrl])
  t.equal(latest.stdout, 'print("two")\n')
  const old = await cli(['code', 'get', 'demo', 'intro', '--version', '1', '--url', baseUrl])
  t.equal(old.stdout, 'print("one")\n')

  const status = await cli(['status', 'demo', 'intro', '--url', baseUrl])
  t.equal(status.code, 0, status.stderr)
  t.equal(JSON.parse(status.stdout).code.latestVersion, 2)
})

t.test('render-store explains bad usage (exit 2) and service errors (exit 1)', async (t) => {
  const { baseUrl } = await listen(t)
  const help = await cli(['--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /upload <projectId> <videoId> <file>/)
  t.equal((await cli([])).code, 2)
  const missing = await cli(['upload', 'demo'])
  t.equal(missing.code, 2)
  t.match(missing.stderr, /usage: render-store upload/)
  const badBase = await cli(['code', 'push', 'demo', 'intro', 'x.py', '--base', 'two'])
  t.equal(badBase.code, 2)
  t.match(badBase.stderr, /--base must be a positive integer/)
  t.equal((await cli(['frobnicate'])).code, 2)
  const notFound = await cli(['code', 'get', 'demo', 'nothing-here', '--url', baseUrl])
  t.equal(notFound.code, 1)
  t.match(notFound.stderr, /404/)
  const badId = await cli(['status', 'demo', 'bad id!', '--url', baseUrl])
  t.equal(badId.code, 1)
  t.match(badId.stderr, /400/)
})

t.test('a write with no clear answer prints its idempotency key; the same command with --idempotency-key sends that key', async (t) => {
  const { createServer } = await import('node:http')
  const keys: Array<string | undefined> = []
  let answer = 503
  const server = createServer((request, response) => {
    request.resume()
    request.on('end', () => {
      keys.push(request.headers['idempotency-key'] as string | undefined)
      if (answer === 503) {
        response.writeHead(503, { 'content-type': 'application/problem+json', 'retry-after': '0' })
        response.end(JSON.stringify({ type: 'about:blank', title: 'Service Unavailable', status: 503, detail: 'storage timed out' }))
        return
      }
      response.writeHead(201, { 'content-type': 'application/json', 'idempotent-replayed': 'true' })
      response.end(JSON.stringify({ version: 4, filename: 'scene.py', key: 'k', sha256: 'a'.repeat(64), sizeBytes: 1, createdAt: new Date().toISOString() }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  const file = join(workDir(t), 'scene.py')
  writeFileSync(file, 'print(1)\n')

  const failed = await cli(['code', 'push', 'demo', 'intro', file, '--url', url])
  t.equal(failed.code, 1)
  t.equal(keys.length, 4, 'the first attempt and three retries')
  t.equal(new Set(keys).size, 1, 'all with one key')
  const printed = /--idempotency-key (\S+) to finish it/.exec(failed.stderr)?.[1]
  t.equal(printed, keys[0], 'the key is printed')

  answer = 201
  const again = await cli(['code', 'push', 'demo', 'intro', file, '--url', url, '--idempotency-key', printed as string])
  t.equal(again.code, 0, again.stderr)
  t.equal(keys.at(-1), printed)
  t.match(again.stderr, /stored code version 4 \(already stored with this key\)/)

  const bad = await cli(['code', 'push', 'demo', 'intro', file, '--url', url, '--idempotency-key', 'has space'])
  t.equal(bad.code, 2)
  t.match(bad.stderr, /--idempotency-key must be 1-255 visible ASCII characters/)
})

t.test('render-store code push twice with one --idempotency-key stores one version (the service replays the first answer)', async (t) => {
  const { baseUrl } = await listen(t)
  const file = join(workDir(t), 'scene.py')
  writeFileSync(file, 'print("once")\n')
  const first = await cli(['code', 'push', 'demo', 'keyed', file, '--url', baseUrl, '--idempotency-key', 'cli-test-1'])
  t.equal(first.code, 0, first.stderr)
  const second = await cli(['code', 'push', 'demo', 'keyed', file, '--url', baseUrl, '--idempotency-key', 'cli-test-1'])
  t.equal(second.code, 0, second.stderr)
  t.equal(JSON.parse(second.stdout).version, JSON.parse(first.stdout).version)
  t.match(second.stderr, /already stored with this key/)
})
