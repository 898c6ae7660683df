import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { createApiKeyVerifier, loadApiKeys, type ApiKey } from './api-keys.js'
import { ConfigError } from '../config.js'
import { HttpProblem } from '../errors.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** the API key this request presented, when keys are configured */
    apiKey?: ApiKey
  }
  interface FastifyContextConfig {
    /** open without a key (health checks) */
    public?: boolean
  }
}

const OPEN_PREFIXES = ['/openapi.', '/docs']
// The scheme name is case-insensitive (RFC 9110 11.1).
const PROJECT_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/
const BEARER = /^Bearer ([\x21-\x7e]{1,512})$/i

const unauthorized = (detail: string): HttpProblem =>
  new HttpProblem(401, 'Unauthorized', detail, { headers: { 'www-authenticate': 'Bearer realm="render-store"' } })
const forbidden = (detail: string): HttpProblem => new HttpProblem(403, 'Forbidden', detail)

/** Open routes: marked public, or the API document and its UI (matched on the route pattern, not the raw URL). */
function isOpen (request: FastifyRequest): boolean {
  if (request.routeOptions.config?.public === true) return true
  const pattern = request.routeOptions.url
  return pattern !== undefined && OPEN_PREFIXES.some((prefix) => pattern.startsWith(prefix))
}

/**
 * Bearer API keys, checked in onRequest so a refused request is answered before its body is read.
 * Keys come from API_KEYS_FILE; with none, local mode runs open (warned once) and AWS mode refuses to start
 * unless ALLOW_ANONYMOUS=true.
 */
export default fp(async function authPlugin (app) {
  const config = app.config
  const keys = config.apiKeysFile !== undefined ? loadApiKeys(config.apiKeysFile) : []
  if (keys.length === 0) {
    if (config.mode === 'aws' && !config.allowAnonymous) {
      throw new ConfigError('Invalid configuration: API_KEYS_FILE must name at least one key when using AWS (or set ALLOW_ANONYMOUS=true to run open on purpose)')
    }
    app.log.warn('NO API KEYS CONFIGURED: every route is open to anyone who can reach this port. Set API_KEYS_FILE to require keys.')
    return
  }
  const verifier = createApiKeyVerifier(keys)
  app.log.info({ keys: keys.map((key) => key.id) }, `API keys required (${keys.length} configured)`)

  // Refused requests count against the rate limit too (by key, or by address for a wrong key): guessing keys is
  // limited like anything else. The limiter marks the request, so it is never counted twice.
  const limiter = (app as unknown as { rateLimit?: () => (request: FastifyRequest, reply: FastifyReply) => Promise<void> }).rateLimit?.()
  app.addHook('onRequest', async (request, reply) => {
    // CORS preflights carry no credentials by design; no OPTIONS route serves data.
    if (request.method === 'OPTIONS' || isOpen(request)) return
    try {
      authenticate(request, reply)
    } catch (error) {
      if (limiter !== undefined) await limiter(request, reply)
      throw error
    }
  })

  function authenticate (request: FastifyRequest, reply: FastifyReply): void {
    const header = request.headers.authorization
    if (header === undefined) throw unauthorized('An API key is required: send Authorization: Bearer <key>.')
    const token = BEARER.exec(header)?.[1]
    const key = token === undefined ? undefined : verifier.identify(token)
    if (key === undefined) throw unauthorized('The API key is not valid.')
    request.apiKey = key
    request.log = request.log.child({ apiKeyId: key.id })
    reply.log = request.log
    const projectId = (request.params as { projectId?: string } | undefined)?.projectId
    // The project id is echoed only when it is a well-formed id: a refused request's raw input (NUL bytes, markup) is not.
    if (!verifier.mayTouch(key, projectId)) throw forbidden(`The API key "${key.id}" may not access ${projectId !== undefined && PROJECT_ID.test(projectId) ? `project "${projectId}"` : 'this project'}.`)
    const scope = request.method === 'GET' || request.method === 'HEAD' ? 'read' : 'write'
    if (!verifier.hasScope(key, scope)) throw forbidden(`The API key "${key.id}" does not have the ${scope} scope.`)
  }
}, { name: 'auth', dependencies: ['aws'] })
