import fp from 'fastify-plugin'
import { createCodeStore, type CodeStore } from '../code-store.js'

declare module 'fastify' {
  interface FastifyInstance {
    codeStore: CodeStore
  }
}

export default fp(async function codeStorePlugin (app) {
  app.decorate('codeStore', createCodeStore({ aws: app.aws, config: app.config, log: app.log }))
}, { name: 'code-store', dependencies: ['aws'] })
