// A loopback HTTP proxy in front of a listening service that breaks chosen exchanges the way a network or a load
// balancer does, so a test can tell "the server did it but the client never heard" from "the server never got it".
//
//   pass               forward both ways, streamed
//   drop-answer        forward the whole request, wait for the whole upstream answer, then destroy the client socket
//                      without sending a byte
//   bad-gateway-after  the same, but answer the client 502 (as a load balancer whose upstream connection broke late)
//   cut-request        forward only the first N bytes of the request body, then destroy both sides (the upstream
//                      never gets the whole request; a request without a body is not forwarded at all)
//   cut-response       wait for the whole upstream answer, forward its status, headers and half of its body (half of
//                      the head when the body is empty), then destroy the client socket
//
// The mode of each request comes from a queue (first queued rule whose `match` accepts the request), else from the
// `choose` predicate, else `pass`. Every exchange is recorded, with what the upstream answered and what the client got.
import { createServer, request as httpRequest, STATUS_CODES, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

export type FaultMode = 'pass' | 'drop-answer' | 'bad-gateway-after' | 'cut-request' | 'cut-response'
/** The four faults, in the order the tests walk them. */
export const FAULT_MODES = ['drop-answer', 'bad-gateway-after', 'cut-request', 'cut-response'] as const

export type Chooser = (request: RequestInfo) => FaultMode | FaultRule | undefined

export interface RequestInfo { method: string, path: string, headers: IncomingHttpHeaders }

export interface FaultRule {
  mode: FaultMode
  /** cut-request: body bytes forwarded before the cut (default half the declared length; always fewer than all) */
  requestBytes?: number
  /** queued rules only: the request this rule is for (default any); requests it refuses pass it by */
  match?: (request: RequestInfo) => boolean
}

export interface Exchange {
  id: number
  mode: FaultMode
  method: string
  path: string
  /** body bytes read from the client */
  requestBodyBytes: number
  /** body bytes written upstream */
  forwardedBodyBytes: number
  /** false when nothing was sent upstream (cut-request of a request without a body) */
  upstreamContacted: boolean
  upstreamStatus?: number
  upstreamHeaders?: IncomingHttpHeaders
  /** the whole upstream body (every mode but pass, where it is kept up to 1 MiB) */
  upstreamBody?: Buffer
  /** what reached the client */
  client: 'pending' | 'full-answer' | 'nothing' | 'bad-gateway' | 'partial-answer'
  /** cut-response: bytes of the answer written to the client (head included) */
  clientBytes?: number
  error?: string
  /** resolves when the proxy is done with this exchange (both sides finished or destroyed) */
  finished: Promise<Exchange>
}

export interface FaultReport {
  counts: Record<FaultMode, number>
  /** answers the upstream gave that the client never got whole */
  swallowed: Array<{ id: number, mode: FaultMode, method: string, path: string, status: number }>
}

export interface FaultProxy {
  /** base URL of the proxy, e.g. http://127.0.0.1:41234 */
  url: string
  /** queues rules (or bare modes), consumed one per matching request, in order */
  next: (...rules: Array<FaultMode | FaultRule>) => void
  /** the fallback when the queue has no rule for a request (default: pass) */
  choose: (fn?: Chooser) => void
  /** every exchange so far, oldest first */
  exchanges: Exchange[]
  report: () => FaultReport
  /** resolves once every exchange started so far is finished */
  idle: () => Promise<void>
  /** resolves with the next exchange to start (or the one already started at that position) */
  nextExchange: () => Promise<Exchange>
  close: () => Promise<void>
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer'])
const KEEP_MAX = 1024 * 1024

/** Raw header pairs minus hop-by-hop ones, as [name, value] tuples in the upstream's order and spelling. */
function endToEnd (rawHeaders: string[]): Array<[string, string]> {
  const pairs: Array<[string, string]> = []
  for (let index = 0; index < rawHeaders.length; index += 2) {
    if (!HOP_BY_HOP.has(rawHeaders[index].toLowerCase())) pairs.push([rawHeaders[index], rawHeaders[index + 1]])
  }
  return pairs
}

/** The response head as bytes, with a content-length (so a cut body is detectably short) and connection: close. */
function rawHead (status: number, rawHeaders: string[], bodyLength: number): Buffer {
  const pairs = endToEnd(rawHeaders)
  if (!pairs.some(([name]) => name.toLowerCase() === 'content-length') && status !== 204 && status !== 304) pairs.push(['content-length', String(bodyLength)])
  pairs.push(['connection', 'close'])
  const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}`, ...pairs.map(([name, value]) => `${name}: ${value}`)]
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1')
}

const hasBody = (headers: IncomingHttpHeaders): boolean =>
  headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && Number(headers['content-length']) > 0)

/** Starts a proxy on 127.0.0.1 in front of `target` (a base URL). Pass `t` to close it at teardown. */
export async function startFaultProxy (target: string, options: { t?: { teardown: (fn: () => unknown) => void } } = {}): Promise<FaultProxy> {
  const upstream = new URL(target)
  const queue: FaultRule[] = []
  let fallback: Chooser | undefined
  const exchanges: Exchange[] = []
  const pending = new Set<Promise<unknown>>()
  const waiters: Array<{ index: number, resolve: (exchange: Exchange) => void }> = []
  const sockets = new Set<Socket>()
  let nextWaitIndex = 0

  const ruleFor = (info: RequestInfo): FaultRule => {
    const index = queue.findIndex((rule) => rule.match === undefined || rule.match(info))
    if (index >= 0) return queue.splice(index, 1)[0]
    const chosen = fallback?.(info)
    if (chosen === undefined) return { mode: 'pass' }
    return typeof chosen === 'string' ? { mode: chosen } : chosen
  }

  function forward (request: IncomingMessage): ReturnType<typeof httpRequest> {
    const headers: IncomingHttpHeaders = { ...request.headers, host: upstream.host }
    delete headers.connection
    delete headers['keep-alive']
    delete headers['proxy-connection']
    // A fresh connection per exchange: a destroyed upstream socket never poisons the next request.
    return httpRequest({ host: upstream.hostname, port: upstream.port, method: request.method, path: request.url, headers, agent: false })
  }

  /** Runs one exchange; resolves when the proxy is done with both sides. */
  async function handle (request: IncomingMessage, response: ServerResponse, exchange: Exchange, rule: FaultRule): Promise<void> {
    const clientSocket = request.socket
    const destroyClient = (): void => { clientSocket.destroy() }

    if (rule.mode === 'cut-request') {
      const declared = request.headers['content-length'] === undefined ? undefined : Number(request.headers['content-length'])
      if (!hasBody(request.headers)) {
        exchange.client = 'nothing'
        destroyClient()
        return
      }
      let limit = rule.requestBytes ?? (declared !== undefined ? Math.floor(declared / 2) : 64 * 1024)
      if (declared !== undefined) limit = Math.max(0, Math.min(limit, declared - 1))
      const upstreamRequest = forward(request)
      exchange.upstreamContacted = true
      await new Promise<void>((resolve) => {
        let cut = false
        // Settles once the last forwarded bytes were handed to the upstream socket (or that write failed).
        let lastWrite: Promise<void> = Promise.resolve()
        const cutNow = (): void => {
          if (cut) return
          cut = true
          request.removeListener('data', onData)
          request.pause()
          // The upstream gets every byte forwarded so far, then the cut.
          void lastWrite.then(() => {
            setImmediate(() => {
              upstreamRequest.destroy()
              exchange.client = 'nothing'
              destroyClient()
              resolve()
            })
          })
        }
        const onData = (chunk: Buffer): void => {
          exchange.requestBodyBytes += chunk.length
          const take = Math.min(chunk.length, limit - exchange.forwardedBodyBytes)
          if (take > 0) {
            lastWrite = new Promise<void>((resolve) => { upstreamRequest.write(chunk.subarray(0, take), () => { resolve() }) })
            exchange.forwardedBodyBytes += take
          }
          if (exchange.forwardedBodyBytes >= limit) cutNow()
        }
        upstreamRequest.on('response', (answer) => {
          // An early answer (the upstream refused before reading everything) is swallowed too.
          exchange.upstreamStatus = answer.statusCode
          exchange.upstreamHeaders = answer.headers
          answer.resume()
        })
        upstreamRequest.on('error', (error) => { exchange.error ??= error.message; cutNow() })
        request.on('error', () => { cutNow() })
        request.on('aborted', () => { cutNow() })
        // A body shorter than the limit (a chunked one) is cut at its end: the upstream never gets its terminator.
        request.on('end', () => { cutNow() })
        if (limit === 0) {
          upstreamRequest.flushHeaders()
          upstreamRequest.once('socket', (socket) => {
            const go = (): void => { setTimeout(cutNow, 20) }
            if (socket.connecting) socket.once('connect', go)
            else go()
          })
        } else {
          request.on('data', onData)
        }
      })
      return
    }

    const upstreamRequest = forward(request)
    exchange.upstreamContacted = true
    request.on('data', (chunk: Buffer) => {
      exchange.requestBodyBytes += chunk.length
      exchange.forwardedBodyBytes += chunk.length
    })
    request.pipe(upstreamRequest)
    request.on('aborted', () => { upstreamRequest.destroy() })

    if (rule.mode === 'pass') {
      await new Promise<void>((resolve) => {
        let answerComplete = false
        // 'close' comes once the answer is sent, or when the client goes first: then the upstream side goes too.
        response.on('close', () => {
          if (!answerComplete) upstreamRequest.destroy()
          resolve()
        })
        upstreamRequest.on('response', (answer) => {
          exchange.upstreamStatus = answer.statusCode
          exchange.upstreamHeaders = answer.headers
          const kept: Buffer[] = []
          let keptBytes = 0
          answer.on('data', (chunk: Buffer) => { if (keptBytes < KEEP_MAX) { kept.push(chunk); keptBytes += chunk.length } })
          answer.on('end', () => { answerComplete = true; exchange.upstreamBody = Buffer.concat(kept); exchange.client = 'full-answer' })
          answer.on('error', () => { destroyClient() })
          if (response.destroyed) { answer.destroy(); return }
          response.writeHead(answer.statusCode ?? 502, endToEnd(answer.rawHeaders).flat())
          answer.pipe(response)
        })
        upstreamRequest.on('error', (error) => {
          exchange.error = error.message
          if (response.destroyed) return
          if (!response.headersSent) {
            exchange.client = 'bad-gateway'
            response.writeHead(502, { 'content-type': 'text/plain', connection: 'close' }).end(`fault proxy: upstream failed: ${error.message}`)
          } else {
            destroyClient()
          }
        })
      })
      return
    }

    // drop-answer, bad-gateway-after, cut-response: the whole upstream answer first, then the fault.
    const answered = await new Promise<{ status: number, rawHeaders: string[], body: Buffer } | undefined>((resolve) => {
      upstreamRequest.on('response', (answer) => {
        exchange.upstreamStatus = answer.statusCode
        exchange.upstreamHeaders = answer.headers
        const chunks: Buffer[] = []
        answer.on('data', (chunk: Buffer) => { chunks.push(chunk) })
        answer.on('end', () => {
          exchange.upstreamBody = Buffer.concat(chunks)
          resolve({ status: answer.statusCode ?? 0, rawHeaders: answer.rawHeaders, body: exchange.upstreamBody })
        })
        answer.on('error', (error) => { exchange.error = error.message; resolve(undefined) })
      })
      upstreamRequest.on('error', (error) => { exchange.error ??= error.message; resolve(undefined) })
    })
    if (answered === undefined) {
      // The upstream itself broke: the client learns nothing either way.
      exchange.client = 'nothing'
      destroyClient()
      return
    }
    if (rule.mode === 'drop-answer') {
      exchange.client = 'nothing'
      destroyClient()
      return
    }
    if (rule.mode === 'bad-gateway-after') {
      exchange.client = 'bad-gateway'
      await new Promise<void>((resolve) => {
        response.on('close', () => { resolve() })
        response.writeHead(502, { 'content-type': 'application/problem+json', connection: 'close' })
          .end(JSON.stringify({ type: 'about:blank', title: 'Bad Gateway', status: 502, detail: 'fault proxy: the upstream connection broke' }))
      })
      return
    }
    // cut-response
    const head = rawHead(answered.status, answered.rawHeaders, answered.body.length)
    const bytes = answered.body.length > 0
      ? Buffer.concat([head, answered.body.subarray(0, Math.floor(answered.body.length / 2))])
      : head.subarray(0, Math.floor(head.length / 2))
    exchange.client = 'partial-answer'
    exchange.clientBytes = bytes.length
    await new Promise<void>((resolve) => {
      clientSocket.write(bytes, () => { setImmediate(() => { destroyClient(); resolve() }) })
      clientSocket.once('close', () => { resolve() })
    })
  }

  const server = createServer((request, response) => {
    const info: RequestInfo = { method: request.method ?? 'GET', path: request.url ?? '/', headers: request.headers }
    const rule = ruleFor(info)
    let settle: (exchange: Exchange) => void = () => {}
    const exchange: Exchange = {
      id: exchanges.length + 1,
      mode: rule.mode,
      method: info.method,
      path: info.path,
      requestBodyBytes: 0,
      forwardedBodyBytes: 0,
      upstreamContacted: false,
      client: 'pending',
      finished: new Promise<Exchange>((resolve) => { settle = resolve })
    }
    exchanges.push(exchange)
    for (const waiter of waiters.filter((entry) => entry.index === exchanges.length - 1)) {
      waiters.splice(waiters.indexOf(waiter), 1)
      waiter.resolve(exchange)
    }
    const running = handle(request, response, exchange, rule)
      .catch((error: unknown) => { exchange.error = (error as Error).message; request.socket.destroy() })
      .finally(() => { pending.delete(running); settle(exchange) })
    pending.add(running)
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => { sockets.delete(socket) })
  })
  server.on('clientError', (_error, socket) => { socket.destroy() })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  const { port } = server.address() as AddressInfo

  const proxy: FaultProxy = {
    url: `http://127.0.0.1:${port}`,
    next (...rules) {
      for (const rule of rules) queue.push(typeof rule === 'string' ? { mode: rule } : rule)
    },
    choose (fn) { fallback = fn },
    exchanges,
    report () {
      const counts: Record<FaultMode, number> = { pass: 0, 'drop-answer': 0, 'bad-gateway-after': 0, 'cut-request': 0, 'cut-response': 0 }
      for (const exchange of exchanges) counts[exchange.mode]++
      const swallowed = exchanges
        .filter((exchange) => exchange.upstreamStatus !== undefined && exchange.client !== 'full-answer' && exchange.client !== 'pending')
        .map(({ id, mode, method, path, upstreamStatus }) => ({ id, mode, method, path, status: upstreamStatus as number }))
      return { counts, swallowed }
    },
    async idle () {
      while (pending.size > 0) await Promise.allSettled([...pending])
    },
    async nextExchange () {
      const index = nextWaitIndex++
      if (index < exchanges.length) return exchanges[index]
      return await new Promise<Exchange>((resolve) => { waiters.push({ index, resolve }) })
    },
    async close () {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
  options.t?.teardown(async () => { await proxy.close() })
  return proxy
}
