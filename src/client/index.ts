// The render-store client as one import: `import { RenderStoreClient } from './client/index.js'`.
export { RenderStoreClient, type RenderStoreClientOptions, type CallOptions, type CompleteOptions, type Replayed, type UploadOptions, type RenderUploadOptions } from './render-store-client.js'
export { RenderStoreError, isRetryableStatus, isPermanentAnswer, parseRetryAfter, type Problem } from './errors.js'
export { uploadRenderDirect, defaultStateDir, sessionFileFor, readSavedSession, type DirectUploadOptions, type DirectUploadDefaults, type SavedSession, type WarningCallback } from './direct/upload.js'
export { withRetry, retryDelayMs, DEFAULT_RETRY, type RetryOptions } from './retry.js'
export { openSource, percentageOf, type ProgressCallback, type UploadSource } from './upload-body.js'
export type * from './types.js'
export { uploadRenderTus, type TusUploadOptions } from './tus.js'
