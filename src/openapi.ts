// `npm run openapi`: writes openapi.yaml from the route schemas of the app itself (never by hand).
import { writeFileSync } from 'node:fs'
import { loadConfig } from './config.js'
import { buildServer } from './app.js'

export async function generateOpenapi (): Promise<string> {
  // The document depends on the routes only: the clients are built but never called.
  const app = await buildServer({ config: loadConfig({ LOG_LEVEL: 'silent' }) })
  await app.ready()
  const yaml = app.swagger({ yaml: true })
  await app.close()
  return yaml
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const target = new URL('../../openapi.yaml', import.meta.url)
  writeFileSync(target, await generateOpenapi())
  process.stdout.write(`wrote ${target.pathname}\n`)
}
