// The embedded S3/DynamoDB: restarts are budgeted per time window (a crash loop waits, then heals; never "five in
// the process's life, then unready for good"), and the ports are kept in DATA_DIR so presigned URLs survive a
// restart of the service.
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { PORTS_FILE, startEmbeddedAws, type Emulator } from '../../src/local/embedded.js'
import { restartBudget, superviseEmulators } from '../../src/local/supervisor.js'
import { createAwsClients } from '../../src/aws/clients.js'
import { loadConfig } from '../../src/config.js'

const BUCKETS = ['render-store-videos', 'render-store-code']

function tempDir (t: { teardown: (fn: () => void) => void }): string {
  const directory = mkdtempSync(join(tmpdir(), 'render-store-embedded-'))
  t.teardown(() => { rmSync(directory, { recursive: true, force: true }) })
  return directory
}

t.test('restartBudget: max restarts per window, room again as the oldest leaves it', async (t) => {
  let now = 1_000_000
  const budget = restartBudget({ max: 2, windowMs: 60_000, now: () => now })
  t.ok(budget.take())
  now += 10_000
  t.ok(budget.take())
  t.notOk(budget.take(), 'the third within the window waits')
  t.equal(budget.waitMs(), 50_000, 'until the first leaves the window')
  now += 50_000
  t.equal(budget.waitMs(), 0)
  t.ok(budget.take(), 'and then may restart')
  t.notOk(budget.take())
})

t.test('an emulator that keeps dying is restarted within the budget, then again once the window has room', async (t) => {
  const restarted: Emulator[] = []
  let wake: (() => void) | undefined
  const errors: string[] = []
  // A clock of its own: it moves only when the supervisor says it waits (a busy machine's slow restarts do not matter).
  let now = 0
  const log = { info: () => {}, error: (_object: object, message: string) => { errors.push(message); if (/keeps exiting/.test(message)) now += 60_000 } }
  const onUnexpectedExit = superviseEmulators({ log: () => log, max: 2, windowMs: 60_000, now: () => now, recheckMs: 50, onRestarted: (emulator) => { restarted.push(emulator); wake?.() } })
  const embedded = await startEmbeddedAws({ dataDir: tempDir(t), buckets: BUCKETS, onUnexpectedExit })
  t.teardown(async () => { await embedded.close() })
  const endpoint = embedded.s3.endpoint
  for (let crash = 1; crash <= 3; crash++) {
    const back = new Promise<void>((resolve) => { wake = resolve })
    const pid = embedded.s3.pid
    process.kill(pid!, 'SIGKILL')
    await back
    t.not(embedded.s3.pid, pid, `crash ${crash}: a new process`)
    t.equal(embedded.s3.endpoint, endpoint, `crash ${crash}: on the same endpoint`)
  }
  t.equal(restarted.length, 3, 'the third crash, past the budget, is restarted too once the window has room')
  t.ok(errors.some((message) => /keeps exiting; next restart in/.test(message)), 'and it said it was waiting')
  const answer = await fetch(`${endpoint}/`)
  t.equal(answer.status, 200, 'the restarted S3 answers')
})

t.test('a stopped emulator is not restarted by the supervisor', async (t) => {
  let restarts = 0
  const onUnexpectedExit = superviseEmulators({ log: () => undefined, max: 5, windowMs: 1000, onRestarted: () => { restarts++ } })
  const embedded = await startEmbeddedAws({ dataDir: tempDir(t), buckets: BUCKETS, onUnexpectedExit })
  await embedded.close()
  t.ok(embedded.s3.stopped && embedded.dynamodb.stopped)
  t.equal(restarts, 0)
})

t.test('the embedded ports are kept in DATA_DIR: a presigned URL made before a restart of the service works after it', async (t) => {
  const dataDir = tempDir(t)
  const first = await startEmbeddedAws({ dataDir, buckets: BUCKETS })
  const config = { ...loadConfig({ LOG_LEVEL: 'silent', DATA_DIR: dataDir }), s3Endpoint: first.s3.endpoint, dynamodbEndpoint: first.dynamodb.endpoint }
  const aws = createAwsClients(config)
  await aws.s3.send(new PutObjectCommand({ Bucket: BUCKETS[0], Key: 'kept.txt', Body: 'still here' }))
  const url = await getSignedUrl(aws.s3, new GetObjectCommand({ Bucket: BUCKETS[0], Key: 'kept.txt' }), { expiresIn: 600 })
  aws.destroy()
  const ports = JSON.parse(readFileSync(join(dataDir, PORTS_FILE), 'utf8')) as { s3: number, dynamodb: number }
  t.same(ports, { s3: first.s3.port, dynamodb: first.dynamodb.port })
  await first.close()

  const second = await startEmbeddedAws({ dataDir, buckets: BUCKETS })
  t.teardown(async () => { await second.close() })
  t.equal(second.s3.port, first.s3.port, 'S3 on the same port')
  t.equal(second.dynamodb.port, first.dynamodb.port, 'DynamoDB on the same port')
  const answer = await fetch(url)
  t.equal(answer.status, 200)
  t.equal(await answer.text(), 'still here')
})

t.test('a saved port that is taken now: a new port, saved for next time', async (t) => {
  const dataDir = tempDir(t)
  const first = await startEmbeddedAws({ dataDir, buckets: BUCKETS })
  t.teardown(async () => { await first.close() })
  // first still holds its ports: a second start on the same DATA_DIR cannot have them.
  const second = await startEmbeddedAws({ dataDir, buckets: BUCKETS })
  t.teardown(async () => { await second.close() })
  t.not(second.s3.port, first.s3.port)
  const ports = JSON.parse(readFileSync(join(dataDir, PORTS_FILE), 'utf8')) as { s3: number }
  t.equal(ports.s3, second.s3.port)
})
