// `npm run postman`: writes postman/render-store.postman_collection.json from openapi.yaml: every operation as a request
// with real example values, in an order that runs top to bottom against a fresh service (newman or Postman's runner):
// a video is made, rendered, uploaded to directly, given code, and deleted last. Auth comes from one collection
// variable, `apiKey` (empty: no Authorization header, for a service without API keys). Every request has a status
// test. test/contract/postman.test.ts checks the file is in step; test/contract/newman.test.ts runs it with newman.
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
export const COLLECTION_PATH = join(root, 'postman', 'render-store.postman_collection.json')
/** The sample video the upload requests send (a file next to the collection: run newman with --working-dir postman). */
export const SAMPLE_VIDEO = 'render.mp4'

const CODE_V1 = 'from manim import *\n\n\nclass Intro(Scene):\n    def construct(self):\n        self.play(Write(Text("render-store")))\n'
const CODE_V2 = 'from manim import *\n\n\nclass Intro(Scene):\n    def construct(self):\n        self.play(Write(Text("render-store, edited")))\n        self.wait(1)\n'

const json = (value) => ({ mode: 'raw', raw: JSON.stringify(value, null, 2), options: { raw: { language: 'json' } } })
const file = { mode: 'file', file: { src: SAMPLE_VIDEO } }
/** A test-script line that keeps a value of the JSON answer in a collection variable. */
const keep = (variable, expression) => `if (pm.response.code < 300) pm.collectionVariables.set('${variable}', ${expression});`

/** tus creation of the sample's size, with its file name and type (base64, as Upload-Metadata wants them). */
const TUS_CREATE = { 'Tus-Resumable': '1.0.0', 'Upload-Length': '9072', 'Upload-Metadata': 'filename cmVuZGVyLm1wNA==,filetype dmlkZW8vbXA0' }
/** The tus upload id: the last segment of the Location a creation answers. */
const keepTusId = (variable) => `if (pm.response.code === 201) pm.collectionVariables.set('${variable}', pm.response.headers.get('Location').split('/').pop());`
const base64 = (text) => Buffer.from(text).toString('base64')
/** A checkpoint as RenderStoreCheckpointSaver sends it: the serializer's { type, data } with data in base64. */
const CHECKPOINT = {
  checkpoint: { type: 'json', data: base64(JSON.stringify({ v: 1, id: 'postman', channel_values: {}, channel_versions: { topic: 1 } })) },
  metadata: { source: 'input', step: -1 },
  channelVersions: { topic: 1 },
  blobs: [{ channel: 'topic', version: '1', type: 'json', data: base64(JSON.stringify('intro')) }]
}
const WRITES = { taskPath: '', writes: [{ idx: 0, channel: 'topic', type: 'json', data: base64(JSON.stringify('intro, edited')) }] }

/**
 * The run, in order. `op` names an operationId; `status` the answers its test accepts; `path` fills path variables
 * (default: the collection variable of the same name); `after` lines run in the test script (to keep ids for later).
 */
const SCENARIO = [
  { folder: 'health', op: 'getLiveness', status: [200] },
  { folder: 'health', op: 'getReadiness', status: [200] },
  { folder: 'videos', op: 'putVideo', status: [201, 200], body: json({ title: 'Intro', description: 'made by the Postman collection', tags: ['demo', 'postman'], customMetadata: { source: 'postman' } }) },
  { folder: 'videos', op: 'getVideo', status: [200], after: [keep('videoEtag', "pm.response.headers.get('ETag')")] },
  { folder: 'videos', op: 'patchVideo', status: [200], headers: { 'If-Match': '{{videoEtag}}' }, body: json({ title: 'Intro (edited)', status: 'code_ready' }) },
  { folder: 'videos', op: 'listVideos', status: [200], query: { limit: '10' } },
  { folder: 'code', op: 'createCodeVersion', name: 'Store a code version (JSON)', status: [201], body: json({ content: CODE_V1, filename: 'scene.py', language: 'python', message: 'first draft' }), after: [keep('codeVersion', 'pm.response.json().version')] },
  { folder: 'code', op: 'createCodeVersion', name: 'Store a code version (raw text/plain, on the latest)', status: [201], headers: { 'Content-Type': 'text/plain', 'X-Filename': 'scene.py', 'X-Base-Version': '{{codeVersion}}' }, body: { mode: 'raw', raw: CODE_V2 }, after: [keep('codeVersion', 'pm.response.json().version')] },
  { folder: 'code', op: 'getLatestCode', status: [200] },
  { folder: 'code', op: 'listCodeVersions', status: [200], query: { limit: '10' } },
  { folder: 'code', op: 'getCodeVersion', status: [200], path: { version: '{{codeVersion}}' } },
  { folder: 'code', op: 'diffCodeVersions', status: [200], path: { version: '{{codeVersion}}' }, query: { from: '1' }, headers: { Accept: 'text/x-diff' } },
  // Object Lock needs a code bucket made with it (S3_OBJECT_LOCK on AWS); the embedded S3 has none: 409, nothing changed.
  { folder: 'code', op: 'lockCodeVersion', name: 'Put a legal hold on a code version (409 where the bucket has no Object Lock)', status: [200, 409], path: { version: '{{codeVersion}}' }, body: json({ legalHold: true }) },
  { folder: 'renders', op: 'uploadRender', status: [201], headers: { 'Content-Type': 'video/mp4', 'X-Title': 'Intro', 'X-Resolution': '320x240' }, body: file, after: [keep('renderVersion', 'pm.response.json().version')] },
  { folder: 'renders', op: 'listRenders', status: [200], query: { limit: '10' } },
  { folder: 'renders', op: 'getRender', status: [200], path: { version: '{{renderVersion}}' } },
  { folder: 'renders', op: 'downloadRender', status: [302], path: { version: 'latest' }, noRedirects: true },
  { folder: 'renders', op: 'uploadSceneClip', status: [201], path: { version: '{{renderVersion}}', sceneNumber: '1' }, headers: { 'Content-Type': 'video/mp4' }, body: file },
  { folder: 'renders', op: 'getUploadProgress', status: [200], headers: { Accept: 'application/json' } },
  { folder: 'renders', op: 'getVideoStatus', status: [200] },
  {
    folder: 'direct uploads',
    op: 'createDirectUpload',
    status: [201],
    body: json({ sizeBytes: 9072, contentType: 'video/mp4' }),
    after: [keep('uploadId', 'pm.response.json().uploadId'), keep('directUploadUrl', 'pm.response.json().url'), keep('directUploadHeaders', 'JSON.stringify(pm.response.json().headers)')]
  },
  { folder: 'direct uploads', s3: true },
  { folder: 'direct uploads', op: 'getDirectUpload', status: [200] },
  { folder: 'direct uploads', op: 'completeDirectUpload', status: [201, 200, 202], body: json({}) },
  { folder: 'direct uploads', op: 'createDirectUpload', name: 'Start a direct upload (to abort)', status: [201], body: json({ sizeBytes: 9072, contentType: 'video/mp4' }), after: [keep('abortUploadId', 'pm.response.json().uploadId')] },
  { folder: 'direct uploads', op: 'abortDirectUpload', status: [204], path: { uploadId: '{{abortUploadId}}' } },
  // A session of DIRECT_MULTIPART_THRESHOLD bytes (100 MiB by default) or more is multipart and gets its part URLs on
  // demand: one is opened (no bytes sent), parts 1 and 2 signed, and the session aborted. A service configured with a
  // larger threshold makes it a single-PUT session, which has no parts: that step then fails with 409, as it should.
  { folder: 'direct uploads', op: 'createDirectUpload', name: 'Start a multipart direct upload (100 MiB, URLs on demand)', status: [201], body: json({ sizeBytes: 100 * 1024 ** 2, contentType: 'video/mp4' }), after: [keep('multipartUploadId', 'pm.response.json().uploadId')] },
  { folder: 'direct uploads', op: 'signUploadParts', status: [200], path: { uploadId: '{{multipartUploadId}}' }, body: json({ partNumbers: [1, 2] }) },
  { folder: 'direct uploads', op: 'abortDirectUpload', name: 'Abort the multipart direct upload', status: [204], path: { uploadId: '{{multipartUploadId}}' } },
  { folder: 'tus', op: 'tusOptions', status: [204] },
  { folder: 'tus', op: 'tusCreate', status: [201], headers: TUS_CREATE, after: [keepTusId('tusUploadId')] },
  { folder: 'tus', op: 'tusUploadOptions', status: [204], path: { uploadId: '{{tusUploadId}}' } },
  { folder: 'tus', op: 'tusHead', status: [200], path: { uploadId: '{{tusUploadId}}' }, headers: { 'Tus-Resumable': '1.0.0' } },
  // The whole sample in one PATCH from offset 0: the upload completes and becomes the next render version.
  { folder: 'tus', op: 'tusPatch', status: [204], path: { uploadId: '{{tusUploadId}}' }, headers: { 'Tus-Resumable': '1.0.0', 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream' }, body: file },
  { folder: 'tus', op: 'tusCreate', name: 'Open a tus upload (to terminate)', status: [201], headers: TUS_CREATE, after: [keepTusId('tusTerminateId')] },
  { folder: 'tus', op: 'tusTerminate', status: [204], path: { uploadId: '{{tusTerminateId}}' }, headers: { 'Tus-Resumable': '1.0.0' } },
  // Threads: this run's ids are picked by the first request (a thread of its own, so runs never meet).
  { folder: 'threads', op: 'listThreads', name: 'List the project\'s agent threads (and pick this run\'s thread and checkpoint ids)', status: [200], query: { limit: '10' }, after: ["pm.collectionVariables.set('threadId', 'postman-' + Date.now());", "pm.collectionVariables.set('checkpointId', 'cp-' + Date.now());", "pm.collectionVariables.set('taskId', 'task-1');"] },
  { folder: 'threads', op: 'putCheckpoint', status: [201], body: json(CHECKPOINT) },
  { folder: 'threads', op: 'putCheckpointWrites', status: [200], body: json(WRITES) },
  { folder: 'threads', op: 'getCheckpoint', status: [200] },
  { folder: 'threads', op: 'getCheckpoint', name: 'The newest checkpoint (latest)', status: [200], path: { checkpointId: 'latest' } },
  { folder: 'threads', op: 'listCheckpoints', status: [200], query: { limit: '10' } },
  { folder: 'threads', op: 'deleteThread', status: [204] },
  { folder: 'cleanup', op: 'deleteVideo', status: [204] }
]

const VARIABLES = [
  { key: 'baseUrl', value: 'http://127.0.0.1:3000', description: 'the service' },
  { key: 'apiKey', value: '', description: 'a key of API_KEYS_FILE; leave empty for a service without keys (the embedded default)' },
  { key: 'projectId', value: 'postman', description: 'the project every request works in' },
  { key: 'videoId', value: '', description: 'empty: each run makes its own (postman-<time>)' }
]

/** A UUID-shaped id from a hash, so a regenerated collection is byte-identical. */
function stableId (seed) {
  const hex = createHash('sha256').update(seed).digest('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`
}

const script = (type, lines) => ({ listen: type, script: { type: 'text/javascript', exec: lines } })

function statusTest (label, statuses) {
  return `pm.test('${label.replace(/'/g, "\\'")} answers ${statuses.join(' or ')}', function () { pm.expect(pm.response.code).to.be.oneOf(${JSON.stringify(statuses)}); });`
}

function url (path, values, query) {
  const segments = path.split('/').filter(Boolean).map((segment) => segment.replace(/^\{(.+)\}$/, ':$1'))
  const variable = [...path.matchAll(/\{([^}]+)\}/g)].map(([, name]) => ({ key: name, value: values[name] ?? `{{${name}}}` }))
  const queryList = Object.entries(query).map(([key, value]) => ({ key, value }))
  const search = queryList.length > 0 ? `?${queryList.map(({ key, value }) => `${key}=${value}`).join('&')}` : ''
  return { raw: `{{baseUrl}}/${segments.join('/')}${search}`, host: ['{{baseUrl}}'], path: segments, ...(queryList.length > 0 ? { query: queryList } : {}), ...(variable.length > 0 ? { variable } : {}) }
}

function apiItem (step, operation) {
  const headers = Object.entries({ ...(step.body?.mode === 'raw' && step.body.options?.raw?.language === 'json' ? { 'Content-Type': 'application/json' } : {}), ...step.headers })
  const name = step.name ?? operation.summary ?? step.op
  return {
    id: stableId(`${step.folder}/${name}`),
    name,
    ...(step.noRedirects === true ? { protocolProfileBehavior: { followRedirects: false } } : {}),
    event: [script('test', [statusTest(step.op, step.status), ...(step.after ?? [])])],
    request: {
      method: operation.method.toUpperCase(),
      header: headers.map(([key, value]) => ({ key, value })),
      ...(step.body !== undefined ? { body: step.body } : {}),
      url: url(operation.path, step.path ?? {}, step.query ?? {}),
      description: `${operation.operationId}: ${operation.summary ?? ''}`
    }
  }
}

/** Not an API operation: the client's own PUT of the bytes to the presigned S3 URL createDirectUpload answered. */
function s3PutItem () {
  return {
    id: stableId('direct uploads/PUT the file to the presigned URL'),
    name: 'PUT the file to the presigned S3 URL (S3, not this API)',
    event: [
      script('prerequest', ["const signed = JSON.parse(pm.collectionVariables.get('directUploadHeaders') || '{}');", 'for (const [key, value] of Object.entries(signed)) pm.request.headers.upsert({ key, value });']),
      script('test', [statusTest('the presigned PUT', [200])])
    ],
    request: {
      auth: { type: 'noauth' },
      method: 'PUT',
      header: [],
      body: file,
      url: '{{directUploadUrl}}',
      description: 'createDirectUpload answered a presigned URL and the headers it signed: the bytes go straight to S3.'
    }
  }
}

/** The Postman collection (v2.1) for the given OpenAPI text. */
export function buildCollection (openapiText) {
  const document = parse(openapiText)
  const operations = new Map()
  for (const [path, methods] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(methods)) operations.set(operation.operationId, { ...operation, method, path })
  }
  const folders = new Map()
  const add = (folder, item) => { if (!folders.has(folder)) folders.set(folder, []); folders.get(folder).push(item) }
  const covered = new Set()
  const steps = SCENARIO.filter((step) => step.s3 === true || operations.has(step.op))
  for (const step of steps.slice(0, -1)) {
    if (step.s3 === true) { add(step.folder, s3PutItem()); continue }
    covered.add(step.op)
    add(step.folder, apiItem(step, operations.get(step.op)))
  }
  // Operations the scenario does not know yet (a route added since): run with the collection's variables and
  // accept any status they document below 500, before the video is deleted.
  for (const [operationId, operation] of operations) {
    if (covered.has(operationId) || operationId === 'deleteVideo') continue
    const statuses = Object.keys(operation.responses).filter((status) => /^[1-4]\d\d$/.test(status)).map(Number)
    add('not yet in the scenario', apiItem({ folder: 'not yet in the scenario', op: operationId, status: statuses }, operation))
  }
  const last = steps.at(-1)
  if (last !== undefined && last.s3 !== true) add(last.folder, apiItem(last, operations.get(last.op)))

  return {
    info: {
      _postman_id: stableId('render-store'),
      name: 'render-store',
      description: `${document.info.description}\n\nRun top to bottom (Runner or \`newman run ... --working-dir postman\`): set baseUrl, and apiKey when the service has API keys. The upload requests send ${SAMPLE_VIDEO}, next to this file.`,
      schema: 'https://schema.getpostman.com/json/collection/v2.1.0/collection.json'
    },
    auth: { type: 'bearer', bearer: [{ key: 'token', value: '{{apiKey}}', type: 'string' }] },
    event: [script('prerequest', ["if (!pm.collectionVariables.get('videoId')) pm.collectionVariables.set('videoId', 'postman-' + Date.now());"])],
    variable: VARIABLES.map((variable) => ({ ...variable, type: 'string' })),
    item: [...folders].map(([name, items]) => ({ id: stableId(`folder/${name}`), name, item: items }))
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const collection = buildCollection(readFileSync(join(root, 'openapi.yaml'), 'utf8'))
  mkdirSync(dirname(COLLECTION_PATH), { recursive: true })
  writeFileSync(COLLECTION_PATH, `${JSON.stringify(collection, null, 2)}\n`)
  process.stdout.write(`wrote ${COLLECTION_PATH}\n`)
}
