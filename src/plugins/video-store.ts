import fp from 'fastify-plugin'
import { createVideoStore, type VideoStore } from '../video-store.js'

declare module 'fastify' {
  interface FastifyInstance {
    videoStore: VideoStore
  }
}

export default fp(async function videoStorePlugin (app) {
  app.decorate('videoStore', createVideoStore({ aws: app.aws, config: app.config }))
}, { name: 'video-store', dependencies: ['aws'] })
