import fp from 'fastify-plugin'
import { createUploadSessions, type UploadSessions } from '../upload-sessions.js'
import { createRenderVersions, type RenderVersions } from '../render-versions.js'
import { createVersionClaims } from '../video-records.js'

declare module 'fastify' {
  interface FastifyInstance {
    uploadSessions: UploadSessions
    renderVersions: RenderVersions
  }
}

/** The render side of the store: upload sessions and render versions, shared by proxied and direct uploads. */
export default fp(async function renderStorePlugin (app) {
  const claims = createVersionClaims({ ddb: app.aws.ddb, table: app.config.table })
  app.decorate('uploadSessions', createUploadSessions({ aws: app.aws, config: app.config }))
  app.decorate('renderVersions', createRenderVersions({ aws: app.aws, config: app.config, claims }))
}, { name: 'render-store', dependencies: ['aws'] })
