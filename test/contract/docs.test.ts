// What a clone of the repository tells its reader: the contract is in the repository (docs/API.md beside
// openapi.yaml, in step with it), the CLI invocation that works outside the checkout, and a runtime that is honest
// (engines, the Dockerfile's Node, and the part of the suite CI also runs on Node 24).
import t from 'tap'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'

const root = new URL('../..', import.meta.url).pathname
const read = (path: string): string => readFileSync(join(root, path), 'utf8')

t.test('the README points at files a clone has', async (t) => {
  const readme = read('README.md')
  t.notMatch(readme, /\.\.\/shared\//, 'nothing outside the repository')
  for (const [, target] of readme.matchAll(/\]\(((?!https?:|#)[^)\s]+)\)/g)) t.ok(existsSync(join(root, target.split('#')[0])), `${target} exists`)
  t.match(readme, /\(docs\/API\.md\)/)
  t.match(readme, /npm link/, 'says how to get the CLI outside the checkout')
  t.match(readme, /dist\/src\/cli\/main\.js/)
})

t.test('docs/API.md names every operation of openapi.yaml', async (t) => {
  const page = read('docs/API.md')
  const document = parse(read('openapi.yaml')) as { paths: Record<string, Record<string, unknown>> }
  for (const [path, methods] of Object.entries(document.paths)) {
    for (const method of Object.keys(methods)) {
      const verb = method.toUpperCase()
      const forms = [path, `.../${path.replace('/v1/projects/{projectId}/videos/{videoId}/', '')}`, `.../${path.replace('/v1/projects/{projectId}/videos/', '')}`]
      t.ok(forms.some((form) => page.includes(`\`${verb} ${form}\``) || page.includes(`\`${verb} ${form}?`) || page.includes(`\`${verb} ${form}\`,`)), `${verb} ${path} is on docs/API.md`)
    }
  }
})

t.test('the runtime: engines, the Dockerfile and CI agree on a supported Node', async (t) => {
  const pkg = JSON.parse(read('package.json')) as { engines: { node: string } }
  const minimum = Number(/>=\s*(\d+)/.exec(pkg.engines.node)?.[1])
  t.ok(minimum >= 22, `engines.node ${pkg.engines.node}: Node 20 reached end of life`)
  const images = [...read('Dockerfile').matchAll(/^FROM node:(\d+)/gm)].map((match) => Number(match[1]))
  t.ok(images.length >= 1)
  for (const major of images) t.ok(major >= minimum && major % 2 === 0, `the image runs Node ${major}, an LTS line engines allows`)
  const ci = read('.ci/run')
  const version = Number(/^NODE24_VERSION=(\d+)/m.exec(ci)?.[1])
  t.equal(version, 24)
  const files = /^NODE24_FILES=\(([^)]*)\)/m.exec(ci)?.[1].trim().split(/\s+/) ?? []
  t.ok(files.length >= 3, `${files.length} files on Node 24`)
  for (const file of files) t.ok(existsSync(join(root, file)), `${file} exists`)
  t.match(ci, /count "\$node24_log"/, 'and its results count in the final line')
})

t.test('dependencies where they belong: LangChain an optional peer of render-store/agents, the emulators optional, the linter in npm test', async (t) => {
  const pkg = JSON.parse(read('package.json')) as Record<string, Record<string, any>>
  const names = (section: string): string[] => Object.keys(pkg[section] ?? {})
  t.same(names('dependencies').filter((name) => name.startsWith('@langchain/') || name === 's3rver' || name === 'dynalite'), [], 'none in dependencies')
  for (const name of names('peerDependencies')) {
    t.match(name, /^@langchain\//)
    t.same(pkg.peerDependenciesMeta[name], { optional: true }, `${name} is an optional peer`)
    t.ok(name in pkg.devDependencies, `${name} is installed for the tests and the demo`)
  }
  t.same(names('optionalDependencies').sort(), ['dynalite', 's3rver'])
  t.equal((pkg.exports as Record<string, string>)['./agents'], './dist/src/agents/index.js', 'the agents are their own entry point')
  t.match(pkg.scripts.test, /^npm run lint && npm run build && tap\b/, 'npm test lints first, then builds (the start tests run the bundle)')
  t.match(pkg.scripts.lint, /^eslint\b/)
  t.notMatch(pkg.scripts.start, /tsc|npm run build/, 'npm start does not compile a built tree')
  t.ok(existsSync(join(root, 'eslint.config.js')))
  // The server's sources never import the agents (which would need LangChain).
  const sources = (directory: string): string[] => readdirSync(join(root, directory), { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.ts')).map((file) => join(directory, file))
  const server = [...sources('src'), ...sources('routes')].filter((file) => !file.startsWith('src/agents/'))
  t.ok(server.length > 50, `${server.length} server sources`)
  t.same(server.filter((file) => /from '(\.\.?\/)+(src\/)?agents\/|@langchain\//.test(read(file))), [], 'none imports src/agents or LangChain')
  const dockerfile = read('Dockerfile')
  t.match(dockerfile, /^ARG EMBEDDED=true$/m, 'the image is the embedded default')
  t.match(dockerfile, /npm ci --omit=dev \$\(\[ "\$EMBEDDED" = true \] \|\| echo --omit=optional\)/, 'EMBEDDED=false leaves the emulators out')
})
