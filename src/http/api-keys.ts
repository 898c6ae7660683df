// API keys: loaded from the file API_KEYS_FILE names (SHA-256 hashes only, never the keys), matched in constant time.
import { createHash, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Type, type Static } from 'typebox'
import { schemaCheck, type SchemaCheck } from '../schema-check.js'
import { ConfigError } from '../config.js'

export const ApiKeyEntry = Type.Object({
  id: Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$' }),
  sha256: Type.String({ pattern: '^[0-9a-fA-F]{64}$' }),
  projects: Type.Array(Type.String({ pattern: '^(\\*|[A-Za-z0-9][A-Za-z0-9_-]{0,127})$' }), { minItems: 1 }),
  scopes: Type.Array(Type.Union([Type.Literal('read'), Type.Literal('write')]), { minItems: 1 })
}, { additionalProperties: false })
export const ApiKeysFile = Type.Array(ApiKeyEntry)
export type ApiKey = Static<typeof ApiKeyEntry>
export type Scope = 'read' | 'write'

let checkKeysFile: SchemaCheck | undefined

/** Reads and validates the keys file; any problem is one ConfigError line naming the file and the fault. */
export function loadApiKeys (file: string): ApiKey[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'))
  } catch (error) {
    throw new ConfigError(`Invalid configuration: API_KEYS_FILE=${JSON.stringify(file)} cannot be read as JSON (${(error as Error).message.split('\n')[0]})`)
  }
  checkKeysFile ??= schemaCheck(ApiKeysFile)
  const firstError = checkKeysFile(parsed)
  if (firstError !== undefined) {
    throw new ConfigError(`Invalid configuration: API_KEYS_FILE=${JSON.stringify(file)} at ${firstError.instancePath || '/'} ${firstError.message}; expected [{ id, sha256, projects, scopes }]`)
  }
  const keys = parsed as ApiKey[]
  const ids = new Set<string>()
  for (const key of keys) {
    if (ids.has(key.id)) throw new ConfigError(`Invalid configuration: API_KEYS_FILE=${JSON.stringify(file)} repeats the key id ${JSON.stringify(key.id)}`)
    ids.add(key.id)
  }
  return keys
}

export function hashApiKey (key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex')
}

export function createApiKeyVerifier (keys: ApiKey[]) {
  const hashes = keys.map((key) => Buffer.from(key.sha256.toLowerCase(), 'hex'))

  /** The configured key this bearer token is, or undefined; every hash is compared, so timing says nothing of which matched. */
  function identify (token: string): ApiKey | undefined {
    const presented = createHash('sha256').update(token, 'utf8').digest()
    let found = -1
    hashes.forEach((hash, index) => {
      if (timingSafeEqual(hash, presented) && found === -1) found = index
    })
    return found === -1 ? undefined : keys[found]
  }

  function mayTouch (key: ApiKey, projectId: string | undefined): boolean {
    return projectId === undefined || key.projects.includes('*') || key.projects.includes(projectId)
  }

  function hasScope (key: ApiKey, scope: Scope): boolean {
    return key.scopes.includes(scope)
  }

  return { identify, mayTouch, hasScope, count: keys.length }
}

export type ApiKeyVerifier = ReturnType<typeof createApiKeyVerifier>
