#!/usr/bin/env node
// `npm start`: compile only if a source is newer than the last build (scripts/build.mjs), then run the server in this
// same process (one Node start, not two; `exec` in the npm script makes it the process that receives SIGTERM).
import { buildIfStale } from './build.mjs'

const status = buildIfStale()
if (status !== 0) process.exit(status)
await import('../dist/src/server.js')
