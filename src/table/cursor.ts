// List cursors: the position after a page, as an opaque base64url string the client passes back unchanged.
import { badRequest } from '../errors.js'

export function encodeCursor (position: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify(position)).toString('base64url')
}

/**
 * Reads a cursor back. One that does not decode is a 400; so is one `accept` refuses (it answers undefined), with
 * `whose` saying for what the cursor was expected (" for this video").
 */
export function decodeCursor<T> (cursor: string, accept: (position: Record<string, unknown>) => T | undefined, whose = ''): T {
  let decoded: unknown
  try {
    decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch {
    throw badRequest('cursor is not one this service issued')
  }
  const accepted = typeof decoded === 'object' && decoded !== null && !Array.isArray(decoded) ? accept(decoded as Record<string, unknown>) : undefined
  if (accepted === undefined) throw badRequest(`cursor is not one this service issued${whose}`)
  return accepted
}
