// The CheckpointerTestInitializer LangChain's conformance suite (@langchain/langgraph-checkpoint-validation) loads:
// each checkpointer it asks for is a RenderStoreCheckpointSaver on a project of its own, so their states never mix,
// against the listening service named by RENDER_STORE_URL (test/agents/checkpoint-conformance.test.ts starts one).
import { randomUUID } from 'node:crypto'
import { RenderStoreCheckpointSaver } from '../../../src/agents/checkpoint-saver.js'

const baseUrl = process.env.RENDER_STORE_URL
if (baseUrl === undefined || baseUrl === '') throw new Error('RENDER_STORE_URL must name a listening render-store')

export default {
  checkpointerName: 'RenderStoreCheckpointSaver',
  createCheckpointer: () => new RenderStoreCheckpointSaver({
    baseUrl,
    apiKey: process.env.RENDER_STORE_API_KEY,
    projectId: `conformance-${randomUUID().slice(0, 8)}`,
    retry: { retries: 2, initialDelayMs: 100 }
  })
}
