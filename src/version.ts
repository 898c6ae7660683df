import { readFileSync } from 'node:fs'

/** The package version, read once; dist/src/version.js and src/version.ts both sit two levels under the root or one. */
function findPackageJson (): { version: string } {
  for (const relative of ['../package.json', '../../package.json']) {
    try {
      return JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as { version: string }
    } catch {}
  }
  return { version: '0.0.0' }
}

export const SERVICE_VERSION = findPackageJson().version
