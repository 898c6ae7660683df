// The fault proxy the exactly-once tests stand on: each mode does what it says, against a trivial server that records
// what it received and what it answered.
import t, { type Test } from 'tap'
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { startFaultProxy, type Exchange, type RequestInfo } from '../support/faults/fault-proxy.js'

interface Received { method: string, path: string, bytes: number, complete: boolean, answered?: number }

/** A server that reads every body, records it, and answers per path: /echo 201 JSON, /big 200 with 100 000 bytes,
 * /chunked 200 chunked, /empty 204. Each request's record is delivered once the server is done with it. */
async function trivialServer (t: Test): Promise<{ url: string, received: Received[], nextDone: () => Promise<Received> }> {
  const received: Received[] = []
  const done: Received[] = []
  const waiting: Array<(entry: Received) => void> = []
  const finish = (entry: Received): void => {
    const waiter = waiting.shift()
    if (waiter !== undefined) waiter(entry)
    else done.push(entry)
  }
  const server = createServer((request: IncomingMessage, response) => {
    const entry: Received = { method: request.method ?? '', path: request.url ?? '', bytes: 0, complete: false }
    received.push(entry)
    request.on('data', (chunk: Buffer) => { entry.bytes += chunk.length })
    request.on('aborted', () => { finish(entry) })
    request.on('end', () => {
      entry.complete = true
      if (entry.path === '/big') {
        entry.answered = 200
        response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '100000' }).end(Buffer.alloc(100_000, 7))
      } else if (entry.path === '/chunked') {
        entry.answered = 200
        response.writeHead(200, { 'content-type': 'text/plain' })
        response.write('a'.repeat(5000))
        response.end('b'.repeat(5000))
      } else if (entry.path === '/empty') {
        entry.answered = 204
        response.writeHead(204, { 'x-marker': 'empty' }).end()
      } else {
        entry.answered = 201
        response.writeHead(201, { 'content-type': 'application/json', location: '/things/1' }).end(JSON.stringify({ received: entry.bytes }))
      }
      response.on('finish', () => { finish(entry) })
    })
  })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  t.teardown(async () => { server.closeAllConnections(); await new Promise((resolve) => server.close(resolve)) })
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    nextDone: async () => done.shift() ?? await new Promise<Received>((resolve) => { waiting.push(resolve) })
  }
}

/** One request with node:http, reporting status, the body bytes that arrived and how it ended. */
async function rawRequest (url: string, method: string, body?: Buffer): Promise<{ status?: number, bytes: number, body: Buffer, error?: string }> {
  const target = new URL(url)
  return await new Promise((resolve) => {
    const chunks: Buffer[] = []
    let status: number | undefined
    const request = httpRequest({ host: target.hostname, port: target.port, path: target.pathname, method, agent: false, headers: body === undefined ? {} : { 'content-type': 'application/octet-stream', 'content-length': String(body.length) } }, (response) => {
      status = response.statusCode
      response.on('data', (chunk: Buffer) => { chunks.push(chunk) })
      response.on('end', () => { const all = Buffer.concat(chunks); resolve({ status, bytes: all.length, body: all }) })
      response.on('error', (error) => { const all = Buffer.concat(chunks); resolve({ status, bytes: all.length, body: all, error: error.message }) })
      response.on('aborted', () => { const all = Buffer.concat(chunks); resolve({ status, bytes: all.length, body: all, error: 'aborted' }) })
    })
    request.on('error', (error) => { const all = Buffer.concat(chunks); resolve({ status, bytes: all.length, body: all, error: error.message }) })
    request.end(body)
  })
}

t.test('pass forwards both ways; the report counts it and swallows nothing', async (t) => {
  const upstream = await trivialServer(t)
  const proxy = await startFaultProxy(upstream.url, { t })
  const response = await fetch(`${proxy.url}/echo`, { method: 'POST', body: Buffer.alloc(3000, 1) })
  t.equal(response.status, 201)
  t.equal(response.headers.get('location'), '/things/1')
  t.same(await response.json(), { received: 3000 })
  const big = await fetch(`${proxy.url}/big`)
  t.equal((await big.arrayBuffer()).byteLength, 100_000)
  const chunked = await fetch(`${proxy.url}/chunked`)
  t.equal(await chunked.text(), 'a'.repeat(5000) + 'b'.repeat(5000))
  await proxy.idle()
  t.same(proxy.report(), { counts: { pass: 3, 'drop-answer': 0, 'bad-gateway-after': 0, 'cut-request': 0, 'cut-response': 0 }, swallowed: [] })
  t.equal(proxy.exchanges[0].upstreamStatus, 201)
  t.equal(proxy.exchanges[0].client, 'full-answer')
})

t.test('drop-answer: the upstream gets the whole request and answers; the client gets nothing', async (t) => {
  const upstream = await trivialServer(t)
  const proxy = await startFaultProxy(upstream.url, { t })
  proxy.next('drop-answer')
  const failure = await fetch(`${proxy.url}/echo`, { method: 'POST', body: Buffer.alloc(50_000, 2) }).then(() => undefined, (error: Error) => error)
  t.ok(failure instanceof Error, 'the client sees a network error, no answer')
  const served = await upstream.nextDone()
  t.same({ bytes: served.bytes, complete: served.complete, answered: served.answered }, { bytes: 50_000, complete: true, answered: 201 }, 'the upstream read everything and answered')
  const exchange = await proxy.exchanges[0].finished
  t.match(exchange, { mode: 'drop-answer', upstreamStatus: 201, client: 'nothing', forwardedBodyBytes: 50_000 })
  t.same(JSON.parse(String(exchange.upstreamBody)), { received: 50_000 }, 'the swallowed answer is kept')
  t.same(proxy.report().swallowed, [{ id: 1, mode: 'drop-answer', method: 'POST', path: '/echo', status: 201 }])
  const after = await fetch(`${proxy.url}/echo`, { method: 'POST', body: 'x' })
  t.equal(after.status, 201, 'the queue was one rule: the next request passes')
})

t.test('bad-gateway-after: the upstream answers, the client gets a 502', async (t) => {
  const upstream = await trivialServer(t)
  const proxy = await startFaultProxy(upstream.url, { t })
  proxy.next('bad-gateway-after')
  const response = await fetch(`${proxy.url}/echo`, { method: 'POST', body: Buffer.alloc(10_000, 3) })
  t.equal(response.status, 502)
  t.match(await response.json(), { status: 502, title: 'Bad Gateway' })
  const served = await upstream.nextDone()
  t.match(served, { bytes: 10_000, complete: true, answered: 201 })
  await proxy.idle()
  t.same(proxy.report().swallowed, [{ id: 1, mode: 'bad-gateway-after', method: 'POST', path: '/echo', status: 201 }])
})

t.test('cut-request: the upstream gets exactly N body bytes and then a closed connection; it never answers', async (t) => {
  const upstream = await trivialServer(t)
  const proxy = await startFaultProxy(upstream.url, { t })
  proxy.next({ mode: 'cut-request', requestBytes: 1000 }, 'cut-request', 'cut-request')
  const failure = await fetch(`${proxy.url}/echo`, { method: 'POST', body: Buffer.alloc(10_000, 4) }).then(() => undefined, (error: Error) => error)
  t.ok(failure instanceof Error, 'the client sees a network error')
  const served = await upstream.nextDone()
  t.same({ bytes: served.bytes, complete: served.complete, answered: served.answered }, { bytes: 1000, complete: false, answered: undefined }, 'exactly 1000 bytes, then the connection ended')
  t.match(await proxy.exchanges[0].finished, { mode: 'cut-request', forwardedBodyBytes: 1000, upstreamContacted: true, client: 'nothing' })

  const halfByDefault = await rawRequest(`${proxy.url}/echo`, 'POST', Buffer.alloc(4001, 5))
  t.ok(halfByDefault.error !== undefined && halfByDefault.status === undefined, 'no answer')
  t.match(await upstream.nextDone(), { bytes: 2000, complete: false }, 'half the declared length by default')

  const bodyless = await rawRequest(`${proxy.url}/empty`, 'DELETE')
  t.ok(bodyless.error !== undefined, 'a request without a body is cut before it is forwarded')
  await proxy.idle()
  t.match(proxy.exchanges[2], { upstreamContacted: false, forwardedBodyBytes: 0 })
  t.equal(upstream.received.length, 2, 'the upstream never saw the bodyless one')
  t.same(proxy.report().swallowed, [], 'nothing answered, so nothing swallowed')
})

t.test('cut-response: the client gets status, headers and half the body, then a closed connection', async (t) => {
  const upstream = await trivialServer(t)
  const proxy = await startFaultProxy(upstream.url, { t })
  proxy.next('cut-response', 'cut-response', 'cut-response')
  const big = await rawRequest(`${proxy.url}/big`, 'GET')
  t.equal(big.status, 200, 'the status arrived')
  t.equal(big.bytes, 50_000, 'exactly half the body arrived')
  t.ok(big.error !== undefined, 'then the connection broke')
  const viaFetch = await fetch(`${proxy.url}/chunked`)
  t.equal(viaFetch.status, 200)
  const bodyFailure = await viaFetch.text().then(() => undefined, (error: Error) => error)
  t.ok(bodyFailure instanceof Error, 'a chunked answer gets a length, so fetch sees the cut body as an error')
  const empty = await rawRequest(`${proxy.url}/empty`, 'DELETE')
  t.ok(empty.error !== undefined && empty.status === undefined, 'an answer without a body is cut inside its head')
  await proxy.idle()
  const exchanges: Exchange[] = proxy.exchanges
  t.same(exchanges.map((exchange) => exchange.upstreamStatus), [200, 200, 204], 'the upstream answered each in full')
  t.same(proxy.report().swallowed.map((entry) => entry.status), [200, 200, 204])
})

t.test('rules: a queued rule waits for the request it matches; the predicate decides the rest', async (t) => {
  const upstream = await trivialServer(t)
  const proxy = await startFaultProxy(upstream.url, { t })
  proxy.next({ mode: 'bad-gateway-after', match: (request: RequestInfo) => request.method === 'DELETE' })
  proxy.choose((request) => request.path === '/big' ? 'drop-answer' : undefined)
  t.equal((await fetch(`${proxy.url}/echo`, { method: 'POST', body: 'a' })).status, 201, 'not the DELETE: passes')
  t.equal((await fetch(`${proxy.url}/empty`, { method: 'DELETE' })).status, 502, 'the queued rule took the DELETE')
  t.equal((await fetch(`${proxy.url}/empty`, { method: 'DELETE' })).status, 204, 'and only one')
  t.ok(await fetch(`${proxy.url}/big`).then(() => false, () => true), 'the predicate drops /big')
  await proxy.idle()
  t.same(proxy.report().counts, { pass: 2, 'drop-answer': 1, 'bad-gateway-after': 1, 'cut-request': 0, 'cut-response': 0 })
  const seen = await proxy.nextExchange()
  t.equal(seen.path, '/echo', 'nextExchange walks the exchanges in order')
})
