import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import { readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { extname } from 'node:path'

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.map': 'application/json; charset=utf-8'
}

// Third-party browser code the page loads, served from node_modules (no CDN, no bundler): under /ui/vendor/{name}.
// tus-js-client's prebuilt UMD build defines the global `tus` (ui/upload.js); its source map for the browser's tools.
const VENDOR_FILES: Record<string, string> = {
  'tus.min.js': 'tus-js-client/dist/tus.min.js',
  'tus.min.js.map': 'tus-js-client/dist/tus.min.js.map'
}

// Scripts and styles from this origin only; videos come from presigned S3 URLs on another origin.
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; media-src 'self' http: https:; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache'
}

/** ui/ beside routes/ (source) or two levels up from dist/routes/ (compiled). */
function findUiDirectory (): URL {
  for (const relative of ['../ui/', '../../ui/']) {
    const url = new URL(relative, import.meta.url)
    try {
      readdirSync(url)
      return url
    } catch {}
  }
  throw new Error('the ui/ directory of the web page is missing')
}

/** The web page: ui/*.html|js|css|svg and the vendor files read once at start and served from memory under /ui. */
const uiRoutes: FastifyPluginAsync = async (app) => {
  const directory = findUiDirectory()
  const files = new Map<string, { body: Buffer, type: string }>()
  for (const name of readdirSync(directory)) {
    const type = CONTENT_TYPES[extname(name)]
    if (type !== undefined) files.set(name, { body: readFileSync(new URL(name, directory)), type })
  }
  const resolve = createRequire(import.meta.url).resolve
  for (const [name, module] of Object.entries(VENDOR_FILES)) {
    files.set(`vendor/${name}`, { body: readFileSync(resolve(module)), type: CONTENT_TYPES[extname(name)] })
  }
  const index = files.get('index.html')
  if (index === undefined) throw new Error('ui/index.html is missing')

  const send = (reply: FastifyReply, file: { body: Buffer, type: string }): FastifyReply => reply.headers(SECURITY_HEADERS).type(file.type).send(file.body)
  const options = { config: { public: true }, schema: { hide: true } }

  app.get('/ui', options, async (_request, reply) => send(reply, index))
  // Assets by name; any other path under /ui is a page of the app (hash and path links both land on index.html).
  app.get<{ Params: { '*': string } }>('/ui/*', options, async (request, reply) => {
    const asset = files.get(request.params['*'])
    if (asset !== undefined) return send(reply, asset)
    if (extname(request.params['*']) !== '') return reply.callNotFound()
    return send(reply, index)
  })
}

export default uiRoutes
