// Strict tier only (npm run test:strict): conditional writes on AWS's own DynamoDB Local. dynalite silently ignores
// ReturnValuesOnConditionCheckFailure, so there the commit protocol always falls back to a consistent GetItem; here
// (as on DynamoDB) the failed condition itself names the version's owner.
import t from 'tap'
import { randomUUID } from 'node:crypto'
import { ConditionalCheckFailedException, TransactionCanceledException, TransactWriteItemsCommand, type AttributeValue } from '@aws-sdk/client-dynamodb'
import { GetCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb'
import { createAwsClients } from '../../src/aws/clients.js'
import { createVersions, newIdentity } from '../../src/versions/store.js'
import { onStrictBackend, startTestAws } from '../helper.js'

const skip = onStrictBackend() ? false : 'needs DynamoDB Local (ReturnValuesOnConditionCheckFailure): runs on the strict tier (npm run test:strict)'

t.test('conditional writes on DynamoDB Local', { skip }, async (t) => {
  const testAws = await startTestAws(t)
  const aws = createAwsClients(testAws.config)
  t.teardown(() => { aws.destroy() })
  const table = testAws.config.table

  t.test('a failed condition returns the item it found (ReturnValuesOnConditionCheckFailure: ALL_OLD)', async (t) => {
    const key = { pk: 'VIDEO#p1#raw', sk: 'CODE#000000001' }
    await aws.ddb.send(new PutCommand({ TableName: table, Item: { ...key, commitToken: 'first' }, ConditionExpression: 'attribute_not_exists(sk)' }))
    const error = await aws.ddb.send(new PutCommand({ TableName: table, Item: { ...key, commitToken: 'second' }, ConditionExpression: 'attribute_not_exists(sk)', ReturnValuesOnConditionCheckFailure: 'ALL_OLD' })).then(() => undefined, (failure: unknown) => failure)
    t.ok(error instanceof ConditionalCheckFailedException, 'the condition failed')
    t.same((error as { Item?: Record<string, AttributeValue> }).Item?.commitToken, { S: 'first' }, 'and the answer carries the item that was there')
  })

  t.test('a transaction is all or nothing, with a reason per item', async (t) => {
    const key = (sk: string): Record<string, AttributeValue> => ({ pk: { S: 'VIDEO#p1#tx' }, sk: { S: sk } })
    await aws.ddb.send(new PutCommand({ TableName: table, Item: { pk: 'VIDEO#p1#tx', sk: 'CODE#000000001' } }))
    const error = await aws.dynamodb.send(new TransactWriteItemsCommand({
      TransactItems: [
        { Put: { TableName: table, Item: key('CODE#000000002'), ConditionExpression: 'attribute_not_exists(sk)' } },
        { Put: { TableName: table, Item: key('CODE#000000001'), ConditionExpression: 'attribute_not_exists(sk)' } }
      ]
    })).then(() => undefined, (failure: unknown) => failure)
    t.ok(error instanceof TransactionCanceledException, 'refused as a whole')
    t.same((error as TransactionCanceledException).CancellationReasons?.map((reason) => reason.Code), ['None', 'ConditionalCheckFailed'])
    const { Item } = await aws.ddb.send(new GetCommand({ TableName: table, Key: { pk: 'VIDEO#p1#tx', sk: 'CODE#000000002' }, ConsistentRead: true }))
    t.equal(Item, undefined, 'the other item was not written')
  })

  t.test('versions.commit: an SDK retry of a landed PutItem is recognised from the failed condition alone, with no extra read', async (t) => {
    const sent: string[] = []
    let replayed = false
    // Sends the version PutItem twice, as the SDK does when the first attempt landed but its answer was lost.
    const retrying = {
      send: async (command: { constructor: { name: string }, input: Record<string, unknown> }) => {
        const isCommit = command instanceof PutCommand && command.input.ConditionExpression === 'attribute_not_exists(sk)'
        sent.push(command.constructor.name)
        if (isCommit && !replayed) {
          replayed = true
          await aws.ddb.send(command as PutCommand)
        }
        return await aws.ddb.send(command as never)
      }
    } as unknown as DynamoDBDocumentClient
    const versions = createVersions({ ddb: retrying, table })
    const identity = newIdentity(randomUUID())
    const result = await versions.commit({ kind: 'CODE', projectId: 'p1', videoId: 'retried', identity, build: () => ({ createdAt: new Date().toISOString() }) })
    t.match(result, { version: 1, recovered: true, item: { commitToken: identity.token } }, 'the version our own first attempt wrote')
    t.notOk(sent.includes('GetCommand'), `no GetItem was needed to find the owner (sent: ${sent.join(', ')})`)
  })
})
