// The real entry point as a user runs it: a process on the embedded default, its data on disk, SIGTERM handling.
import t from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PutItemCommand, GetItemCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb'
import { PutObjectCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3'

const serverEntry = new URL('../../src/server.ts', import.meta.url).pathname
// Five service processes (one through npm) on a loaded shared machine: more than the suite's 600 s per file.
t.setTimeout(1_200_000)

interface Started { child: ChildProcess, baseUrl: string, s3: string, dynamodb: string, emulatorPids: number[], output: () => string }

async function startServer (dataDir: string): Promise<Started> {
  const child = spawn(process.execPath, [...process.execArgv, serverEntry], {
    env: { ...process.env, PORT: '0', DATA_DIR: dataDir, LOG_FORMAT: 'json', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stderr?.on('data', (chunk) => { output += String(chunk) })
  return await new Promise((resolve, reject) => {
    // What is tested is that it starts, not how fast (that is bench's): a shared 2-core machine at load 20 once took
    // over 120 s to load the TypeScript sources, so the limit only stops a hung start from holding the file forever.
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`server did not start within 300 s:\n${output}`)) }, 300_000)
    let s3 = ''
    let dynamodb = ''
    let emulatorPids: number[] = []
    child.stdout?.on('data', (chunk) => {
      output += String(chunk)
      for (const line of output.split('\n')) {
        if (!line.startsWith('{')) continue
        const entry = JSON.parse(line) as { msg?: string, s3?: string, dynamodb?: string, emulatorPids?: number[] }
        if (entry.s3 !== undefined) ({ s3 = '', dynamodb = '', emulatorPids = [] } = entry)
        const listening = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(entry.msg ?? '')
        if (listening !== null) {
          clearTimeout(timer)
          resolve({ child, baseUrl: listening[1], s3, dynamodb, emulatorPids, output: () => output })
        }
      }
    })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited ${code}:\n${output}`)) })
  })
}

async function stopServer (started: Started): Promise<number | null> {
  return await new Promise((resolve) => {
    started.child.once('exit', (code) => { resolve(code) })
    started.child.kill('SIGTERM')
  })
}

/** Runs the server with this environment until it exits by itself (a start that fails); its exit code and output. */
async function runToExit (environment: Record<string, string>): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawn(process.execPath, [...process.execArgv, serverEntry], { env: { ...process.env, LOG_FORMAT: 'json', LOG_LEVEL: 'warn', ...environment }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (chunk) => { stdout += String(chunk) })
  child.stderr?.on('data', (chunk) => { stderr += String(chunk) })
  const code = await new Promise<number | null>((resolve) => { child.once('exit', (exitCode) => { resolve(exitCode) }) })
  return { code, stdout, stderr }
}

const processAlive = (pid: number): boolean => { try { process.kill(pid, 0); return true } catch { return false } }

t.test('npm start path: the embedded default serves /health and /health/ready, keeps data across a restart, and stops cleanly on SIGTERM', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'render-store-process-'))
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))

  const first = await startServer(dataDir)
  t.teardown(() => first.child.kill('SIGKILL'))
  t.match(first.s3, /^http:\/\/127\.0\.0\.1:\d+$/, 'logs where local S3 is')
  t.match(first.dynamodb, /^http:\/\/127\.0\.0\.1:\d+$/, 'logs where local DynamoDB is')
  t.equal((await fetch(`${first.baseUrl}/health`)).status, 200)
  const ready = await fetch(`${first.baseUrl}/health/ready`)
  t.equal(ready.status, 200)
  t.equal(((await ready.json()) as { overallStatus: string }).overallStatus, 'healthy')

  const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }
  const s3 = new S3Client({ region: 'us-east-1', endpoint: first.s3, forcePathStyle: true, credentials })
  const dynamodb = new DynamoDBClient({ region: 'us-east-1', endpoint: first.dynamodb, credentials })
  await s3.send(new PutObjectCommand({ Bucket: 'render-store-code', Key: 'restart-check.txt', Body: 'kept' }))
  await dynamodb.send(new PutItemCommand({ TableName: 'VideoMetadata', Item: { pk: { S: 'restart-check' }, sk: { S: 'x' } } }))
  s3.destroy()
  dynamodb.destroy()

  t.equal(first.emulatorPids.length, 2, 'logs the emulator processes')
  t.ok(first.emulatorPids.every(processAlive), 'the emulators run while the service does')

  // An emulator that dies is brought back on the same port and data. Wait for the service to see the exit first: a
  // readiness answer right after the kill may still be the cached one from before it (HEALTH_CACHE_MS).
  process.kill(first.emulatorPids[0], 'SIGKILL')
  const waitForOutput = async (pattern: RegExp): Promise<void> => {
    for (let attempt = 0; attempt < 100 && !pattern.test(first.output()); attempt++) await new Promise((resolve) => setTimeout(resolve, 200))
  }
  await waitForOutput(/embedded s3 exited unexpectedly; restarting it/)
  t.match(first.output(), /embedded s3 exited unexpectedly; restarting it/)
  await waitForOutput(/embedded s3 is back at http/)
  let readyAgain = 0
  for (let attempt = 0; attempt < 50 && readyAgain !== 200; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 200))
    readyAgain = (await fetch(`${first.baseUrl}/health/ready`)).status
  }
  t.equal(readyAgain, 200, 'ready again after the local S3 was killed')
  t.match(first.output(), /embedded s3 is back at http:\/\/127\.0\.0\.1:/, 'says it is back')
  t.equal(await stopServer(first), 0, 'SIGTERM exits 0')
  t.same(first.emulatorPids.filter(processAlive), [], 'no emulator outlives the service')
  t.match(first.output(), /shutting down/)

  const second = await startServer(dataDir)
  t.teardown(() => second.child.kill('SIGKILL'))
  const s3Again = new S3Client({ region: 'us-east-1', endpoint: second.s3, forcePathStyle: true, credentials })
  const dynamodbAgain = new DynamoDBClient({ region: 'us-east-1', endpoint: second.dynamodb, credentials })
  const object = await s3Again.send(new GetObjectCommand({ Bucket: 'render-store-code', Key: 'restart-check.txt' }))
  t.equal(await object.Body?.transformToString(), 'kept', 'S3 data survived the restart')
  const item = await dynamodbAgain.send(new GetItemCommand({ TableName: 'VideoMetadata', Key: { pk: { S: 'restart-check' }, sk: { S: 'x' } } }))
  t.equal(item.Item?.pk?.S, 'restart-check', 'DynamoDB data survived the restart')
  s3Again.destroy()
  dynamodbAgain.destroy()
  t.equal(await stopServer(second), 0)
})

t.test('npm start: SIGTERM to the npm process reaches node (exec), which stops serving and exits; nothing is left orphaned', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'render-store-npm-start-'))
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
  const root = new URL('../..', import.meta.url).pathname
  const npm = spawn('npm', ['start', '--silent'], { cwd: root, env: { ...process.env, PORT: '0', DATA_DIR: dataDir, LOG_FORMAT: 'json', LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  npm.stderr?.on('data', (chunk) => { output += String(chunk) })
  let nodePid = 0
  t.teardown(() => { if (nodePid !== 0 && processAlive(nodePid)) process.kill(nodePid, 'SIGKILL'); npm.kill('SIGKILL') })
  const npmExited = new Promise<number | null>((resolve) => { npm.once('exit', (code) => { resolve(code) }) })
  const baseUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`npm start did not listen:\n${output}`)) }, 300000)
    npm.stdout?.on('data', (chunk) => {
      output += String(chunk)
      for (const line of output.split('\n')) {
        if (!line.startsWith('{')) continue
        const entry = JSON.parse(line) as { msg?: string, pid?: number }
        const listening = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(entry.msg ?? '')
        if (listening !== null) { nodePid = entry.pid ?? 0; clearTimeout(timer); resolve(listening[1]) }
      }
    })
  })
  t.ok(nodePid > 0, `node logs its pid (${nodePid})`)
  t.equal((await fetch(`${baseUrl}/health`)).status, 200)
  npm.kill('SIGTERM')
  const code = await npmExited
  for (let i = 0; i < 100 && processAlive(nodePid); i++) await new Promise((resolve) => setTimeout(resolve, 100))
  t.notOk(processAlive(nodePid), 'the node process is gone')
  t.equal(code, 0, 'npm start exits 0 after a graceful stop')
  const after = await fetch(`${baseUrl}/health`).then((response) => response.status, () => 'refused')
  t.equal(after, 'refused', 'nothing serves on the port any more')
})

t.test('a busy port: one clear line on stderr, exit code 69, no stack trace', async (t) => {
  const { createServer } = await import('node:net')
  const blocker = createServer()
  await new Promise<void>((resolve) => { blocker.listen(0, '127.0.0.1', resolve) })
  t.teardown(() => { blocker.close() })
  const port = (blocker.address() as { port: number }).port
  const dataDir = mkdtempSync(join(tmpdir(), 'render-store-busy-'))
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
  const { code, stdout, stderr } = await runToExit({ PORT: String(port), DATA_DIR: dataDir })
  t.equal(code, 69)
  t.same(stderr.split('\n').filter((line) => line.startsWith('render-store:')), [`render-store: port ${port} on 127.0.0.1 is already in use (another render-store or program listens there); stop it or set PORT to a free port`])
  t.notMatch(stdout + stderr, /"stack"|at .*\.(js|ts):\d+/, 'no stack trace')
})

t.test('an embedded emulator that cannot start: one line naming it and why, exit 69, and the other emulator is not left running', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'render-store-no-dynamodb-'))
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
  writeFileSync(join(dataDir, 'dynamodb'), 'a file where local DynamoDB keeps its directory\n')
  const { code, stdout, stderr } = await runToExit({ PORT: '0', DATA_DIR: dataDir })
  t.equal(code, 69)
  const lines = stderr.split('\n').filter((line) => line.startsWith('render-store:'))
  t.equal(lines.length, 1, stderr)
  t.match(lines[0], /^render-store: could not start the embedded S3 and DynamoDB: embedded dynamodb \(a free port\): EEXIST: file already exists, mkdir '.*\/dynamodb'$/)
  t.notMatch(stdout + stderr, /"stack"|at .*\.(js|ts):\d+/, 'no stack trace')
  const left = spawnSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' }).stdout.split('\n').filter((line) => line.includes(dataDir))
  t.same(left, [], 'no emulator of this data directory is running')
})
