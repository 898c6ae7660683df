import fp from 'fastify-plugin'
import { createRenderUploads, type RenderUploads } from '../uploads/proxied.js'
import { createRenderVersions, type RenderVersions } from './store.js'
import { createUploadSessions, type UploadSessions } from '../uploads/sessions.js'
import { createVideoStatus, type VideoStatusReader } from '../videos/status.js'

declare module 'fastify' {
  interface FastifyInstance {
    uploadSessions: UploadSessions
    renderVersions: RenderVersions
    renderUploads: RenderUploads
    videoStatus: VideoStatusReader
  }
}

/** The render side of the store: upload sessions, render versions and proxied uploads, shared by every upload flow. */
export default fp(async function renderStorePlugin (app) {
  const sessions = createUploadSessions({ aws: app.aws, config: app.config, log: app.log })
  const renders = createRenderVersions({ aws: app.aws, config: app.config, log: app.log })
  app.decorate('uploadSessions', sessions)
  app.decorate('renderVersions', renders)
  app.decorate('renderUploads', createRenderUploads({ aws: app.aws, config: app.config, sessions, renders, log: app.log }))
  app.decorate('videoStatus', createVideoStatus({ aws: app.aws, config: app.config, sessions, health: app.health }))
}, { name: 'render-versions', dependencies: ['aws', 'health'] })
