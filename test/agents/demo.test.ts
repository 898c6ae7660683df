// The demo's own embedded service: what `npm run demo` starts when RENDER_STORE_URL is not set.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { progressBar, startEmbeddedService } from '../../src/agents/demo/main.js'
import { RenderStoreClient } from '../../src/client/index.js'

t.test('startEmbeddedService serves the API on loopback and stops with its emulators', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'demo-embedded-'))
  t.teardown(() => { rmSync(dataDir, { recursive: true, force: true }) })
  const service = await startEmbeddedService(dataDir)
  const client = new RenderStoreClient({ baseUrl: service.baseUrl, retry: { retries: 0 } })
  t.equal((await client.health()).status, 'ok')
  t.equal((await client.ready()).overallStatus, 'healthy')
  await service.close()
  await t.rejects(client.health(), { status: 0 })
})

t.test('the progress bar fills with the percentage', async (t) => {
  t.equal(progressBar(0, 2048, 0, 10), '[..........]   0.0%  0/2 KiB')
  t.equal(progressBar(1024, 2048, 50, 10), '[#####.....]  50.0%  1/2 KiB')
  t.equal(progressBar(2048, 2048, 100, 10), '[##########] 100.0%  2/2 KiB')
})
