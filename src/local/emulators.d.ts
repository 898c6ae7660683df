// The embedded emulators ship no type declarations; these cover what src/local uses.
declare module 's3rver' {
  interface S3rverOptions { port?: number, address?: string, silent?: boolean, directory: string, resetOnClose?: boolean, configureBuckets?: Array<{ name: string }> }
  export default class S3rver {
    constructor (options: S3rverOptions)
    run (): Promise<{ address: string, port: number }>
    close (): Promise<void>
  }
}
declare module 'dynalite' {
  import type { Server } from 'node:http'
  export default function dynalite (options?: { createTableMs?: number, deleteTableMs?: number, updateTableMs?: number, path?: string }): Server
}
