// The project's client over tus (src/client/tus.ts): chunked PATCHes with checksums, and a resume from its state
// file after the first run was stopped mid-way (as a process restart would), on another replica.
import t from 'tap'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { uploadRenderTus } from '../../src/client/index.js'
import { listen, startTestAws } from '../helper.js'
import { clients, mp4Bytes, objectDigest, sha256 } from '../support/render-fixtures.js'

const MiB = 1024 * 1024

t.test('uploadRenderTus: stopped mid-way, resumed from its state file on another replica; bytes identical', async (t) => {
  const testAws = await startTestAws(t)
  const one = await listen(t, { aws: testAws, config: { partSize: 5 * MiB } })
  const two = await listen(t, { aws: testAws, config: { partSize: 5 * MiB } })
  const aws = clients(t, testAws)
  const dir = mkdtempSync(join(tmpdir(), 'tus-client-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const bytes = mp4Bytes(23 * MiB + 17)
  const path = join(dir, 'render.mp4')
  writeFileSync(path, bytes)
  const stateFile = join(dir, 'upload.json')

  const stop = new AbortController()
  const stopped = await uploadRenderTus('tusc', 'clip', path, {
    baseUrl: one.baseUrl,
    stateFile,
    chunkBytes: 6 * MiB,
    checksum: true,
    title: 'client',
    signal: stop.signal,
    onProgress: (uploaded) => { if (uploaded >= 12 * MiB) stop.abort() }
  }).then(() => undefined, (error: Error) => error)
  t.ok(stopped, 'the first run stopped')
  t.ok(existsSync(stateFile), 'the upload URL was kept')

  const offsets: number[] = []
  const render = await uploadRenderTus('tusc', 'clip', path, { baseUrl: two.baseUrl, stateFile, chunkBytes: 6 * MiB, checksum: true, onProgress: (uploaded) => offsets.push(uploaded) })
  t.ok(offsets[0] >= 12 * MiB, `resumed at ${offsets[0]} bytes, not 0`)
  t.match(render, { version: 1, sha256: sha256(bytes), sizeBytes: bytes.length, title: 'client' })
  t.same(await objectDigest(aws, testAws.config.videoBucket, render.key), { sha256: sha256(bytes), size: bytes.length })
  t.notOk(existsSync(stateFile), 'the state file is removed once the upload is a render version')
})
