import fp from 'fastify-plugin'
import { createDirectUploads, type DirectUploads } from './direct.js'

declare module 'fastify' {
  interface FastifyInstance {
    directUploads: DirectUploads
  }
}

/** Direct-to-S3 upload sessions, on top of the shared upload sessions and render versions. */
export default fp(async function directUploadsPlugin (app) {
  app.decorate('directUploads', createDirectUploads({ aws: app.aws, config: app.config, sessions: app.uploadSessions, renders: app.renderVersions, log: app.log }))
}, { name: 'direct-uploads', dependencies: ['aws', 'render-versions'] })
