// The set-up the direct-upload test files share: a listening service whose multipart threshold and part size are
// small (multipart runs with 5 MiB parts), MP4-looking bytes, and a JSON caller of the upload-session routes.
import { createHash, randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import { listen, startTestAws } from '../helper.js'

export const MIB = 1024 * 1024

/**
 * Multipart from 6 MiB in 5 MiB parts, at most 64 MiB. Overload shedding is off: a busy shared test machine must not
 * turn these requests into 503s.
 */
export const DIRECT_TEST_CONFIG = {
  directMultipartThreshold: 6 * MIB,
  partSize: 5 * MIB,
  maxVideoBytes: 64 * MIB,
  overload: { maxEventLoopDelayMs: 0, maxHeapBytes: 0 }
}

/** Bytes that open like an MP4 (an ftyp box), then random. */
export function fakeMp4 (size: number): Buffer {
  const bytes = randomBytes(size)
  bytes.writeUInt32BE(24, 0)
  bytes.write('ftypisom', 4, 'latin1')
  return bytes
}

export const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')

export interface ApiAnswer { status: number, json: any, headers: Headers }

/** Calls of the service's JSON routes, and the upload-session path of a video of project p1. */
export function sessionApi (baseUrl: string): { api: (method: string, path: string, body?: unknown) => Promise<ApiAnswer>, uploads: (videoId: string) => string } {
  async function api (method: string, path: string, body?: unknown): Promise<ApiAnswer> {
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body)
    })
    const text = await response.text()
    return { status: response.status, json: text === '' ? undefined : JSON.parse(text), headers: response.headers }
  }
  return { api, uploads: (videoId: string): string => `/v1/projects/p1/videos/${videoId}/uploads` }
}

/** A service on the test backend with DIRECT_TEST_CONFIG, listening, with sessionApi on its address. */
export async function listenForDirectUploads (t: Test): Promise<Awaited<ReturnType<typeof listen>> & ReturnType<typeof sessionApi>> {
  const served = await listen(t, { aws: await startTestAws(t), config: DIRECT_TEST_CONFIG })
  return { ...served, ...sessionApi(served.baseUrl) }
}
