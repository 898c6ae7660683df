// Server-side encryption: the parameters every object write carries (none when S3_SSE=none).
import type { Config } from '../config.js'

export function encryptionParams (config: Pick<Config, 'sse'>): { ServerSideEncryption?: 'AES256' | 'aws:kms', SSEKMSKeyId?: string } {
  if (config.sse.algorithm === 'none') return {}
  return { ServerSideEncryption: config.sse.algorithm, ...(config.sse.kmsKeyId !== undefined ? { SSEKMSKeyId: config.sse.kmsKeyId } : {}) }
}
