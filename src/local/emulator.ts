// Child-process entry for one embedded emulator, so local S3's CPU-heavy storing runs off the service's event loop.
import { mkdirSync } from 'node:fs'
import S3rver from 's3rver'
import dynalite from 'dynalite'

const [kind, directory, portArg, buckets = ''] = process.argv.slice(2)
const port = Number(portArg)
mkdirSync(directory, { recursive: true })

async function start (): Promise<{ port: number, close: () => Promise<void> }> {
  if (kind === 's3') {
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

const emulator = await start()
process.send?.({ ready: true, port: emulator.port })
const stop = (): void => { emulator.close().finally(() => process.exit(0)) }
process.on('SIGTERM', stop)
process.on('SIGINT', () => {}) // the parent decides when we stop; Ctrl-C reaches the whole process group
process.on('disconnect', stop)
