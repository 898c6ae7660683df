// No Docker engine here: these check the container files' shape, the things a build would only reveal at run time.
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'

const root = new URL('../..', import.meta.url).pathname
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8')
// Instructions, with backslash continuations joined and comments dropped.
const instructions = dockerfile.replace(/\\\n\s*/g, ' ').split('\n').map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'))
const stages = instructions.reduce<string[][]>((all, line) => {
  if (/^FROM\s/i.test(line)) all.push([line])
  else all.at(-1)?.push(line)
  return all
}, [])

t.test('the Dockerfile is multi-stage: a build stage compiles, the runtime stage installs production dependencies only', async (t) => {
  t.equal(stages.length, 2)
  t.match(stages[0][0], /^FROM node:24[-.\w]* AS build$/)
  t.match(stages[1][0], /^FROM node:24[-.\w]* AS runtime$/)
  t.ok(stages[0].some((line) => /^RUN npm ci\b/.test(line)) && stages[0].some((line) => /^RUN npm run build\b/.test(line)), 'build stage installs and compiles')
  t.ok(stages[1].some((line) => /^RUN npm ci\b.*--omit=dev/.test(line)), 'runtime: npm ci --omit=dev')
  t.ok(stages[1].some((line) => line === 'COPY --from=build /app/dist ./dist'), 'runtime takes the compiled output')
})

t.test('the runtime stage runs as a non-root user, listens on all interfaces and checks /health', async (t) => {
  const runtime = stages[1]
  const user = runtime.findLast((line) => line.startsWith('USER '))
  t.ok(user !== undefined && !/^USER (root|0)\b/.test(user), `non-root user: ${user}`)
  t.ok(runtime.findIndex((line) => line.startsWith('USER ')) < runtime.findIndex((line) => line.startsWith('CMD ')), 'USER comes before CMD')
  t.match(runtime.join('\n'), /HOST=0\.0\.0\.0/)
  t.match(runtime.find((line) => line.startsWith('HEALTHCHECK ')), /CMD .*\/health/)
  const cmd = JSON.parse(runtime.find((line) => line.startsWith('CMD '))!.slice(4)) as string[]
  t.same(cmd.slice(0, 1), ['node'])
  // dist/bundle/X.js is src/X.ts compiled and bundled (scripts/build.mjs); dist/Y.js would be Y.ts compiled.
  const source = cmd[1].replace(/^dist\/bundle\//, 'src/').replace(/^dist\//, '').replace(/\.js$/, '.ts')
  t.ok(existsSync(join(root, source)), `${cmd[1]} is built from ${source}, which exists`)
  for (const line of runtime.filter((line) => /^COPY (?!--from)/.test(line))) {
    for (const source of line.split(/\s+/).slice(1, -1)) t.ok(existsSync(join(root, source)), `${source} exists for ${line}`)
  }
})

t.test('.dockerignore keeps local state and dependencies out of the build context', async (t) => {
  const ignored = readFileSync(join(root, '.dockerignore'), 'utf8').split('\n').map((line) => line.trim())
  for (const entry of ['node_modules', 'dist', '.data', '.git']) t.ok(ignored.includes(entry), entry)
})

t.test('compose.yaml runs the embedded default with a volume for its data', async (t) => {
  const compose = parse(readFileSync(join(root, 'compose.yaml'), 'utf8')) as { services: Record<string, any>, volumes: Record<string, unknown> }
  const service = compose.services['render-store']
  t.equal(service.build, '.')
  t.ok(service.ports.includes('3000:3000'))
  t.equal(service.environment.HOST, '0.0.0.0')
  t.notOk(Object.keys(service.environment).some((key) => key.startsWith('AWS_')), 'no AWS settings: embedded mode')
  const volume = (service.volumes as string[]).find((entry) => entry.endsWith(':/app/.data'))
  t.ok(volume !== undefined, 'data volume mounted at /app/.data')
  t.ok(volume!.split(':')[0] in compose.volumes, 'the named volume is declared')
  t.match(dockerfile, /DATA_DIR=\/app\/\.data/, 'the image keeps its data where the volume is')
})
