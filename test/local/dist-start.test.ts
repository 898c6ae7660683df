// The built server as it ships: compiled to dist/, bundled into dist/bundle/ and started the way the image and
// `npm start` start it.
// 1. `npm start` on a built tree answers /health (the time it took is logged, not asserted: speed is bench's), and a
//    source changed after the build is compiled before the next `npm start` serves.
// 2. A production install for AWS (npm ci --omit=dev --omit=optional --omit=peer, from the repository's lockfile) has
//    neither LangChain nor the emulators, serves against S3 and DynamoDB (the test helper's), and in embedded mode
//    says in one line that the emulators are missing (exit 78).
import t from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { startTestAws } from '../helper.js'

const root = new URL('../..', import.meta.url).pathname

function tempDir (t: { teardown: (fn: () => void) => void }, prefix: string): string {
  const directory = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => { rmSync(directory, { recursive: true, force: true }) })
  return directory
}

function run (command: string, args: string[], cwd: string): { status: number | null, output: string } {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: 540_000, env: { ...process.env, npm_config_update_notifier: 'false' } })
  return { status: result.status, output: `${result.stdout}${result.stderr}${result.error?.message ?? ''}` }
}

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  const port = (server.address() as { port: number }).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

interface Running { child: ChildProcess, exited: Promise<number | null>, output: () => string }

function startProcess (t: { teardown: (fn: () => unknown) => void }, command: string, args: string[], cwd: string, env: Record<string, string>): Running {
  const child = spawn(command, args, { cwd, env: { ...process.env, LOG_FORMAT: 'json', LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.on('data', (chunk) => { output += String(chunk) })
  child.stderr?.on('data', (chunk) => { output += String(chunk) })
  const exited = new Promise<number | null>((resolve) => { child.once('exit', (code) => { resolve(code) }) })
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  })
  return { child, exited, output: () => output }
}

/** Polls GET url until 200; resolves with the answer's body, or rejects when the process exits or 300 s pass. */
async function firstOk (url: string, running: Running): Promise<{ body: Record<string, unknown>, atMs: number }> {
  const started = performance.now()
  const state = { exited: false }
  void running.exited.then(() => { state.exited = true })
  while (!state.exited && performance.now() - started < 300_000) {
    const answer = await fetch(url).catch(() => undefined)
    if (answer?.status === 200) return { body: await answer.json() as Record<string, unknown>, atMs: performance.now() }
    await answer?.body?.cancel()
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`${url} never answered 200:\n${running.output()}`)
}

// An npm ci and a full compile on a shared 2-core machine under load take minutes: more than the suite's 600 s per file.
t.setTimeout(1_500_000)

const load = (): string => loadavg().map((value) => value.toFixed(2)).join(' ')

// A copy of the tree (sources, scripts, config; the dev dependencies linked), so the build here cannot race another
// test file's `npm start` in the checkout. Its dist/ is also the one the production install below runs.
const builtTree = tempDir(t, 'render-store-start-')

t.test('npm start on a built tree answers /health; a source changed after the build is compiled by the next npm start', async (t) => {
  const tree = builtTree
  for (const name of ['src', 'routes', 'schemas', 'scripts']) cpSync(join(root, name), join(tree, name), { recursive: true })
  for (const name of ['package.json', 'tsconfig.json']) copyFileSync(join(root, name), join(tree, name))
  symlinkSync(join(root, 'node_modules'), join(tree, 'node_modules'))
  symlinkSync(join(root, 'ui'), join(tree, 'ui'))
  const build = run('npm', ['run', 'build', '--silent'], tree)
  t.equal(build.status, 0, `npm run build: ${build.output.slice(-2000)}`)
  t.ok(existsSync(join(tree, 'dist', '.build-stamp')), 'the build stamps dist')
  t.notOk(existsSync(join(tree, 'dist', 'bench')), 'bench/ is not in the server build')
  t.ok(existsSync(join(tree, 'dist', 'bundle', 'server.js')) && existsSync(join(tree, 'dist', 'bundle', 'emulator.js')), 'the server and the emulator entry are bundled')

  const start = async (label: string): Promise<Record<string, unknown>> => {
    const port = await freePort()
    const loadBefore = load()
    const spawned = performance.now()
    const npm = startProcess(t, 'npm', ['start', '--silent'], tree, { PORT: String(port), HOST: '127.0.0.1', DATA_DIR: join(tree, 'data') })
    const { body, atMs } = await firstOk(`http://127.0.0.1:${port}/health`, npm)
    t.comment(`${label}: /health 200 ${Math.round(atMs - spawned)} ms after \`npm start\` was spawned (load average before ${loadBefore}, after ${load()})`)
    npm.child.kill('SIGTERM')
    t.equal(await npm.exited, 0, `${label}: npm start stops cleanly on SIGTERM`)
    return body
  }

  const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version
  t.match(await start('built tree'), { status: 'ok', version }, 'the built tree serves /health')

  // An edit after the build: the version the service reports comes from src/version.ts.
  const source = join(tree, 'src', 'version.ts')
  const original = readFileSync(source, 'utf8')
  t.match(original, /^export const SERVICE_VERSION = findPackageJson\(\)\.version$/m)
  writeFileSync(source, original.replace(/^export const SERVICE_VERSION = .*$/m, "export const SERVICE_VERSION = 'edited-after-the-build'"))
  t.match(await start('after a source change'), { status: 'ok', version: 'edited-after-the-build' }, 'npm start compiled the changed source first')
})

t.test('production install for AWS: no LangChain, no emulators; serves /health/ready against S3 and DynamoDB; embedded mode exits 78 in one line', async (t) => {
  const tree = tempDir(t, 'render-store-prod-')
  copyFileSync(join(root, 'package.json'), join(tree, 'package.json'))
  copyFileSync(join(root, 'package-lock.json'), join(tree, 'package-lock.json'))
  symlinkSync(join(root, 'ui'), join(tree, 'ui'))
  const install = run('npm', ['ci', '--omit=dev', '--omit=optional', '--omit=peer', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund'], tree)
  t.equal(install.status, 0, `npm ci of the production dependencies: ${install.output.slice(-2000)}`)
  t.ok(existsSync(join(builtTree, 'dist', 'bundle', 'server.js')), 'the server was built (by the test above)')
  cpSync(join(builtTree, 'dist'), join(tree, 'dist'), { recursive: true })
  for (const name of ['@langchain/core', '@langchain/langgraph', '@langchain/langgraph-checkpoint', 's3rver', 'dynalite', 'typescript', 'tap']) {
    t.notOk(existsSync(join(tree, 'node_modules', name)), `${name} is not installed`)
  }
  t.ok(existsSync(join(tree, 'node_modules', 'fastify')), 'the runtime dependencies are')

  const testAws = await startTestAws(t)
  const port = await freePort()
  const server = startProcess(t, process.execPath, ['dist/bundle/server.js'], tree, {
    PORT: String(port),
    HOST: '127.0.0.1',
    AWS_ENDPOINT_URL_S3: testAws.config.s3Endpoint,
    AWS_ENDPOINT_URL_DYNAMODB: testAws.config.dynamodbEndpoint,
    AWS_S3_VIDEO_BUCKET: testAws.config.videoBucket,
    AWS_S3_CODE_BUCKET: testAws.config.codeBucket,
    AWS_DYNAMODB_TABLE: testAws.config.table,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    ALLOW_ANONYMOUS: 'true'
  })
  const ready = await firstOk(`http://127.0.0.1:${port}/health/ready`, server)
  t.equal(ready.body.overallStatus, 'healthy', '/health/ready 200 from the production install, in AWS mode')
  t.notMatch(server.output(), /langchain/i, 'nothing asked for LangChain')
  // What the bundle leaves to node_modules or finds by path: the web page and its tus client, Swagger UI's files,
  // the OpenAPI document, and a code version with its diff (the diff package is loaded on first use).
  const base = `http://127.0.0.1:${port}`
  for (const [path, type] of [['/ui', /text\/html/], ['/ui/vendor/tus.min.js', /javascript/], ['/docs/static/swagger-ui.css', /text\/css/], ['/openapi.json', /json/]] as const) {
    const answer = await fetch(`${base}${path}`)
    await answer.arrayBuffer()
    t.equal(answer.status, 200, `${path} from the bundle`)
    t.match(answer.headers.get('content-type'), type, `${path} content type`)
  }
  for (const text of ['a = 1\n', 'a = 2\n']) {
    const written = await fetch(`${base}/v1/projects/bundle/videos/v/code`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ content: text, filename: 'a.py' }) })
    t.equal(written.status, 201, 'a code version is stored')
  }
  const diff = await fetch(`${base}/v1/projects/bundle/videos/v/code/versions/2/diff?from=1`)
  t.match(await diff.text(), /-a = 1\n\+a = 2/, 'and diffed')
  server.child.kill('SIGTERM')
  t.equal(await server.exited, 0, 'stops cleanly on SIGTERM')

  const embedded = startProcess(t, process.execPath, ['dist/bundle/server.js'], tree, { PORT: '0', DATA_DIR: join(tree, 'data') })
  t.equal(await embedded.exited, 78, 'embedded mode without the emulators: EX_CONFIG')
  t.same(embedded.output().trim().split('\n'), ['render-store: the embedded mode (no AWS_S3_VIDEO_BUCKET/AWS_S3_CODE_BUCKET set) needs s3rver and dynalite, which this install left out (--omit=optional); install them with `npm ci`, or configure AWS'], 'one line, no stack trace')
})
