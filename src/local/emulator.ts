// Child-process entry for one embedded emulator, so local S3's CPU-heavy storing runs off the service's event loop.
// Protocol with the parent (src/local/embedded.ts), over IPC: `{ starting: true }` every second while it loads and
// binds (a busy machine is slow, not stuck), then `{ ready: true, port }`, or `{ error }` before it exits 1.
import { mkdirSync } from 'node:fs'

const [kind, directory, portArg, buckets = ''] = process.argv.slice(2)
const port = Number(portArg)

const heartbeat = setInterval(() => { process.send?.({ starting: true }) }, 1000)
process.send?.({ starting: true })
const orphaned = (): void => { process.exit(0) } // the parent went away while this was starting
process.once('disconnect', orphaned)

async function start (): Promise<{ port: number, close: () => Promise<void> }> {
  mkdirSync(directory, { recursive: true })
  if (kind === 's3') {
    const { default: S3rver } = await import('s3rver')
    const server = new S3rver({
      port,
      address: '127.0.0.1',
      silent: true,
      directory,
      configureBuckets: buckets.split(',').filter(Boolean).map((name) => ({ name }))
    })
    const address = await server.run()
    return { port: address.port, close: async () => { await server.close() } }
  }
  if (kind !== 'dynamodb') throw new Error(`unknown emulator ${JSON.stringify(kind)}`)
  const { default: dynalite } = await import('dynalite')
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0, path: directory })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => { resolve() })
  })
  const address = server.address()
  return {
    port: typeof address === 'object' && address !== null ? address.port : port,
    close: async () => { await new Promise((resolve) => server.close(resolve)) }
  }
}

const emulator = await start().catch((error: unknown) => {
  // The parent names the emulator and its port; this says why (EADDRINUSE, EACCES, a corrupt data directory, ...).
  const message = error instanceof Error ? error.message : String(error)
  if (process.send === undefined) {
    process.stderr.write(`embedded ${kind}: ${message}\n`)
    process.exit(1)
  }
  process.send({ error: message }, () => process.exit(1))
  return new Promise<never>(() => {})
})
clearInterval(heartbeat)
process.off('disconnect', orphaned)
process.send?.({ ready: true, port: emulator.port })
const stop = (): void => { emulator.close().finally(() => process.exit(0)) }
process.on('SIGTERM', stop)
process.on('SIGINT', () => {}) // the parent decides when we stop; Ctrl-C reaches the whole process group
process.on('disconnect', stop)
