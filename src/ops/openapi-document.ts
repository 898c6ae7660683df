// How the route schemas become a clean OpenAPI document (used by src/http/openapi.ts through @fastify/swagger's
// `transform` and `transformObject`): every schema with an `$id` becomes one named component referenced by `$ref`
// (no `def-N`, no copy of the problem schema per response), every operation gets an operationId, raw request
// bodies the content-type parsers take are declared, the bearer key is optional where the service may run open.
import { STATUS_CODES } from 'node:http'

/** The few parts of an OpenAPI 3.1 document this file touches. */
interface Parameter { in: string, name: string, required?: boolean, schema?: { default?: unknown } }
interface Operation { operationId?: string, tags?: string[], parameters?: Array<Parameter | Ref>, responses?: Record<string, unknown>, security?: Array<Record<string, string[]>>, requestBody?: { required?: boolean, content?: Record<string, unknown> } }
interface Document {
  info: Record<string, unknown>
  servers?: Array<{ url: string, description?: string }>
  components?: { schemas?: Record<string, unknown>, responses?: Record<string, unknown>, parameters?: Record<string, unknown>, headers?: Record<string, unknown>, securitySchemes?: Record<string, { description?: string }> }
  paths: Record<string, Record<string, Operation>>
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json }
type JsonObject = { [key: string]: Json }

const MARK = 'x-component'
const PARAMETER_PARTS = new Set(['params', 'querystring', 'headers'])

/** A JSON copy of a route schema where each `$id` is a component marker (TypeBox's symbol keys are dropped). */
function mark (node: unknown, top = false): Json {
  if (Array.isArray(node)) return node.map((child) => mark(child))
  if (node === null || typeof node !== 'object') return node as Json
  const copy: JsonObject = {}
  for (const [key, value] of Object.entries(node)) {
    if (value === undefined || typeof value === 'function') continue
    if (key === '$id') {
      // The parameter objects are spread into one parameter per property: a name on the whole object means nothing.
      if (!top && typeof value === 'string') copy[MARK] = value
      continue
    }
    copy[key] = mark(value)
  }
  return copy
}

/** @fastify/swagger's per-route `transform`: $id'd schemas become markers that finishDocument turns into $refs. */
export function markRouteSchema ({ schema, url }: { schema: unknown, url: string }): { schema: JsonObject, url: string } {
  const copy = mark(schema) as JsonObject
  for (const part of PARAMETER_PARTS) {
    if (copy[part] !== undefined) copy[part] = mark((schema as Record<string, unknown>)[part], true)
  }
  return { schema: copy, url }
}

/** Replaces every marked schema (deepest first) by a $ref to one component of that name. */
function hoist (node: Json, components: Record<string, Json>): Json {
  if (Array.isArray(node)) return node.map((child) => hoist(child, components))
  if (node === null || typeof node !== 'object') return node
  const copy: JsonObject = {}
  for (const [key, value] of Object.entries(node)) if (key !== MARK) copy[key] = hoist(value, components)
  const name = node[MARK]
  if (typeof name !== 'string') return copy
  const known = components[name]
  if (known !== undefined && JSON.stringify(known) !== JSON.stringify(copy)) {
    throw new Error(`two different schemas are named ${name}: give one of them another $id`)
  }
  components[name] = copy
  return { $ref: `#/components/schemas/${name}` }
}

interface Ref { $ref: string }
const isRef = (value: unknown): value is Ref => typeof value === 'object' && value !== null && '$ref' in value

/** `idempotency-key` → `IdempotencyKey`, `Too Many Requests` → `TooManyRequests`. */
const pascal = (text: string): string => text.split(/[^A-Za-z0-9]+/).filter(Boolean).map((word) => word[0].toUpperCase() + word.slice(1)).join('')

/**
 * The problem+json answer every error status shares becomes one response component per status (`Unauthorized`,
 * `NotFound` …), a parameter used alike by several operations one parameter component, and a response header carried
 * alike by several answers one header component: one definition each,
 * where a generated client finds them, instead of a copy in every operation.
 */
function shareResponsesAndParameters (paths: Document['paths']): { responses: Record<string, unknown>, parameters: Record<string, unknown>, headers: Record<string, unknown> } {
  const responses: Record<string, unknown> = {}
  const problem = JSON.stringify({ description: 'RFC 9457 problem details', content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } })
  const operations = Object.values(paths).flatMap((item) => Object.values(item))
  // name → (its JSON → how many operations use it alike, and the tag of the first): one name may mean two things,
  // e.g. `uploadId` of a direct upload and of a tus upload; then each is named after its tag (`TusUploadId`).
  const uses = new Map<string, Map<string, { count: number, tag: string }>>()
  for (const operation of operations) {
    for (const parameter of operation.parameters ?? []) {
      if (isRef(parameter)) continue
      const name = pascal(parameter.name)
      const text = JSON.stringify(parameter)
      const variants = uses.get(name) ?? new Map<string, { count: number, tag: string }>()
      uses.set(name, variants)
      const seen = variants.get(text)
      if (seen === undefined) variants.set(text, { count: 1, tag: operation.tags?.[0] ?? '' })
      else seen.count++
    }
  }
  const parameters: Record<string, unknown> = {}
  const parameterNames = new Map<string, string>()
  for (const [name, variants] of uses) {
    for (const [text, { count, tag }] of variants) {
      if (count < 2) continue
      const component = variants.size === 1 ? name : pascal(tag) + name
      if (parameters[component] !== undefined) continue
      parameters[component] = JSON.parse(text)
      parameterNames.set(text, component)
    }
  }
  // A response header several answers carry alike (Tus-Resumable, Upload-Expires …) is one header component.
  const headerUses = new Map<string, Map<string, number>>()
  for (const operation of operations) {
    for (const response of Object.values(operation.responses ?? {})) {
      for (const [name, header] of Object.entries((response as { headers?: Record<string, unknown> }).headers ?? {})) {
        if (isRef(header)) continue
        const variants = headerUses.get(name) ?? new Map<string, number>()
        headerUses.set(name, variants)
        const text = JSON.stringify(header)
        variants.set(text, (variants.get(text) ?? 0) + 1)
      }
    }
  }
  const headers: Record<string, unknown> = {}
  const headerNames = new Map<string, string>()
  for (const [name, variants] of headerUses) {
    // Only a header with one meaning everywhere is shared (Upload-Offset says "bytes stored so far" or "the new offset").
    if (variants.size !== 1) continue
    const [[text, count]] = [...variants]
    if (count < 2) continue
    headers[pascal(name)] = JSON.parse(text)
    headerNames.set(`${name} ${text}`, pascal(name))
  }
  for (const operation of operations) {
    operation.parameters = operation.parameters?.map((parameter) => {
      const component = isRef(parameter) ? undefined : parameterNames.get(JSON.stringify(parameter))
      return component !== undefined ? { $ref: `#/components/parameters/${component}` } : parameter
    })
    for (const [status, response] of Object.entries(operation.responses ?? {})) {
      const withHeaders = response as { headers?: Record<string, unknown> }
      if (withHeaders.headers !== undefined) {
        withHeaders.headers = Object.fromEntries(Object.entries(withHeaders.headers).map(([name, header]) => {
          const component = headerNames.get(`${name} ${JSON.stringify(header)}`)
          return [name, component !== undefined ? { $ref: `#/components/headers/${component}` } : header]
        }))
      }
      const reason = STATUS_CODES[status] ?? EXTRA_STATUS[status]
      if (JSON.stringify(response) !== problem || reason === undefined) continue
      const name = pascal(reason)
      responses[name] = { ...JSON.parse(problem), description: `${status} ${reason}: RFC 9457 problem details` }
      operation.responses![status] = { $ref: `#/components/responses/${name}` }
    }
  }
  const sortedKeys = (record: Record<string, unknown>): Record<string, unknown> => Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)))
  return { responses: sortedKeys(responses), parameters: sortedKeys(parameters), headers: sortedKeys(headers) }
}

/** Statuses Node does not name: tus's 460 (https://tus.io/protocols/resumable-upload#checksum). */
const EXTRA_STATUS: Record<string, string> = { 460: 'Checksum Mismatch' }

/** Names an operation by hand where a client reads it; any route not listed gets a name built from its path. */
const OPERATION_IDS: Record<string, string> = {
  'get /health': 'getLiveness',
  'get /health/ready': 'getReadiness',
  'get /v1/projects/{projectId}/videos': 'listVideos',
  'put /v1/projects/{projectId}/videos/{videoId}': 'putVideo',
  'get /v1/projects/{projectId}/videos/{videoId}': 'getVideo',
  'patch /v1/projects/{projectId}/videos/{videoId}': 'patchVideo',
  'delete /v1/projects/{projectId}/videos/{videoId}': 'deleteVideo',
  'post /v1/projects/{projectId}/videos/{videoId}/renders': 'uploadRender',
  'get /v1/projects/{projectId}/videos/{videoId}/renders': 'listRenders',
  'get /v1/projects/{projectId}/videos/{videoId}/renders/{version}': 'getRender',
  'get /v1/projects/{projectId}/videos/{videoId}/renders/{version}/content': 'downloadRender',
  'put /v1/projects/{projectId}/videos/{videoId}/renders/{version}/scenes/{sceneNumber}': 'uploadSceneClip',
  'get /v1/projects/{projectId}/videos/{videoId}/progress': 'getUploadProgress',
  'get /v1/projects/{projectId}/videos/{videoId}/status': 'getVideoStatus',
  'post /v1/projects/{projectId}/videos/{videoId}/uploads': 'createDirectUpload',
  'get /v1/projects/{projectId}/videos/{videoId}/uploads/{uploadId}': 'getDirectUpload',
  'delete /v1/projects/{projectId}/videos/{videoId}/uploads/{uploadId}': 'abortDirectUpload',
  'post /v1/projects/{projectId}/videos/{videoId}/uploads/{uploadId}/complete': 'completeDirectUpload',
  'post /v1/projects/{projectId}/videos/{videoId}/code': 'createCodeVersion',
  'get /v1/projects/{projectId}/videos/{videoId}/code': 'getLatestCode',
  'get /v1/projects/{projectId}/videos/{videoId}/code/versions': 'listCodeVersions',
  'get /v1/projects/{projectId}/videos/{videoId}/code/versions/{version}': 'getCodeVersion',
  'get /v1/projects/{projectId}/videos/{videoId}/code/versions/{version}/diff': 'diffCodeVersions',
  'put /v1/projects/{projectId}/videos/{videoId}/code/versions/{version}/lock': 'lockCodeVersion',
  'post /v1/projects/{projectId}/videos/{videoId}/uploads/{uploadId}/parts': 'signUploadParts',
  'options /v1/projects/{projectId}/videos/{videoId}/tus': 'tusOptions',
  'post /v1/projects/{projectId}/videos/{videoId}/tus': 'tusCreate',
  'options /v1/projects/{projectId}/videos/{videoId}/tus/{uploadId}': 'tusUploadOptions',
  'head /v1/projects/{projectId}/videos/{videoId}/tus/{uploadId}': 'tusHead',
  'patch /v1/projects/{projectId}/videos/{videoId}/tus/{uploadId}': 'tusPatch',
  'delete /v1/projects/{projectId}/videos/{videoId}/tus/{uploadId}': 'tusTerminate',
  'get /v1/projects/{projectId}/threads': 'listThreads',
  'delete /v1/projects/{projectId}/threads/{threadId}': 'deleteThread',
  'get /v1/projects/{projectId}/threads/{threadId}/checkpoints': 'listCheckpoints',
  'get /v1/projects/{projectId}/threads/{threadId}/checkpoints/{checkpointId}': 'getCheckpoint',
  'put /v1/projects/{projectId}/threads/{threadId}/checkpoints/{checkpointId}': 'putCheckpoint',
  'put /v1/projects/{projectId}/threads/{threadId}/checkpoints/{checkpointId}/writes/{taskId}': 'putCheckpointWrites'
}

/** e.g. `post /v1/projects/{projectId}/videos/{videoId}/uploads/{uploadId}/parts` → `postUploadsParts`. */
function derivedOperationId (method: string, path: string): string {
  const words = path.split('/').filter((part) => part !== '' && part !== 'v1' && part !== 'projects' && part !== 'videos' && !part.startsWith('{'))
  return method + words.map((word) => word.replace(/(^|[^A-Za-z0-9])([a-z0-9])/g, (_match, _sep: string, char: string) => char.toUpperCase())).join('')
}

/**
 * Raw bodies some routes take through their own content-type parsers, which Fastify does not validate against
 * a schema (so the route schema cannot declare them): documented here, next to the JSON the schema declares.
 */
const RAW_BODIES: Record<string, Record<string, unknown>> = {
  'post /v1/projects/{projectId}/videos/{videoId}/code': {
    // A media range: any text/* type (text/plain, text/x-python …) is taken as the raw code.
    'text/*': {
      schema: { type: 'string', description: 'the code itself (UTF-8, any text/* type), with X-Filename and X-Base-Version headers' },
      example: 'from manim import *\n\nclass Intro(Scene):\n    def construct(self):\n        self.play(Write(Text("hello")))\n'
    }
  }
}

/**
 * Bodies a route takes but does not need (@fastify/swagger marks every declared body required): a tus creation
 * POST usually has none; only creation-with-upload sends the first bytes with it.
 */
const OPTIONAL_BODIES = new Set(['post /v1/projects/{projectId}/videos/{videoId}/tus'])

const SERVERS: Document['servers'] = [
  { url: 'http://127.0.0.1:3000', description: 'a local service (`npm start`, HOST and PORT as configured)' }
]

const OPEN_WHEN_EMBEDDED = 'The bearer key is required when the service runs with API keys (API_KEYS_FILE); a service without ' +
  'them (the embedded default) takes requests without one. Both are listed, so a client may send the key or not.'

/** @fastify/swagger's `transformObject`: the finishing touches on the whole document. */
export function finishDocument ({ openapiObject }: { openapiObject: unknown }): Document {
  const document = openapiObject as Document
  const components: Record<string, Json> = { ...(document.components?.schemas as Record<string, Json> | undefined) }
  const paths = hoist(document.paths as unknown as Json, components) as unknown as Document['paths']
  for (const [path, item] of Object.entries(paths)) {
    for (const [method, operation] of Object.entries(item)) {
      const key = `${method} ${path}`
      operation.operationId ??= OPERATION_IDS[key] ?? derivedOperationId(method, path)
      // Validation fills in a default (Ajv's useDefaults), so a parameter with one need not be sent.
      for (const parameter of operation.parameters ?? []) {
        if (!isRef(parameter) && parameter.in !== 'path' && parameter.schema?.default !== undefined) parameter.required = false
      }
      if (OPTIONAL_BODIES.has(key) && operation.requestBody !== undefined) operation.requestBody.required = false
      const raw = RAW_BODIES[key]
      if (raw !== undefined && operation.requestBody !== undefined) {
        operation.requestBody.content = { ...operation.requestBody.content, ...raw }
      }
      if (operation.security?.some((requirement) => 'apiKey' in requirement) === true) {
        operation.security = [{ apiKey: [] }, {}]
      }
    }
  }
  const shared = shareResponsesAndParameters(paths)
  const sorted = Object.fromEntries(Object.entries(components).sort(([a], [b]) => a.localeCompare(b)))
  const securitySchemes = document.components?.securitySchemes ?? {}
  const apiKey = securitySchemes.apiKey
  return {
    ...document,
    info: { ...document.info, license: { name: 'UNLICENSED: private, all rights reserved (see package.json)' } },
    servers: document.servers?.length !== undefined && document.servers.length > 0 ? document.servers : SERVERS,
    components: {
      ...document.components,
      schemas: sorted,
      responses: { ...document.components?.responses, ...shared.responses },
      parameters: { ...document.components?.parameters, ...shared.parameters },
      headers: { ...document.components?.headers, ...shared.headers },
      securitySchemes: apiKey === undefined ? securitySchemes : { ...securitySchemes, apiKey: { ...apiKey, description: `${apiKey.description ?? 'an API key'}. ${OPEN_WHEN_EMBEDDED}` } }
    },
    paths
  }
}
