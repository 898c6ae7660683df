// The video-generation graph: code generator -> renderer -> summary, each enhanced node looping on itself only
// while a person must decide (human loop), so a resume re-runs the node that asked and nothing else.
import { END, MemorySaver, START, StateGraph, type BaseCheckpointSaver } from '@langchain/langgraph'
import { EnhancedCodeGeneratorAgent } from './enhanced-code-generator-agent.js'
import { EnhancedRendererAgent } from './enhanced-renderer-agent.js'
import type { AgentConfig, ServiceConfig, SystemConfig } from './config.js'
import { VideoGenerationState, type VideoState, type VideoStateUpdate } from './state.js'

export interface VideoGraphOptions {
  codeGenerator: EnhancedCodeGeneratorAgent
  renderer: EnhancedRendererAgent
  /** needed by the human loop (interrupt/resume); a MemorySaver by default */
  checkpointer?: BaseCheckpointSaver
}

/** The last node: a one-line outcome, proof that the graph went on past any degraded step. */
export function summaryNode (state: VideoState): VideoStateUpdate {
  const outcome = `code ${state.code_upload_status} (version ${state.version}), upload ${state.upload_status}` +
    (state.aws_upload_results.render_version !== undefined ? ` (render ${String(state.aws_upload_results.render_version)})` : '')
  return { completed_steps: ['summary'], warnings: state.errors.length > 0 ? [{ step: 'summary', message: `finished with ${state.errors.length} error(s): ${outcome}` }] : [] }
}

/** Compiles the graph; invoke it with `{ configurable: { thread_id } }`. */
export function buildVideoGraph (options: VideoGraphOptions) {
  const { codeGenerator, renderer } = options
  return new StateGraph(VideoGenerationState)
    .addNode('code_generator', codeGenerator.node)
    .addNode('renderer', renderer.node)
    .addNode('summary', summaryNode)
    .addEdge(START, 'code_generator')
    .addConditionalEdges('code_generator', codeGenerator.route('renderer'), ['code_generator', 'renderer'])
    .addConditionalEdges('renderer', renderer.route('summary'), ['renderer', 'summary'])
    .addEdge('summary', END)
    .compile({ checkpointer: options.checkpointer ?? new MemorySaver() })
}

/** Both agents over one configuration, named as the graph expects. */
export function createVideoAgents (agentConfig: Omit<AgentConfig, 'name'>, systemConfig: SystemConfig, serviceConfig: ServiceConfig = {}) {
  return {
    codeGenerator: new EnhancedCodeGeneratorAgent({ ...agentConfig, name: 'code_generator' }, systemConfig, serviceConfig),
    renderer: new EnhancedRendererAgent({ ...agentConfig, name: 'renderer' }, systemConfig, serviceConfig)
  }
}

export type VideoGraph = ReturnType<typeof buildVideoGraph>
