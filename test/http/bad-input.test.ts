// Bad input of every kind: each answer is a 4xx problem+json (never a 5xx), and neither bucket nor the table changes.
import t from 'tap'
import { ListObjectsV2Command } from '@aws-sdk/client-s3'
import { ScanCommand } from '@aws-sdk/lib-dynamodb'
import type { InjectOptions } from 'fastify'
import { createAwsClients, type AwsClients } from '../../src/aws/clients.js'
import type { Config } from '../../src/config.js'
import { build } from '../helper.js'
import { mp4Bytes } from '../support/render-fixtures.js'

const base = '/v1/projects/p1/videos/v1'
const long = 'a'.repeat(129)
const json = { 'content-type': 'application/json' }

function multipart (boundary: string, parts: Array<{ name: string, filename?: string, type?: string, body: string | Buffer }>, closing = true): Buffer {
  const chunks: Buffer[] = []
  for (const part of parts) {
    const disposition = `form-data; name="${part.name}"${part.filename !== undefined ? `; filename="${part.filename}"` : ''}`
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}\r\n${part.type !== undefined ? `Content-Type: ${part.type}\r\n` : ''}\r\n`))
    chunks.push(Buffer.isBuffer(part.body) ? part.body : Buffer.from(part.body))
    chunks.push(Buffer.from('\r\n'))
  }
  if (closing) chunks.push(Buffer.from(`--${boundary}--\r\n`))
  return Buffer.concat(chunks)
}
const form = (boundary = 'XyZ') => ({ 'content-type': `multipart/form-data; boundary=${boundary}` })
const video = mp4Bytes(64 * 1024)

const CASES: Array<[string, InjectOptions]> = [
  // ids
  ['path traversal ../ in the URL', { method: 'GET', url: '/v1/projects/../videos/v1/code' }],
  ['encoded traversal %2e%2e as project', { method: 'GET', url: '/v1/projects/%2e%2e/videos/v1/code' }],
  ['encoded ../ inside a video id', { method: 'POST', url: '/v1/projects/p1/videos/%2e%2e%2fetc/code', headers: json, payload: { content: 'x' } }],
  ['backslash in an id', { method: 'PUT', url: '/v1/projects/p1/videos/a%5Cb', headers: json, payload: {} }],
  ['unicode in an id', { method: 'POST', url: '/v1/projects/p%C3%A9/videos/v1/code', headers: json, payload: { content: 'x' } }],
  ['NUL in an id', { method: 'POST', url: '/v1/projects/p1/videos/v%001/code', headers: json, payload: { content: 'x' } }],
  ['space in an id', { method: 'PUT', url: '/v1/projects/p1/videos/v%201', headers: json, payload: {} }],
  ['leading dash id', { method: 'PUT', url: '/v1/projects/p1/videos/-v1', headers: json, payload: {} }],
  ['129-character project id', { method: 'POST', url: `/v1/projects/${long}/videos/v1/code`, headers: json, payload: { content: 'x' } }],
  ['129-character video id', { method: 'POST', url: `/v1/projects/p1/videos/${long}/renders`, headers: { 'content-type': 'video/mp4' }, payload: video }],
  // JSON bodies
  ['invalid JSON', { method: 'POST', url: `${base}/code`, headers: json, payload: '{"content": "x",' }],
  ['JSON that is not an object', { method: 'POST', url: `${base}/code`, headers: json, payload: '"just a string"' }],
  ['unknown field', { method: 'POST', url: `${base}/code`, headers: json, payload: { content: 'x', owner: 'mallory' } }],
  ['unknown field on a video', { method: 'PUT', url: base, headers: json, payload: { title: 't', admin: true } }],
  ['missing content', { method: 'POST', url: `${base}/code`, headers: json, payload: { filename: 'a.py' } }],
  ['filename with a path', { method: 'POST', url: `${base}/code`, headers: json, payload: { content: 'x', filename: '../../etc/passwd' } }],
  ['huge JSON', { method: 'POST', url: `${base}/code`, headers: json, payload: JSON.stringify({ content: 'x'.repeat(6 * 1024 * 1024) }) }],
  ['baseVersion absurd', { method: 'POST', url: `${base}/code`, headers: json, payload: { content: 'x', baseVersion: -5 } }],
  // content types and encodings
  ['code as XML', { method: 'POST', url: `${base}/code`, headers: { 'content-type': 'application/xml' }, payload: '<code/>' }],
  ['non-UTF-8 code', { method: 'POST', url: `${base}/code`, headers: { 'content-type': 'text/plain' }, payload: Buffer.from([0x70, 0x72, 0xff, 0xfe, 0x0a]) }],
  ['code over the maximum', { method: 'POST', url: `${base}/code`, headers: { 'content-type': 'text/plain' }, payload: Buffer.alloc(1024 * 1024 + 1, 0x61) }],
  ['render as text/plain', { method: 'POST', url: `${base}/renders`, headers: { 'content-type': 'text/plain' }, payload: 'not a video' }],
  ['render as JSON', { method: 'POST', url: `${base}/renders`, headers: json, payload: { file: 'x' } }],
  ['render bytes that are not a video', { method: 'POST', url: `${base}/renders`, headers: { 'content-type': 'video/mp4' }, payload: Buffer.from('#!/bin/sh\nrm -rf /\n'.repeat(200)) }],
  ['empty render body', { method: 'POST', url: `${base}/renders`, headers: { 'content-type': 'video/mp4' }, payload: Buffer.alloc(0) }],
  // multipart
  ['multipart without a boundary', { method: 'POST', url: `${base}/renders`, headers: { 'content-type': 'multipart/form-data' }, payload: 'x' }],
  ['truncated multipart', { method: 'POST', url: `${base}/renders`, headers: form(), payload: multipart('XyZ', [{ name: 'file', filename: 'a.mp4', type: 'video/mp4', body: video }], false).subarray(0, 4096) }],
  ['multipart with the wrong boundary', { method: 'POST', url: `${base}/renders`, headers: form('other'), payload: multipart('XyZ', [{ name: 'file', filename: 'a.mp4', type: 'video/mp4', body: video }]) }],
  ['multipart with no file part', { method: 'POST', url: `${base}/renders`, headers: form(), payload: multipart('XyZ', [{ name: 'title', body: 'only fields' }]) }],
  ['multipart file that is not a video', { method: 'POST', url: `${base}/renders`, headers: form(), payload: multipart('XyZ', [{ name: 'file', filename: 'a.mp4', type: 'video/mp4', body: 'plain text pretending' }]) }],
  ['multipart with malformed metadata JSON', { method: 'POST', url: `${base}/renders`, headers: form(), payload: multipart('XyZ', [{ name: 'metadata', body: '{oops' }, { name: 'file', filename: 'a.mp4', type: 'video/mp4', body: video }]) }],
  // versions
  ['version 0', { method: 'GET', url: `${base}/code/versions/0` }],
  ['negative version', { method: 'GET', url: `${base}/code/versions/-1` }],
  ['exponent version', { method: 'GET', url: `${base}/code/versions/1e9` }],
  ['version beyond 999999999', { method: 'GET', url: `${base}/code/versions/99999999999` }],
  ['version with letters', { method: 'GET', url: `${base}/renders/abc` }],
  ['unknown version', { method: 'GET', url: `${base}/code/versions/999999999` }],
  ['diff from an absurd version', { method: 'GET', url: `${base}/code/versions/latest/diff?from=-3` }],
  ['scene number absurd', { method: 'PUT', url: `${base}/renders/1/scenes/0`, headers: { 'content-type': 'video/mp4' }, payload: video }],
  ['lock with an unknown mode', { method: 'PUT', url: `${base}/code/versions/1/lock`, headers: json, payload: { mode: 'FOREVER', retainUntil: '2030-01-01T00:00:00Z' } }],
  ['list limit too large', { method: 'GET', url: `${base}/code/versions?limit=100000` }],
  ['forged list cursor', { method: 'GET', url: `${base}/renders?cursor=${Buffer.from('{"sk":"VIDEO"}').toString('base64url')}` }],
  ['If-Match that is not ours', { method: 'PATCH', url: base, headers: { ...json, 'if-match': '"forged"' }, payload: { title: 'x' } }],
  ['multipart with two file parts', { method: 'POST', url: `${base}/renders`, headers: form(), payload: multipart('XyZ', [{ name: 'file', filename: 'a.mp4', type: 'video/mp4', body: video }, { name: 'file', filename: 'b.mp4', type: 'video/mp4', body: video }]) }]
]

async function snapshot (aws: AwsClients, config: Config): Promise<string> {
  const listing = async (bucket: string) => ((await aws.s3.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? []).map((object) => `${object.Key} ${object.Size}`).sort()
  // Rate-limit counters (RATELIMIT#…, the shared store used against AWS and on the strict tier) are meant to count
  // bad requests too; they are not data a bad request could corrupt.
  const items = ((await aws.ddb.send(new ScanCommand({ TableName: config.table, ConsistentRead: true }))).Items ?? [])
    .filter((item) => !String(item.pk).startsWith('RATELIMIT#'))
    .map((item) => JSON.stringify(Object.keys(item).sort().map((key) => [key, item[key]]))).sort()
  return JSON.stringify({ videos: await listing(config.videoBucket), code: await listing(config.codeBucket), items })
}

t.test('every bad input is a 4xx problem+json and changes nothing', async (t) => {
  const app = await build(t)
  const aws = createAwsClients(app.testAws.config)
  t.teardown(() => { aws.destroy() })
  // Something to protect: a video with one code version and one render version.
  t.equal((await app.inject({ method: 'POST', url: `${base}/code`, payload: { content: 'print(1)\n' } })).statusCode, 201)
  t.equal((await app.inject({ method: 'POST', url: `${base}/renders`, headers: { 'content-type': 'video/mp4' }, payload: video })).statusCode, 201)
  t.equal((await app.inject({ method: 'PUT', url: `/v1/projects/p1/videos/${'b'.repeat(128)}`, headers: json, payload: {} })).statusCode, 201, 'a 128-character id is valid (no 414 from the router)')
  const before = await snapshot(aws, app.testAws.config)

  for (const [name, request] of CASES) {
    const response = await app.inject(request)
    t.ok(response.statusCode >= 400 && response.statusCode < 500, `${name}: 4xx (${response.statusCode} ${response.body.slice(0, 160)})`)
    t.match(response.headers['content-type'], /^application\/problem\+json/, `${name}: problem+json`)
    const body = response.json() as { status?: number, stack?: unknown }
    t.equal(body.status, response.statusCode, `${name}: status in the body`)
    t.equal(body.stack, undefined, `${name}: no stack`)
  }
  const after = await snapshot(aws, app.testAws.config)
  t.equal(after, before, 'neither bucket nor the table changed')
})
