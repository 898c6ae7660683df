// A dependency that accepts connections and never answers (the emulator process frozen with SIGSTOP) must give a
// 503 with Retry-After within the SDK's bounds, never a request that hangs until the client gives up.
import t from 'tap'
import { listen } from '../helper.js'

t.test('hung S3: a read answers 503 + Retry-After instead of hanging, and works again once S3 answers', async (t) => {
  const { app, baseUrl } = await listen(t, { config: { codeCacheTtlMs: 0, maxAttempts: 1 } })
  const url = `${baseUrl}/v1/projects/p1/videos/v1/code`
  t.equal((await fetch(url, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'print(1)\n' })).status, 201)
  const s3 = app.testAws.embedded.s3.pid as number
  process.kill(s3, 'SIGSTOP')
  t.teardown(() => { try { process.kill(s3, 'SIGCONT') } catch {} })
  const hung = await fetch(url, { headers: { accept: 'text/plain' }, signal: AbortSignal.timeout(55_000) })
  t.equal(hung.status, 503)
  t.equal(hung.headers.get('retry-after'), '5')
  t.equal((await hung.json() as { title: string }).title, 'Service Unavailable')
  process.kill(s3, 'SIGCONT')
  const again = await fetch(url, { headers: { accept: 'text/plain' } })
  t.equal(again.status, 200)
  t.equal(await again.text(), 'print(1)\n')
})
