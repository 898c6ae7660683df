#!/usr/bin/env node
// The server build: `npm run build` compiles (tsc -p tsconfig.json, incremental) and stamps dist/.build-stamp with the
// time the compile started. `npm start` (scripts/start.mjs) calls buildIfStale() first: it compiles only when a source of the build
// (src/, routes/, schemas/, tsconfig.json) is newer than the stamp, or dist has no server. A built tree then starts
// in the time it takes to read some file times, and an edited source is still compiled before the server starts.
// Without sources (the Docker image copies dist only) there is nothing to compile and nothing to check.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = new URL('..', import.meta.url).pathname
const STAMP = join(root, 'dist', '.build-stamp')
const SOURCE_DIRECTORIES = ['src', 'routes', 'schemas']
const SOURCE_FILES = ['tsconfig.json']

/** The newest modification time (ms) of the build's inputs; 0 when there are none. */
function newestSource () {
  let newest = 0
  const visit = (path) => {
    const stat = statSync(path, { throwIfNoEntry: false })
    if (stat === undefined) return
    if (stat.isDirectory()) {
      for (const entry of readdirSync(path)) visit(join(path, entry))
    } else if (/\.(ts|mts|json)$/.test(path)) {
      newest = Math.max(newest, stat.mtimeMs)
    }
  }
  for (const name of [...SOURCE_DIRECTORIES, ...SOURCE_FILES]) visit(join(root, name))
  return newest
}

function stale () {
  if (!existsSync(join(root, 'src'))) return false // a dist-only tree (the image): run what is there
  if (!existsSync(join(root, 'dist', 'src', 'server.js'))) return true
  const stamp = statSync(STAMP, { throwIfNoEntry: false })
  return stamp === undefined || newestSource() > stamp.mtimeMs
}

function compile () {
  let tsc
  try {
    tsc = join(createRequire(import.meta.url).resolve('typescript/package.json'), '..', 'bin', 'tsc')
  } catch {
    process.stderr.write('render-store: the sources are newer than dist/, but TypeScript is not installed (npm ci --omit=dev); run `npm ci` and `npm run build`\n')
    return 1
  }
  const started = new Date()
  const result = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json')], { stdio: 'inherit' })
  if (result.status !== 0) return result.status ?? 1
  // The stamp carries the compile's start time: a source saved while tsc ran is older than its output, not than this.
  writeFileSync(STAMP, `${started.toISOString()}\n`)
  utimesSync(STAMP, started, started)
  return 0
}

/** Compiles when the build is stale (see above); returns the exit status, 0 when nothing needed doing. */
export function buildIfStale () {
  return stale() ? compile() : 0
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = process.argv.includes('--if-stale') ? buildIfStale() : compile()
}
