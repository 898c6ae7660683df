import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { loadConfig } from '../../src/config.js'
import { provisionStorage } from '../../src/ops/provision.js'
import { awsCallsIn, loadTemplate, operatorAwsCalls, OPERATOR_TOOLS, policyActions, serviceAwsCalls, TEMPLATE_PATH, type AwsCall, type Template } from '../support/iam.js'

const template = loadTemplate()

/** A managed policy's statements, an Fn::If statement (the optional KMS grant) counted by its true branch. */
function statementsOf (resource: string): any[] {
  return template.Resources[resource].Properties.PolicyDocument.Statement.map((statement: any) => statement['Fn::If'] !== undefined ? statement['Fn::If'][1] : statement)
}
const POLICIES = [
  { resource: 'ServicePolicy', calls: serviceAwsCalls, who: 'the service' },
  { resource: 'OperatorPolicy', calls: operatorAwsCalls, who: 'npm run reconcile' }
]
const statements = statementsOf('ServicePolicy')
const allowed = new Set(policyActions({ Statement: statements }))
// kms:* follows from SSE-KMS on the buckets, not from a command in the code.
const IMPLIED_BY_CONFIGURATION = new Set(['kms:Decrypt', 'kms:GenerateDataKey'])

/** The actions the calls need that the allowed set lacks, each with where it is used. */
function missingActions (calls: AwsCall[], actions = allowed): string[] {
  return calls.flatMap((call) => call.actions.filter((action) => !actions.has(action)).map((action) => `${action} (${call.command} in ${call.file})`))
}

t.test('the template parses with CloudFormation tags and every Ref, GetAtt and Condition names something in it', async (t) => {
  t.equal(template.AWSTemplateFormatVersion, '2010-09-09')
  const names = new Set([...Object.keys(template.Parameters), ...Object.keys(template.Resources), 'AWS::NoValue', 'AWS::Region', 'AWS::AccountId', 'AWS::StackName', 'AWS::Partition'])
  const conditions = new Set(Object.keys(template.Conditions))
  const dangling: string[] = []
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) { node.forEach(walk); return }
    if (node === null || typeof node !== 'object') return
    for (const [key, value] of Object.entries(node)) {
      if (key === 'Ref' && !names.has(value as string)) dangling.push(`Ref ${String(value)}`)
      if (key === 'Fn::GetAtt' && !names.has((value as string[])[0])) dangling.push(`GetAtt ${String(value)}`)
      if (key === 'Fn::If' && !conditions.has((value as string[])[0])) dangling.push(`If ${(value as string[])[0]}`)
      if (key === 'Fn::Sub' && typeof value === 'string') {
        for (const match of value.matchAll(/\$\{([A-Za-z0-9:]+)(?:\.[A-Za-z]+)?\}/g)) if (!names.has(match[1])) dangling.push(`Sub ${match[1]}`)
      }
      walk(value)
    }
  }
  walk(template.Resources)
  walk(template.Outputs)
  walk(template.Conditions)
  t.same(dangling, [], 'no reference to a missing parameter, resource or condition')
  for (const [name, resource] of Object.entries(template.Resources)) t.match(resource.Type, /^AWS::[A-Za-z0-9]+::[A-Za-z0-9]+$/, `${name} has a type`)
})

t.test('cfn-lint accepts the template (where cfn-lint is installed)', async (t) => {
  const probe = spawnSync('cfn-lint', ['--version'], { encoding: 'utf8' })
  if (probe.status !== 0) {
    t.skip('cfn-lint is not installed: it is in neither Debian nor npm')
    return
  }
  const result = spawnSync('cfn-lint', [TEMPLATE_PATH], { encoding: 'utf8' })
  t.equal(result.status, 0, `${result.stdout}${result.stderr}`)
})

for (const policy of POLICIES) {
  t.test(`${policy.resource} allows every S3 and DynamoDB call ${policy.who} makes, and nothing else (least privilege)`, async (t) => {
    const calls = policy.calls()
    const actions = new Set(policyActions({ Statement: statementsOf(policy.resource) }))
    t.ok(calls.length >= 3, `found ${calls.length} calls`)
    t.same(missingActions(calls, actions), [], 'every call is allowed')
    const used = new Set(calls.flatMap((call) => call.actions))
    t.same([...actions].filter((action) => !used.has(action) && !IMPLIED_BY_CONFIGURATION.has(action)), [], 'every allowed action is used by some call')
    t.notOk([...actions].some((action) => action.includes('*')), 'no wildcard actions')
  })
}

t.test('the scan sees the service\'s own calls and keeps provisioning and operator tools out of the service policy', async (t) => {
  const calls = serviceAwsCalls()
  t.ok(calls.some((call) => call.command === 'HeadBucket' && call.file === 'src/health/checks.ts'), 'the readiness check')
  t.notOk(calls.some((call) => call.file === 'src/ops/provision.ts' || OPERATOR_TOOLS.includes(call.file)))
  t.notOk(allowed.has('s3:CreateBucket') || allowed.has('dynamodb:CreateTable') || allowed.has('dynamodb:Scan'))
})

t.test('object actions are granted on objects and bucket actions on buckets, table actions on the table', async (t) => {
  const BUCKET_LEVEL = /^s3:(ListBucket|ListBucketVersions|ListBucketMultipartUploads|GetBucket|PutBucket|GetEncryption|PutEncryption|GetLifecycle|PutLifecycle)/
  for (const statement of [...statements, ...statementsOf('OperatorPolicy')]) {
    const actions: string[] = statement.Action
    const resources = JSON.stringify(statement.Resource)
    if (statement.Sid === 'Objects') {
      t.ok(actions.every((action) => action.startsWith('s3:') && !BUCKET_LEVEL.test(action)), 'Objects holds object actions only')
      t.match(resources, /VideoBucket\.Arn\}\/\*.*CodeBucket\.Arn\}\/\*/)
      t.notMatch(resources, /"Fn::GetAtt"/, 'objects only, not buckets')
    } else if (statement.Sid === 'Buckets') {
      t.ok(actions.every((action) => BUCKET_LEVEL.test(action)), 'Buckets holds bucket actions only')
      t.notMatch(resources, /\/\*/)
    } else if (statement.Sid === 'Table') {
      t.ok(actions.every((action) => action.startsWith('dynamodb:')))
      t.match(resources, /MetadataTable/)
    } else {
      t.equal(statement.Sid, 'EncryptionKey')
    }
  }
})

t.test('the scan maps commands to IAM actions and would fail on a call the policy lacks', async (t) => {
  const source = [
    "import { HeadObjectCommand, RestoreObjectCommand as Restore, paginateListObjectsV2 } from '@aws-sdk/client-s3'",
    "import { TransactWriteCommand } from '@aws-sdk/lib-dynamodb'",
    "import { Upload } from '@aws-sdk/lib-storage'",
    "import { waitUntilTableExists } from '@aws-sdk/client-dynamodb'",
    'new HeadObjectCommand({}); new Restore({}); paginateListObjectsV2({}, {})',
    'new TransactWriteCommand({}); new Upload({}); await waitUntilTableExists({}, {})',
    'new NotAnAwsCommand({})'
  ].join('\n')
  const calls = awsCallsIn('src/example.ts', source)
  const actions = (command: string): string[] => calls.filter((call) => call.command === command).flatMap((call) => call.actions)
  t.same(actions('HeadObject'), ['s3:GetObject'])
  t.same(actions('RestoreObject'), ['s3:RestoreObject'], 'an aliased import still counts')
  t.same(actions('ListObjectsV2'), ['s3:ListBucket'], 'paginators count as their command')
  t.same(actions('DescribeTable'), ['dynamodb:DescribeTable'], 'waiters count as their command')
  t.ok(actions('TransactWrite').includes('dynamodb:ConditionCheckItem'))
  t.same(new Set(calls.filter((call) => call.pkg === '@aws-sdk/client-s3').flatMap((call) => call.actions)),
    new Set(['s3:GetObject', 's3:RestoreObject', 's3:ListBucket', 's3:PutObject', 's3:AbortMultipartUpload']), 'lib-storage Upload implies PutObject and AbortMultipartUpload')
  t.notOk(calls.some((call) => call.command === 'NotAnAws'), 'only imported SDK commands count')
  t.ok(missingActions(calls).includes('s3:RestoreObject (RestoreObject in src/example.ts)'), 'an unallowed call is reported with its file')
  t.throws(() => awsCallsIn('src/x.ts', "import { ExecuteStatementCommand } from '@aws-sdk/lib-dynamodb'\nnew ExecuteStatementCommand({})"), /no IAM mapping/)
})

t.test('the stack creates the table and buckets exactly as src/ops/provision.ts does (recording stand-in for the SDK clients)', async (t) => {
  const sent: Array<{ name: string, input: any }> = []
  let tableCreated = false
  const s3 = {
    send: async (command: { constructor: { name: string }, input: unknown }) => {
      sent.push({ name: command.constructor.name, input: command.input })
      if (command.constructor.name === 'HeadBucketCommand') throw Object.assign(new Error('not found'), { name: 'NotFound', $metadata: { httpStatusCode: 404 } })
      return {}
    }
  }
  const dynamodb = {
    send: async (command: { constructor: { name: string }, input: unknown }) => {
      sent.push({ name: command.constructor.name, input: command.input })
      if (command.constructor.name === 'CreateTableCommand') tableCreated = true
      if (command.constructor.name === 'DescribeTableCommand') {
        if (!tableCreated) throw Object.assign(new Error('no table'), { name: 'ResourceNotFoundException' })
        return { Table: { TableStatus: 'ACTIVE' } }
      }
      return {}
    }
  }
  const config = loadConfig({ LOG_LEVEL: 'silent' })
  await provisionStorage({ s3: s3 as never, dynamodb: dynamodb as never }, config, { info: () => {}, warn: () => {} })
  const input = (name: string): any => sent.find((command) => command.name === name)?.input

  const table = template.Resources.MetadataTable.Properties
  const created = input('CreateTableCommand')
  const byName = (list: Array<{ AttributeName: string }>): unknown[] => [...list].sort((a, b) => a.AttributeName.localeCompare(b.AttributeName))
  t.same(byName(table.AttributeDefinitions), byName(created.AttributeDefinitions), 'attribute definitions')
  t.same(table.KeySchema, created.KeySchema, 'key schema')
  t.same(table.GlobalSecondaryIndexes, created.GlobalSecondaryIndexes, 'gsi1')
  t.equal(table.BillingMode, created.BillingMode)
  t.same(table.TimeToLiveSpecification, input('UpdateTimeToLiveCommand').TimeToLiveSpecification, 'TTL attribute')
  t.same(table.PointInTimeRecoverySpecification, { PointInTimeRecoveryEnabled: true })

  for (const bucket of ['VideoBucket', 'CodeBucket']) {
    const properties = template.Resources[bucket].Properties
    t.same(properties.PublicAccessBlockConfiguration, input('PutPublicAccessBlockCommand').PublicAccessBlockConfiguration, `${bucket}: public access blocked`)
    const rules = input('PutBucketLifecycleConfigurationCommand').LifecycleConfiguration.Rules.map((rule: any) => ({
      Id: rule.ID, Prefix: rule.Filter.Prefix, abortDays: rule.AbortIncompleteMultipartUpload?.DaysAfterInitiation, expireDays: rule.Expiration?.Days,
      noncurrentDays: rule.NoncurrentVersionExpiration?.NoncurrentDays, expiredDeleteMarker: rule.Expiration?.ExpiredObjectDeleteMarker
    }))
    const incompleteDays = template.Parameters.IncompleteUploadDays.Default
    const stackRules = properties.LifecycleConfiguration.Rules.map((rule: any) => ({
      Id: rule.Id, Prefix: rule.Prefix, abortDays: rule.AbortIncompleteMultipartUpload !== undefined ? incompleteDays : undefined, expireDays: rule.ExpirationInDays,
      noncurrentDays: rule.NoncurrentVersionExpiration !== undefined ? template.Parameters.NoncurrentVersionDays.Default : undefined, expiredDeleteMarker: rule.ExpiredObjectDeleteMarker
    }))
    t.same(stackRules, rules, `${bucket}: lifecycle rules, incomplete multipart uploads aborted, noncurrent versions expired`)
    t.ok(stackRules.some((rule: any) => rule.Id === 'expire-noncurrent-versions' && rule.noncurrentDays === 30 && rule.expiredDeleteMarker === true), `${bucket}: the template expires noncurrent versions (30 days by default) and then their delete markers`)
    const encryption = properties.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm
    t.same(encryption, { 'Fn::If': ['UseKms', 'aws:kms', input('PutBucketEncryptionCommand').ServerSideEncryptionConfiguration.Rules[0].ApplyServerSideEncryptionByDefault.SSEAlgorithm] }, `${bucket}: SSE-S3 unless a KMS key is given`)
  }
  t.same(template.Resources.CodeBucket.Properties.ObjectLockEnabled, { 'Fn::If': ['UseObjectLock', true, { Ref: 'AWS::NoValue' }] }, 'Object Lock is optional on the code bucket')
  t.notOk('ObjectLockEnabled' in template.Resources.VideoBucket.Properties)
})

t.test('the template is valid YAML for a plain YAML reader once tags are known (no stray tabs or duplicate keys)', async (t) => {
  const text = execFileSync('cat', [TEMPLATE_PATH], { encoding: 'utf8' })
  t.notMatch(text, /\t/)
  const keys = Object.keys(template.Resources)
  t.same(new Set(keys).size, keys.length)
  t.ok((template as Template).Outputs.ServicePolicyArn !== undefined)
})
