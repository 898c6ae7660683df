// Reads the CloudFormation template and scans the service's source for the AWS calls it makes, for the IAM tests.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { parse, type Tags } from 'yaml'

export const ROOT = new URL('../..', import.meta.url).pathname
export const TEMPLATE_PATH = join(ROOT, 'deploy', 'cloudformation.yaml')

// CloudFormation's short-form intrinsics, turned into their long form so the template parses as plain data.
const SCALAR_TAGS = ['Ref', 'Sub', 'GetAtt', 'GetAZs', 'ImportValue', 'Condition', 'Base64']
const SEQUENCE_TAGS = ['If', 'Equals', 'Not', 'And', 'Or', 'Join', 'Select', 'Split', 'Sub', 'FindInMap', 'GetAtt', 'Cidr']
const customTags: Tags = [
  ...SCALAR_TAGS.map((name) => ({
    tag: `!${name}`,
    resolve: (value: string) => {
      if (name === 'Ref' || name === 'Condition') return { [name]: value }
      if (name === 'GetAtt') return { 'Fn::GetAtt': value.split('.') }
      return { [`Fn::${name}`]: value }
    }
  })),
  ...SEQUENCE_TAGS.map((name) => ({
    tag: `!${name}`,
    collection: 'seq' as const,
    resolve: (value: { toJSON: () => unknown }) => ({ [`Fn::${name}`]: value.toJSON() })
  }))
]

export type Template = { Parameters: Record<string, any>, Conditions: Record<string, any>, Resources: Record<string, { Type: string, Properties: any, Condition?: string, DeletionPolicy?: string }>, Outputs: Record<string, any> }

export function loadTemplate (): Template {
  return parse(readFileSync(TEMPLATE_PATH, 'utf8'), { customTags }) as Template
}

// Where an SDK command's IAM action is not simply the service prefix plus the command's name.
const S3_ACTIONS: Record<string, string[]> = {
  HeadBucket: ['s3:ListBucket'],
  HeadObject: ['s3:GetObject'],
  ListObjects: ['s3:ListBucket'],
  ListObjectsV2: ['s3:ListBucket'],
  ListObjectVersions: ['s3:ListBucketVersions'],
  DeleteObjects: ['s3:DeleteObject'],
  CopyObject: ['s3:GetObject', 's3:PutObject'],
  CreateMultipartUpload: ['s3:PutObject'],
  UploadPart: ['s3:PutObject'],
  UploadPartCopy: ['s3:GetObject', 's3:PutObject'],
  CompleteMultipartUpload: ['s3:PutObject'],
  ListParts: ['s3:ListMultipartUploadParts'],
  ListMultipartUploads: ['s3:ListBucketMultipartUploads'],
  GetObjectLockConfiguration: ['s3:GetBucketObjectLockConfiguration'],
  PutObjectLockConfiguration: ['s3:PutBucketObjectLockConfiguration'],
  GetObjectAttributes: ['s3:GetObjectAttributes'],
  PutBucketEncryption: ['s3:PutEncryptionConfiguration'],
  GetBucketEncryption: ['s3:GetEncryptionConfiguration'],
  PutBucketLifecycleConfiguration: ['s3:PutLifecycleConfiguration'],
  GetBucketLifecycleConfiguration: ['s3:GetLifecycleConfiguration'],
  PutPublicAccessBlock: ['s3:PutBucketPublicAccessBlock'],
  GetPublicAccessBlock: ['s3:GetBucketPublicAccessBlock']
}
const DOCUMENT_ACTIONS: Record<string, string[]> = {
  Get: ['dynamodb:GetItem'],
  Put: ['dynamodb:PutItem'],
  Update: ['dynamodb:UpdateItem'],
  Delete: ['dynamodb:DeleteItem'],
  Query: ['dynamodb:Query'],
  Scan: ['dynamodb:Scan'],
  BatchGet: ['dynamodb:BatchGetItem'],
  BatchWrite: ['dynamodb:BatchWriteItem'],
  TransactGet: ['dynamodb:GetItem'],
  TransactWrite: ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:ConditionCheckItem']
}
// lib-storage's Upload sends these five commands, depending on size and outcome.
const UPLOAD_COMMANDS = ['CreateMultipartUpload', 'UploadPart', 'CompleteMultipartUpload', 'AbortMultipartUpload', 'PutObject']
const WAITERS: Record<string, { pkg: string, command: string }> = {
  TableExists: { pkg: '@aws-sdk/client-dynamodb', command: 'DescribeTable' },
  TableNotExists: { pkg: '@aws-sdk/client-dynamodb', command: 'DescribeTable' },
  BucketExists: { pkg: '@aws-sdk/client-s3', command: 'HeadBucket' },
  ObjectExists: { pkg: '@aws-sdk/client-s3', command: 'HeadObject' }
}

/** The IAM actions one SDK command needs, given the package it came from. */
export function iamActionsFor (pkg: string, command: string): string[] {
  if (pkg === '@aws-sdk/client-s3') return S3_ACTIONS[command] ?? [`s3:${command}`]
  if (pkg === '@aws-sdk/client-dynamodb') return [`dynamodb:${command}`]
  if (pkg === '@aws-sdk/lib-dynamodb') {
    const actions = DOCUMENT_ACTIONS[command]
    if (actions === undefined) throw new Error(`no IAM mapping for lib-dynamodb ${command}Command`)
    return actions
  }
  throw new Error(`no IAM mapping for ${pkg}`)
}

export interface AwsCall { file: string, pkg: string, command: string, actions: string[] }

function sourceFiles (directory: string): string[] {
  return readdirSync(directory).flatMap((name) => {
    const path = join(directory, name)
    if (statSync(path).isDirectory()) return sourceFiles(path)
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : []
  })
}

/** Every AWS call the given source makes: `new XCommand(`, `paginateX(`, `waitUntilX(` and lib-storage's `new Upload(`. */
export function awsCallsIn (file: string, source: string): AwsCall[] {
  // local name -> the package and exported name it was imported as
  const imported = new Map<string, { pkg: string, name: string }>()
  for (const match of source.matchAll(/import\s+(?:type\s+)?\{([^}]*)\}\s*from\s*['"](@aws-sdk\/[a-z0-9-]+)['"]/g)) {
    for (const specifier of match[1].split(',')) {
      const words = specifier.trim().replace(/^type\s+/, '').split(/\s+as\s+/).map((word) => word.trim())
      if (words[0] !== '') imported.set(words[1] ?? words[0], { pkg: match[2], name: words[0] })
    }
  }
  const calls: AwsCall[] = []
  const add = (pkg: string, command: string): void => { calls.push({ file, pkg, command, actions: iamActionsFor(pkg, command) }) }
  for (const match of source.matchAll(/new\s+([A-Za-z0-9_$]+)\s*\(/g)) {
    const origin = imported.get(match[1])
    if (origin !== undefined && origin.name.endsWith('Command')) add(origin.pkg, origin.name.slice(0, -'Command'.length))
  }
  for (const match of source.matchAll(/\b([A-Za-z0-9_$]+)\s*\(/g)) {
    const origin = imported.get(match[1])
    if (origin === undefined) continue
    if (origin.name.startsWith('paginate')) add(origin.pkg, origin.name.slice('paginate'.length))
    if (origin.name.startsWith('waitUntil')) {
      const waiter = WAITERS[origin.name.slice('waitUntil'.length)]
      if (waiter === undefined) throw new Error(`no IAM mapping for waiter ${origin.name} in ${file}`)
      add(waiter.pkg, waiter.command)
    }
  }
  // Actions a call needs because of its arguments, which the command name cannot show (DeleteObjects with VersionId
  // needs s3:DeleteObjectVersion): declared in the source next to the call as `// IAM: s3:Action (why)`.
  for (const match of source.matchAll(/\/\/ IAM: ((?:s3|dynamodb):[A-Za-z]+)/g)) calls.push({ file, pkg: 'declared', command: `declared ${match[1]}`, actions: [match[1]] })
  const upload = [...imported].find(([, origin]) => origin.pkg === '@aws-sdk/lib-storage' && origin.name === 'Upload')
  if (upload !== undefined && new RegExp(`new\\s+${upload[0]}\\s*\\(`).test(source)) {
    for (const command of UPLOAD_COMMANDS) add('@aws-sdk/client-s3', command)
  }
  return calls
}

// Provisioning creates buckets and table; on AWS the CloudFormation stack does that instead, so no role needs it.
export const SETUP_ONLY = ['src/ops/provision.ts']
// Operator commands run by hand with their own policy (OperatorPolicy), never by the service.
export const OPERATOR_TOOLS = ['src/ops/reconcile.ts', 'src/ops/reconcile/scan.ts', 'src/ops/reconcile/fix.ts']

function callsIn (files: string[]): AwsCall[] {
  return files.flatMap((file) => awsCallsIn(file, readFileSync(join(ROOT, file), 'utf8')))
}

/** The calls of the running service: everything under src/ and routes/ except provisioning and operator tools. */
export function serviceAwsCalls (): AwsCall[] {
  const files = ['src', 'routes'].flatMap((folder) => sourceFiles(join(ROOT, folder))).map((path) => relative(ROOT, path))
  return callsIn(files.filter((file) => !SETUP_ONLY.includes(file) && !OPERATOR_TOOLS.includes(file)))
}

/** The calls of the operator tools (npm run reconcile). */
export function operatorAwsCalls (): AwsCall[] {
  return callsIn(OPERATOR_TOOLS)
}

/** Every action a policy document allows, as written (strings only). */
export function policyActions (document: { Statement: Array<{ Effect: string, Action: string | string[] }> }): string[] {
  return document.Statement.filter((statement) => statement.Effect === 'Allow')
    .flatMap((statement) => Array.isArray(statement.Action) ? statement.Action : [statement.Action])
}
