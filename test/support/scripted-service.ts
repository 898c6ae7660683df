// A stand-in for render-store that answers scripted statuses (not an AWS fake): for retry, backoff and degradation
// tests of the client and the agents. It reads every request body whole before answering, and records it.
import { createHash } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

type Test = { teardown: (fn: () => unknown) => void }

export interface RecordedRequest {
  method: string
  path: string
  headers: IncomingMessage['headers']
  bodyBytes: number
  bodySha256: string
  body: Buffer
}

export interface ScriptedAnswer {
  status: number
  headers?: Record<string, string>
  body?: unknown
}

export type Responder = (request: RecordedRequest) => ScriptedAnswer

/** Answers like render-store on success: new render and code versions numbered from 1, scenes accepted. */
export function happyResponder (): Responder {
  let renders = 0
  let codes = 0
  return (request) => {
    if (request.method === 'POST' && request.path.endsWith('/renders')) {
      renders++
      return { status: 201, body: { version: renders, bucket: 'videos', key: `videos/p/v/v${renders}/v.mp4`, sizeBytes: request.bodyBytes, sha256: request.bodySha256, contentType: 'video/mp4', status: 'uploaded', downloadUrl: 'http://example.invalid/x', expiresAt: new Date().toISOString() } }
    }
    if (request.method === 'PUT' && request.path.includes('/scenes/')) return { status: 201, body: { key: request.path, sha256: request.bodySha256, sizeBytes: request.bodyBytes } }
    if (request.method === 'POST' && request.path.endsWith('/code')) {
      codes++
      const sent = JSON.parse(request.body.toString()) as { content: string, filename?: string }
      return { status: 201, body: { version: codes, filename: sent.filename ?? 'v.py', key: `code/p/v/v${codes}/v.py`, sha256: createHash('sha256').update(sent.content).digest('hex'), sizeBytes: sent.content.length, createdAt: new Date().toISOString() } }
    }
    return { status: 404, headers: { 'content-type': 'application/problem+json' }, body: { type: 'about:blank', title: 'Not Found', status: 404, detail: 'nothing here' } }
  }
}

export const problem = (status: number, detail: string, headers: Record<string, string> = {}): ScriptedAnswer => ({
  status, headers: { 'content-type': 'application/problem+json', ...headers }, body: { type: 'about:blank', title: 'scripted', status, detail }
})

/** Listens on loopback; `script` answers the first requests in order, then `fallback` answers the rest. */
export async function scriptedService (t: Test, script: ScriptedAnswer[] = [], fallback: Responder = happyResponder()) {
  const requests: RecordedRequest[] = []
  const queue = [...script]
  const server = createServer((incoming: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = []
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk))
    incoming.on('end', () => {
      const body = Buffer.concat(chunks)
      const request: RecordedRequest = {
        method: incoming.method ?? 'GET',
        path: (incoming.url ?? '/').split('?')[0],
        headers: incoming.headers,
        bodyBytes: body.length,
        bodySha256: createHash('sha256').update(body).digest('hex'),
        body
      }
      requests.push(request)
      const answer = queue.shift() ?? fallback(request)
      // Status 0: the request was taken but the answer is lost (connection dropped).
      if (answer.status === 0) { incoming.socket.destroy(); return }
      response.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers })
      response.end(answer.body === undefined ? '' : JSON.stringify(answer.body))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  const { port } = server.address() as AddressInfo
  return { baseUrl: `http://127.0.0.1:${port}`, requests, script: queue }
}

/** A loopback URL where nothing listens: every call is refused. */
export async function closedPortUrl (): Promise<string> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return `http://127.0.0.1:${port}`
}
