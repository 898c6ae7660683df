#!/usr/bin/env node
// `npm start`: compile only if a source is newer than the last build (scripts/build.mjs), then run the server in this
// same process (one Node start, not two; `exec` in the npm script makes it the process that receives SIGTERM).
import module from 'node:module'
import { buildIfStale } from './build.mjs'

const status = buildIfStale()
if (status !== 0) process.exit(status)
// Node 22.1 and later keep V8's compiled code of the modules between starts (in the system's temporary directory);
// Node 20 has no such cache and starts without it.
module.enableCompileCache?.()
await import('../dist/bundle/server.js')
