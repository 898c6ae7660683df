// A loopback TCP proxy standing for a load balancer in front of replicas: new connections go to the current target,
// which the test switches; `cutAfter(n)` destroys every connection once n bytes went upstream (a dropped network).
import { createServer, connect, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'

export interface SwitchProxy {
  url: string
  /** bytes sent upstream since the proxy started */
  upstreamBytes: () => number
  setTarget: (baseUrl: string) => void
  /** destroys every open connection once this many more bytes went upstream; resolves when it did */
  cutAfter: (bytes: number) => Promise<void>
  close: () => Promise<void>
}

export async function startSwitchProxy (target: string): Promise<SwitchProxy> {
  let current = new URL(target)
  let sent = 0
  let cut: { at: number, done: () => void } | undefined
  const sockets = new Set<Socket>()
  const cutAll = (): void => {
    for (const socket of sockets) socket.destroy()
    sockets.clear()
    const pending = cut
    cut = undefined
    pending?.done()
  }
  const server = createServer((client) => {
    const upstream = connect(Number(current.port), current.hostname)
    sockets.add(client)
    sockets.add(upstream)
    client.on('data', (chunk: Buffer) => {
      if (cut !== undefined && sent + chunk.length >= cut.at) {
        upstream.write(chunk.subarray(0, Math.max(0, cut.at - sent)))
        sent = cut.at
        cutAll()
        return
      }
      sent += chunk.length
      if (!upstream.write(chunk)) {
        client.pause()
        upstream.once('drain', () => client.resume())
      }
    })
    upstream.on('data', (chunk: Buffer) => { if (!client.write(chunk)) { upstream.pause(); client.once('drain', () => upstream.resume()) } })
    const end = (): void => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream) }
    client.on('close', end)
    upstream.on('close', end)
    client.on('error', end)
    upstream.on('error', end)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    upstreamBytes: () => sent,
    setTarget: (baseUrl) => { current = new URL(baseUrl) },
    cutAfter: async (bytes) => await new Promise<void>((resolve) => { cut = { at: sent + bytes, done: resolve } }),
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => { resolve() }))
    }
  }
}
