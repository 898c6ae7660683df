// What a code file is: its name, its type by extension, and the checks its bytes must pass.
import { createHash } from 'node:crypto'
import { extname } from 'node:path'
import { badRequest, payloadTooLarge } from '../errors.js'
import { FILENAME_PATTERN } from '../../schemas/code.js'

const TYPES: Record<string, { contentType: string, language?: string }> = {
  '.py': { contentType: 'text/x-python', language: 'python' },
  '.js': { contentType: 'text/javascript', language: 'javascript' },
  '.mjs': { contentType: 'text/javascript', language: 'javascript' },
  '.ts': { contentType: 'text/x-typescript', language: 'typescript' },
  '.json': { contentType: 'application/json', language: 'json' },
  '.yaml': { contentType: 'application/yaml', language: 'yaml' },
  '.yml': { contentType: 'application/yaml', language: 'yaml' },
  '.md': { contentType: 'text/markdown', language: 'markdown' },
  '.sh': { contentType: 'text/x-shellscript', language: 'shell' },
  '.html': { contentType: 'text/html', language: 'html' },
  '.css': { contentType: 'text/css', language: 'css' },
  '.txt': { contentType: 'text/plain' }
}

const filenamePattern = new RegExp(FILENAME_PATTERN)

/** The file name a version is stored under: the given one, or {videoId}.py / {videoId}_scene{n}.py. */
export function resolveFilename (videoId: string, filename?: string, sceneNumber?: number): string {
  if (filename !== undefined) {
    if (!filenamePattern.test(filename)) throw badRequest(`filename ${JSON.stringify(filename)} must be a plain file name matching ${FILENAME_PATTERN}`)
    return filename
  }
  return sceneNumber === undefined ? `${videoId}.py` : `${videoId}_scene${sceneNumber}.py`
}

/** Content type (always UTF-8) and language implied by the file's extension. */
export function describeFile (filename: string): { contentType: string, language?: string } {
  const known = TYPES[extname(filename).toLowerCase()] ?? TYPES['.txt']
  return { contentType: `${known.contentType}; charset=utf-8`, language: known.language }
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** The bytes to store and their text; refuses empty, oversized and non-UTF-8 content before anything is written. */
export function checkContent (content: Buffer | string, maxBytes: number): { bytes: Buffer, text: string } {
  const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content
  if (bytes.length === 0) throw badRequest('the code is empty')
  if (bytes.length > maxBytes) throw payloadTooLarge(`the code is ${bytes.length} bytes; the maximum is ${maxBytes}`)
  if (typeof content === 'string') {
    if (LONE_SURROGATE.test(content)) throw badRequest('the code is not valid UTF-8 (it holds a lone surrogate)')
    return { bytes, text: content }
  }
  try {
    return { bytes, text: strictUtf8.decode(bytes) }
  } catch {
    throw badRequest('the code is not valid UTF-8')
  }
}

export function sha256Hex (bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex')
}
