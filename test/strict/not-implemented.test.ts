// A permanent 501 NotImplemented from S3 is a 500 whose problem type ends in /permanent (no Retry-After), never the
// 503 "temporarily unavailable" it used to be. Neither Ceph RGW 16.2.15 nor DynamoDB Local answers 501 to any call the
// service makes as configured here (Ceph does for a CopyObject of an object encrypted with a default key, which the
// strict tier turns off: ../shared/notes/strict-backends.md), so a named SDK fault stands in: a middleware placed
// after the SDK's deserializer hands it a real HTTP 501 with S3's XML error body, which the SDK parses and classifies
// as it would from the wire. Runs on both tiers, against a real service route.
import t from 'tap'
import { Readable } from 'node:stream'
import { build } from '../helper.js'

const NOT_IMPLEMENTED = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NotImplemented</Code><Message>A header you provided implies functionality that is not implemented</Message><RequestId>fake</RequestId></Error>'

t.test('fake S3 answer (named: httpNotImplemented): a 501 on the code write is a permanent 500, not a 503', async (t) => {
  const app = await build(t, { config: { overload: { maxEventLoopDelayMs: 0, maxHeapBytes: 0 } } })
  let answered = 0
  // Placed after the deserializer: it answers in place of the HTTP handler, for PutObject only.
  app.aws.s3.middlewareStack.addRelativeTo((next, context) => async (args) => {
    if (context.commandName !== 'PutObjectCommand') return await next(args)
    answered++
    return { output: undefined, response: { statusCode: 501, reason: 'Not Implemented', headers: { 'content-type': 'application/xml', 'x-amz-request-id': 'fake' }, body: Readable.from([Buffer.from(NOT_IMPLEMENTED)]) } } as never
  }, { relation: 'after', toMiddleware: 'deserializerMiddleware', name: 'httpNotImplemented' })

  const response = await app.inject({ method: 'POST', url: '/v1/projects/p1/videos/unimplemented/code', payload: { content: 'x = 1\n' } })
  t.equal(response.statusCode, 500, response.body)
  t.equal(response.headers['retry-after'], undefined, 'no Retry-After: repeating will not help')
  t.match(response.headers['content-type'], /^application\/problem\+json/)
  t.match(response.json(), { type: /\/storage-not-implemented\/permanent$/, storage: { code: 'NotImplemented', status: 501 }, retryable: false, detail: /does not implement/ })
  t.equal(answered, 1, 'the SDK did not retry a 501 (the fault answered once)')
  const video = await app.inject({ method: 'GET', url: '/v1/projects/p1/videos/unimplemented/code' })
  t.equal(video.statusCode, 404, 'and no version was stored')
})
