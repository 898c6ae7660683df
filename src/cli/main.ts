#!/usr/bin/env node
// `render-store`: the command line for the service, a thin wrapper over the typed HTTP client in src/client/.
import { readFile } from 'node:fs/promises'
import { basename, extname } from 'node:path'
import { parseArgs } from 'node:util'
import { RenderStoreClient, RenderStoreError } from '../client/index.js'
import { createProgressBar } from './progress-bar.js'

const USAGE = `Usage: render-store <command> [options]

Commands:
  upload <projectId> <videoId> <file>        upload a render (progress on stderr); prints its download URL
                                             [--direct] [--resume] [--concurrency N] [--session-file PATH]
  code push <projectId> <videoId> <file>     store a new code version [--base N] [--message TEXT] [--filename NAME]
  code get <projectId> <videoId>             print a code version's content [--version N] (default: latest)
  status <projectId> <videoId>               video, upload and code status as JSON
  health                                     liveness as JSON [--ready for S3 and DynamoDB readiness]

Options:
  --url URL              service base URL (env RENDER_STORE_URL, default http://127.0.0.1:3000)
  --api-key KEY          API key (env RENDER_STORE_API_KEY)
  --content-type T       upload content type (default from the file extension)
  --idempotency-key K    upload, code push: this write's key (default: a new one). A write that fails without a
                         clear answer prints its key: run the same command with it and the write is done once
  --direct               upload straight to S3 (presigned URLs; large files in parallel parts) instead of through
                         the service
  --resume               upload straight to S3 and resume this file's saved session if a run was cut (the parts
                         S3 already holds are not sent again); the session file is removed once the upload completed
  --concurrency N        direct uploads: parts sent at once (default 4)
  --session-file PATH    direct uploads: where the session is saved (default ~/.cache/render-store/uploads/...)
  -h, --help             this help
`

const CONTENT_TYPES: Record<string, string> = { '.mp4': 'video/mp4', '.m4v': 'video/mp4', '.mov': 'video/quicktime', '.webm': 'video/webm', '.mkv': 'video/x-matroska' }

class UsageError extends Error {}

function positiveInteger (value: string | undefined, option: string): number | undefined {
  if (value === undefined) return undefined
  if (!/^[1-9][0-9]{0,8}$/.test(value)) throw new UsageError(`${option} must be a positive integer, not ${JSON.stringify(value)}`)
  return Number(value)
}

function need (positionals: string[], count: number, usage: string): string[] {
  if (positionals.length !== count) throw new UsageError(`usage: render-store ${usage}`)
  return positionals
}

function printJson (value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`)
}

async function run (argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      'api-key': { type: 'string' },
      'content-type': { type: 'string' },
      base: { type: 'string' },
      version: { type: 'string' },
      message: { type: 'string' },
      filename: { type: 'string' },
      'idempotency-key': { type: 'string' },
      direct: { type: 'boolean' },
      resume: { type: 'boolean' },
      concurrency: { type: 'string' },
      'session-file': { type: 'string' },
      ready: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' }
    }
  })
  const [command, ...rest] = positionals
  if (values.help === true || command === undefined) {
    process.stdout.write(USAGE)
    if (command === undefined && values.help !== true) process.exitCode = 2
    return
  }
  const client = new RenderStoreClient({
    baseUrl: values.url ?? process.env.RENDER_STORE_URL ?? 'http://127.0.0.1:3000',
    apiKey: values['api-key'] ?? (process.env.RENDER_STORE_API_KEY || undefined)
  })

  const idempotencyKey = values['idempotency-key']
  if (idempotencyKey !== undefined && !/^[\x21-\x7e]{1,255}$/.test(idempotencyKey)) throw new UsageError('--idempotency-key must be 1-255 visible ASCII characters')

  if (command === 'upload') {
    const [projectId, videoId, file] = need(rest, 3, 'upload <projectId> <videoId> <file>')
    const contentType = values['content-type'] ?? CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream'
    const bar = createProgressBar(process.stderr, basename(file))
    const concurrency = positiveInteger(values.concurrency, '--concurrency')
    const direct = values.direct === true || values.resume === true || values['session-file'] !== undefined || concurrency !== undefined
    try {
      const render = direct
        ? await client.uploadRenderDirect(projectId, videoId, file, {
          contentType,
          onProgress: bar.update,
          idempotencyKey,
          concurrency,
          resume: values.resume === true,
          sessionFile: values['session-file'],
          onSession: (info) => {
            if (info.resumed) process.stderr.write(`resuming upload ${info.uploadId}: ${info.partsStored} of ${info.partCount} parts already stored\n`)
            else if (info.sessionFile !== undefined) process.stderr.write(`upload ${info.uploadId}: ${info.partCount} parts; session saved to ${info.sessionFile} (--resume continues it if this run is cut)\n`)
          },
          onWarning: ({ message, error }) => { process.stderr.write(`render-store: warning: ${message} (${(error as Error).message})\n`) }
        })
        : await client.uploadRender(projectId, videoId, file, { contentType, onProgress: bar.update, idempotencyKey })
      bar.done()
      process.stderr.write(`render version ${render.version}: ${render.sizeBytes} bytes, sha256 ${render.sha256}${render.replayed ? ' (already uploaded with this key)' : ''}\n`)
      process.stdout.write(`${render.downloadUrl}\n`)
    } finally {
      bar.done()
    }
  } else if (command === 'code' && rest[0] === 'push') {
    const [projectId, videoId, file] = need(rest.slice(1), 3, 'code push <projectId> <videoId> <file> [--base N]')
    const baseVersion = positiveInteger(values.base, '--base')
    const content = await readFile(file, 'utf8')
    const code = await client.createCodeVersion(projectId, videoId, { content, filename: values.filename ?? basename(file), message: values.message, baseVersion }, { idempotencyKey })
    const replayed = code.replayed ? ' (already stored with this key)' : ''
    process.stderr.write(code.created ? `stored code version ${code.version}${replayed}\n` : `unchanged: the latest version ${code.version} has this content${replayed}\n`)
    printJson(code)
  } else if (command === 'code' && rest[0] === 'get') {
    const [projectId, videoId] = need(rest.slice(1), 2, 'code get <projectId> <videoId> [--version N]')
    process.stdout.write(await client.getCodeText(projectId, videoId, positiveInteger(values.version, '--version') ?? 'latest'))
  } else if (command === 'status') {
    const [projectId, videoId] = need(rest, 2, 'status <projectId> <videoId>')
    printJson(await client.status(projectId, videoId))
  } else if (command === 'health') {
    need(rest, 0, 'health [--ready]')
    if (values.ready === true) {
      const readiness = await client.ready()
      printJson(readiness)
      if (readiness.overallStatus === 'unhealthy') process.exitCode = 1
    } else {
      printJson(await client.health())
    }
  } else {
    throw new UsageError(`unknown command ${JSON.stringify(positionals.join(' '))}\n\n${USAGE}`)
  }
}

try {
  await run(process.argv.slice(2))
} catch (error) {
  if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true) {
    process.stderr.write(`render-store: ${(error as Error).message}\n`)
    process.exitCode = 2
  } else if (error instanceof RenderStoreError) {
    const latest = error.problem?.latestVersion
    // Say the latest version only where the message does not already (a 409's detail names it).
    const named = latest !== undefined && new RegExp(`\\b(latest|current)( version)? is ${String(latest)}\\b`).test(error.message)
    process.stderr.write(`render-store: ${error.message}${latest !== undefined && !named ? ` (latest version is ${latest})` : ''}\n`)
    // No clear answer to a write: it may have been done. The same key makes a second try safe.
    if (error.idempotencyKey !== undefined && error.retryable) {
      process.stderr.write(`render-store: the write may have been done; run the same command with --idempotency-key ${error.idempotencyKey} to finish it without storing twice\n`)
    }
    process.exitCode = 1
  } else {
    process.stderr.write(`render-store: ${(error as Error).message}\n`)
    process.exitCode = 1
  }
}
