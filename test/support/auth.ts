// API keys for tests: a keys file in a temp dir holding hashes of known keys.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { hashApiKey } from '../../src/http/api-keys.js'

type Test = { teardown: (fn: () => unknown) => void }

export const KEYS = {
  admin: 'rs_admin_9f8e7d6c5b4a',
  writer: 'rs_writer_p1_0a1b2c3d',
  reader: 'rs_reader_all_77aa88bb'
}

/** admin: every project, read+write; writer: project p1 only, read+write; reader: every project, read only. */
export function writeKeysFile (t: Test): string {
  const directory = mkdtempSync(join(tmpdir(), 'render-store-keys-'))
  t.teardown(() => { rmSync(directory, { recursive: true, force: true }) })
  const file = join(directory, 'keys.json')
  writeFileSync(file, JSON.stringify([
    { id: 'admin', sha256: hashApiKey(KEYS.admin), projects: ['*'], scopes: ['read', 'write'] },
    { id: 'writer-p1', sha256: hashApiKey(KEYS.writer), projects: ['p1'], scopes: ['read', 'write'] },
    { id: 'reader', sha256: hashApiKey(KEYS.reader), projects: ['*'], scopes: ['read'] }
  ]))
  return file
}

export const bearer = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` })
