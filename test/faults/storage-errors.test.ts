// How S3 and DynamoDB failures reach the client: only what a retry may cure (network, throttling, timeouts, 5xx but
// 501) is a 503 with Retry-After; a refusal the backend will repeat is a 409 (state changed) or a 500 whose problem
// type ends in /permanent and says what to check. Named fakes (the SDK's own exception classes, as the SDK builds them
// from an answer) cover every case on both tiers; the strict tier also makes Ceph RGW and DynamoDB Local refuse.
import t from 'tap'
import { PutBucketPolicyCommand, S3ServiceException } from '@aws-sdk/client-s3'
import { CreateTableCommand, DynamoDBServiceException } from '@aws-sdk/client-dynamodb'
import { isDependencyUnavailable, storageRefusal } from '../../src/errors.js'
import { RenderStoreError } from '../../src/client/errors.js'
import { build, listen, onStrictBackend, startTestAws } from '../helper.js'

type Fault = 'client' | 'server'
const s3Error = (name: string, status: number, fault: Fault = status >= 500 ? 'server' : 'client'): S3ServiceException =>
  new S3ServiceException({ name, $fault: fault, $metadata: { httpStatusCode: status }, message: `fake ${name}` })
const dynamoError = (name: string, status: number, fault: Fault = status >= 500 ? 'server' : 'client'): DynamoDBServiceException =>
  new DynamoDBServiceException({ name, $fault: fault, $metadata: { httpStatusCode: status }, message: `fake ${name}` })

// name -> [error, expected status, expected type (suffix)]
const FAKES: Array<[string, Error, number, RegExp | 'about:blank']> = [
  ['S3 AccessDenied 403', s3Error('AccessDenied', 403), 500, /\/problems\/storage-access-denied\/permanent$/],
  ['S3 InvalidAccessKeyId 403', s3Error('InvalidAccessKeyId', 403), 500, /\/storage-access-denied\/permanent$/],
  ['DynamoDB AccessDeniedException 400', dynamoError('AccessDeniedException', 400), 500, /\/storage-access-denied\/permanent$/],
  ['S3 NotImplemented 501', s3Error('NotImplemented', 501), 500, /\/storage-not-implemented\/permanent$/],
  ['S3 InvalidRequest 400', s3Error('InvalidRequest', 400), 500, /\/storage-refused\/permanent$/],
  ['DynamoDB ValidationException 400', dynamoError('ValidationException', 400), 500, /\/storage-refused\/permanent$/],
  ['S3 NoSuchBucket 404', s3Error('NoSuchBucket', 404), 500, /\/storage-missing\/permanent$/],
  ['DynamoDB ResourceNotFoundException 400', dynamoError('ResourceNotFoundException', 400), 500, /\/storage-missing\/permanent$/],
  ['KMS key disabled', s3Error('KMS.DisabledException', 400), 500, /\/storage-encryption-key\/permanent$/],
  ['S3 PreconditionFailed 412 (copy guard)', s3Error('PreconditionFailed', 412), 409, /\/problems\/storage-changed$/],
  ['DynamoDB ConditionalCheckFailedException', dynamoError('ConditionalCheckFailedException', 400), 409, /\/storage-changed$/]
]
const RETRYABLE: Array<[string, Error]> = [
  ['S3 SlowDown 503', s3Error('SlowDown', 503)],
  ['S3 InternalError 500', s3Error('InternalError', 500)],
  ['DynamoDB ThrottlingException 400', dynamoError('ThrottlingException', 400)],
  ['DynamoDB ProvisionedThroughputExceededException 400', dynamoError('ProvisionedThroughputExceededException', 400)],
  ['S3 RequestTimeout 400', s3Error('RequestTimeout', 400)],
  ['SDK TimeoutError', Object.assign(new Error('timed out'), { name: 'TimeoutError' })],
  ['a 502 with no name the service knows', s3Error('BadGateway', 502)]
]

t.test('classification: permanent refusals are never "unavailable", transient failures never "refused"', async (t) => {
  for (const [what, error] of FAKES) {
    t.notOk(isDependencyUnavailable(error), `${what}: not retryable`)
    t.ok(storageRefusal(error) !== undefined, `${what}: a refusal`)
  }
  for (const [what, error] of RETRYABLE) {
    t.ok(isDependencyUnavailable(error), `${what}: retryable`)
    t.equal(storageRefusal(error), undefined, `${what}: not a refusal`)
  }
  t.equal(storageRefusal(s3Error('NoSuchKey', 404)), undefined, 'a missing object is not a storage refusal')
  t.equal(storageRefusal(new Error('plain')), undefined)
})

t.test('through the app: each refusal is its 4xx or a permanent 500 that names the code and what to check; transient ones are 503', async (t) => {
  const app = await build(t, {
    beforeReady: (app) => {
      FAKES.forEach(([, error], index) => { app.get(`/refused-for-test/${index}`, async () => { throw error }) })
      RETRYABLE.forEach(([, error], index) => { app.get(`/transient-for-test/${index}`, async () => { throw error }) })
    }
  })
  for (const [index, [what, error, status, type]] of FAKES.entries()) {
    const response = await app.inject({ method: 'GET', url: `/refused-for-test/${index}` })
    t.equal(response.statusCode, status, `${what}: ${status}`)
    t.match(response.headers['content-type'], /^application\/problem\+json/)
    t.equal(response.headers['retry-after'], undefined, `${what}: no Retry-After`)
    const body = response.json()
    t.match(body.type, type, `${what}: type ${body.type as string}`)
    t.match(body, { status, storage: { code: error.name } }, `${what}: names the storage error`)
    if (status === 500) {
      t.match(body.detail, /; check /, `${what}: says what to check`)
      const seen = new RenderStoreError('GET', { status, request: 'GET /x', problem: body })
      t.ok(seen.permanent, `${what}: the client will not retry it`)
    }
  }
  for (const [index, [what]] of RETRYABLE.entries()) {
    const response = await app.inject({ method: 'GET', url: `/transient-for-test/${index}` })
    t.equal(response.statusCode, 503, `${what}: 503`)
    t.equal(response.headers['retry-after'], '5', `${what}: Retry-After`)
  }
})

t.test('fake S3 fault (Ceph RGW ignores x-amz-copy-source-if-match, s3rver every condition): the copy guard firing at complete is a 409, and complete again commits', async (t) => {
  const { app, baseUrl } = await listen(t, { config: { directMultipartThreshold: 6 * 1024 * 1024, partSize: 5 * 1024 * 1024 } })
  let guardFires = 1
  app.aws.s3.middlewareStack.add((next, context) => async (args) => {
    if (context.commandName === 'CopyObjectCommand' && guardFires > 0) {
      guardFires--
      throw s3Error('PreconditionFailed', 412)
    }
    return await next(args)
  }, { step: 'initialize', name: 'fakeCopyGuard' })
  const bytes = Buffer.alloc(64 * 1024, 7)
  bytes.writeUInt32BE(24, 0)
  bytes.write('ftypisom', 4, 'latin1')
  const uploads = `${baseUrl}/v1/projects/p1/videos/guarded/uploads`
  const plan = await (await fetch(uploads, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sizeBytes: bytes.length, contentType: 'video/mp4' }) })).json() as { uploadId: string, url: string, headers: Record<string, string> }
  t.equal((await fetch(plan.url, { method: 'PUT', headers: plan.headers, body: bytes })).status, 200)
  const complete = async (): Promise<Response> => await fetch(`${uploads}/${plan.uploadId}/complete`, { method: 'POST' })
  const guarded = await complete()
  t.equal(guarded.status, 409, 'the object changed under the copy: a conflict, not a 500')
  t.match(await guarded.json(), { detail: /changed/ })
  t.equal(guardFires, 0, 'the guard did fire')
  const again = await complete()
  t.equal(again.status, 201, 'complete again verifies what is there and commits it')
})

const strictOnly = onStrictBackend() ? false : 'the backend makes these refusals itself on the strict tier (npm run test:strict)'

t.test('real refusals from Ceph RGW and DynamoDB Local', { skip: strictOnly }, async (t) => {
  t.test('a bucket policy denying writes: S3 AccessDenied is a permanent 500, not a 503', async (t) => {
    const app = await build(t, { aws: await startTestAws(t) })
    await app.aws.s3.send(new PutBucketPolicyCommand({
      Bucket: app.config.codeBucket,
      Policy: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Deny', Principal: '*', Action: ['s3:PutObject'], Resource: [`arn:aws:s3:::${app.config.codeBucket}/*`] }] })
    }))
    const response = await app.inject({ method: 'POST', url: '/v1/projects/p1/videos/denied/code', payload: { content: 'x = 1\n' } })
    t.equal(response.statusCode, 500, response.body)
    t.equal(response.headers['retry-after'], undefined)
    t.match(response.json(), { type: /\/storage-access-denied\/permanent$/, storage: { code: 'AccessDenied', status: 403 }, detail: /IAM policy/ })
  })

  t.test('a missing table: DynamoDB ResourceNotFoundException is a permanent 500 that says to provision', async (t) => {
    const testAws = await startTestAws(t)
    const app = await build(t, { aws: testAws, config: { table: `${testAws.config.table}-absent` } })
    const response = await app.inject({ method: 'GET', url: '/v1/projects/p1/videos/anything' })
    t.equal(response.statusCode, 500, response.body)
    t.match(response.json(), { type: /\/storage-missing\/permanent$/, storage: { code: 'ResourceNotFoundException' }, detail: /npm run setup/ })
  })

  t.test('a table with another key schema: DynamoDB ValidationException is a permanent 500', async (t) => {
    const testAws = await startTestAws(t)
    const table = `${testAws.config.table}-wrong`
    await (await build(t, { aws: testAws })).aws.dynamodb.send(new CreateTableCommand({
      TableName: table, BillingMode: 'PAY_PER_REQUEST', AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }], KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }]
    }))
    const app = await build(t, { aws: testAws, config: { table } })
    const response = await app.inject({ method: 'GET', url: '/v1/projects/p1/videos/anything' })
    t.equal(response.statusCode, 500, response.body)
    t.match(response.json(), { type: /\/storage-refused\/permanent$/, storage: { code: 'ValidationException', status: 400 } })
  })

  t.test('a missing bucket: S3 NoSuchBucket is a permanent 500', async (t) => {
    const testAws = await startTestAws(t)
    const app = await build(t, { aws: testAws, config: { codeBucket: `${testAws.config.codeBucket}-absent` } })
    const response = await app.inject({ method: 'POST', url: '/v1/projects/p1/videos/nobucket/code', payload: { content: 'x = 1\n' } })
    t.equal(response.statusCode, 500, response.body)
    t.match(response.json(), { type: /\/storage-missing\/permanent$/, storage: { code: 'NoSuchBucket' } })
  })
})
