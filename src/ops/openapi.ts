// `npm run openapi`: writes openapi.yaml from the route schemas of the app itself (never by hand).
import { writeFileSync } from 'node:fs'
import { Document, isScalar, visit } from 'yaml'
import { loadConfig } from '../config.js'
import { buildServer } from '../app.js'

export async function generateOpenapi (): Promise<string> {
  // The document depends on the routes only: the clients are built but never called.
  const app = await buildServer({ config: loadConfig({ LOG_LEVEL: 'silent' }) })
  await app.ready()
  const document = app.swagger()
  await app.close()
  return compactYaml(document)
}

/**
 * The committed file in a compact layout that reads like the document it is (the same data the service serves at
 * /openapi.yaml): a `$ref` on one line, short lists of scalars (tags, required, enum) inline, no folded lines.
 * `yaml` is a dev dependency: this runs for `npm run openapi` and the tests, never in the service.
 */
export function compactYaml (data: unknown): string {
  const document = new Document(data)
  visit(document, {
    Map (_key, node) {
      const [only] = node.items
      if (node.items.length === 1 && isScalar(only.key) && only.key.value === '$ref') node.flow = true
    },
    Seq (_key, node) {
      if (node.items.every((item) => isScalar(item))) node.flow = true
    }
  })
  return document.toString({ lineWidth: 0 })
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const target = new URL('../../../openapi.yaml', import.meta.url)
  writeFileSync(target, await generateOpenapi())
  process.stdout.write(`wrote ${target.pathname}\n`)
}
