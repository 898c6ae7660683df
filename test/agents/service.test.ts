// The agents and the demo against the real service listening on loopback (embedded S3 and DynamoDB).
import t from 'tap'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { listen, startTestAws } from '../helper.js'
import { runDemo } from '../../src/agents/demo/main.js'
import { RenderStoreClient } from '../../src/client/index.js'
import { buildVideoGraph, createVideoAgents, fixtureRenderer, type VideoState } from '../../src/agents/index.js'

type Test = { teardown: (fn: () => unknown) => void }

function outputDir (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'agents-service-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex')

t.test('the service on loopback', async (t) => {
  const aws = await startTestAws(t)
  const { baseUrl } = await listen(t, { aws })
  const client = new RenderStoreClient({ baseUrl, retry: { initialDelayMs: 5, maxDelayMs: 20 } })

  t.test('the demo: code versions 1 and 2, render versions 1 and 2, their content as the runs made it', async (t) => {
    const lines: string[] = []
    const result = await runDemo({ baseUrl, projectId: 'demo', videoId: 'pythagoras', outputDir: outputDir(t), paddingBytes: 64 * 1024, write: (text) => lines.push(text) })
    const { first, second } = result
    t.equal(first.code_upload_status, 'completed')
    t.equal(first.upload_status, 'completed')
    t.equal(second.code_upload_status, 'completed')
    t.equal(second.upload_status, 'completed')
    t.equal(second.code_upload_results.base_version, 1, 'run 2 edited version 1')

    const codes = await client.listCodeVersions('demo', 'pythagoras')
    t.same(codes.items.map((version) => version.version), [2, 1])
    const v1 = await client.getCode('demo', 'pythagoras', 1)
    const v2 = await client.getCode('demo', 'pythagoras', 2)
    t.equal(v1.content, first.generated_code)
    t.equal(v2.content, second.generated_code)
    t.match(v1.content, /class Scene1\(Scene\)/)
    t.notMatch(v1.content, /# edit 1/)
    t.match(v2.content, /# edit 1: Show a² \+ b² = c²/)
    t.ok(v2.content.startsWith(v1.content.split('\n')[0]), 'v2 is v1 edited')
    t.equal(await client.getCodeText('demo', 'pythagoras'), v2.content)

    const renders = await client.listRenders('demo', 'pythagoras')
    t.same(renders.items.map((render) => render.version), [2, 1])
    for (const [state, version] of [[first, 1], [second, 2]] as Array<[VideoState, number]>) {
      const local = readFileSync(state.rendered_video_path as string)
      const url = await client.renderContentUrl('demo', 'pythagoras', version)
      const stored = Buffer.from(await (await fetch(url)).arrayBuffer())
      t.equal(sha256(stored), sha256(local), `render v${version}: the bytes rendered are the bytes stored`)
      t.equal(stored.subarray(4, 8).toString('latin1'), 'ftyp', 'an MP4')
      t.ok(stored.includes(`code-sha256: ${sha256(state.generated_code as string)}`), `render v${version} was made from code v${version}`)
      const record = await client.getRender('demo', 'pythagoras', version)
      t.equal(record.sha256, sha256(local))
      t.equal(record.resolution, '320x180')
      t.equal(record.durationSeconds, 2, 'the rendered duration is recorded')
      t.equal(record.scenes?.length, 2, 'both scene clips attached')
    }
    const status = await client.status('demo', 'pythagoras')
    t.equal(status.video.latestRenderVersion, 2)
    t.equal(status.code.latestVersion, 2)
    t.equal(status.video.status, 'uploaded')
    t.match(lines.join(''), /final status: video uploaded, latest render v2, latest code v2/)
    t.match(lines.join(''), /100\.0%/)
  })

  t.test('object lock requested where the bucket has none: a warning, the version stored', async (t) => {
    const agents = createVideoAgents({}, { outputDir: outputDir(t) }, { client })
    const state = await agents.codeGenerator.execute({ project_id: 'locks', video_id: 'v', topic: 'locks', enable_aws_code_management: true, enable_code_object_lock: true })
    t.equal(state.code_upload_status, 'completed')
    t.equal(state.version, 1)
    t.match(state.code_upload_results, { version: 1, locked: false, lock_warning: /409.*Object Lock/ })
    t.match(state.warnings, [{ step: 'code_generator', message: /object lock not applied/ }])
    t.match(agents.codeGenerator.getCodeManagementStatus(state), { code_upload_status: 'completed', object_lock_requested: true, enabled: true })
  })

  t.test('an edit made on a stale version: 409, re-read, edit re-applied on the latest', async (t) => {
    await client.createCodeVersion('race', 'v', { content: 'print("one")\n        self.wait(1)\n' })
    await client.createCodeVersion('race', 'v', { content: 'print("two")\n        self.wait(1)\n' })
    const agents = createVideoAgents({}, { outputDir: outputDir(t) }, { client })
    const state = await agents.codeGenerator.execute({
      project_id: 'race', video_id: 'v', enable_aws_code_management: true, editing_existing_video: true, current_version: 1, edit_instructions: 'fade in a note'
    })
    t.equal(state.code_upload_status, 'completed')
    t.equal(state.version, 3)
    t.match(state.code_upload_results, { base_version: 2, conflicts_resolved: 1 })
    const latest = await client.getCode('race', 'v')
    t.match(latest.content, /print\("two"\)/, 'the edit was applied to the latest, not the stale version')
    t.match(latest.content, /# edit 1: fade in a note/)
  })

  t.test('editing a video that has no code: fresh code with a warning', async (t) => {
    const agents = createVideoAgents({}, { outputDir: outputDir(t) }, { client })
    const state = await agents.codeGenerator.execute({ project_id: 'fresh', video_id: 'v', topic: 'fresh', enable_aws_code_management: true, editing_existing_video: true })
    t.equal(state.code_upload_status, 'completed')
    t.equal(state.version, 1)
    t.match(state.warnings, [{ message: /no stored code for this video: generating fresh code/ }])
  })

  t.test('a file that is not a video: 415, not retried, failed_graceful', async (t) => {
    const agents = createVideoAgents({}, {
      outputDir: outputDir(t),
      render: async ({ outputDir: dir }) => {
        const path = join(dir, 'not-a-video.mp4')
        const { writeFile } = await import('node:fs/promises')
        await writeFile(path, 'plain text, not a container')
        return { videoPath: path, sceneClipPaths: [], durationSeconds: 1 }
      }
    }, { client })
    const graph = buildVideoGraph(agents)
    const state = await graph.invoke({ project_id: 'bad', video_id: 'v', topic: 'bad', enable_aws_upload: true }, { configurable: { thread_id: 'bad' } })
    t.equal(state.upload_status, 'failed_graceful')
    t.equal(state.upload_retry_count, 0)
    t.match(state.upload_error, /415/)
    t.ok(state.completed_steps.includes('summary'))
  })

  t.test('renders from the configured size go through the resumable direct path (the client option, from the agent config)', async (t) => {
    const stateDir = outputDir(t)
    const agents = createVideoAgents({}, { outputDir: outputDir(t), render: fixtureRenderer({ paddingBytes: 256 * 1024 }) },
      { baseUrl, directUpload: { thresholdBytes: 1, stateDir } })
    const state = await agents.renderer.execute({ project_id: 'direct', video_id: 'v', generated_code: 'print(1)', enable_aws_upload: true })
    t.equal(state.upload_status, 'completed')
    const progress = await client.progress('direct', 'v')
    const session = await client.getUploadSession('direct', 'v', progress.uploadId)
    t.equal(session.mode, 'direct', 'stored by a direct session, not the proxied POST')
    t.equal(session.status, 'completed')
    const below = createVideoAgents({}, { outputDir: outputDir(t), render: fixtureRenderer({ paddingBytes: 1024 }) },
      { baseUrl, directUpload: { thresholdBytes: 1024 ** 3, stateDir } })
    t.equal((await below.renderer.execute({ project_id: 'direct', video_id: 'small', generated_code: 'print(1)', enable_aws_upload: true })).upload_status, 'completed')
    const small = await client.progress('direct', 'small')
    t.equal((await client.getUploadSession('direct', 'small', small.uploadId)).mode, 'proxied', 'below the threshold: through the service')
  })

  t.test('progress callbacks over the real service rise to 100', async (t) => {
    const agents = createVideoAgents({}, { outputDir: outputDir(t), render: fixtureRenderer({ paddingBytes: 512 * 1024 }) },
      { baseUrl, uploadChunkBytes: 64 * 1024 })
    const percentages: number[] = []
    agents.renderer.addUploadProgressCallback((_videoId, _bytes, _total, percentage) => percentages.push(percentage))
    const state = await agents.renderer.execute({ project_id: 'progress', video_id: 'v', generated_code: 'print(1)', enable_aws_upload: true })
    t.equal(state.upload_status, 'completed')
    t.ok(percentages.length >= 8)
    t.ok(percentages.every((p, i) => i === 0 || p > percentages[i - 1]))
    t.equal(percentages.at(-1), 100)
    const service = await client.progress('progress', 'v')
    t.match(service, { status: 'completed', percentage: 100 })
  })
})
