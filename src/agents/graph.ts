// The video-generation graph: code generator -> renderer -> summary, each enhanced node looping on itself only
// while a person must decide (human loop), so a resume re-runs the node that asked and nothing else. The nodes are
// named by their agents' configs (the seed's `enhanced_code_generator`, `enhanced_renderer` work as well as the defaults).
import { END, MemorySaver, START, StateGraph, type BaseCheckpointSaver } from '@langchain/langgraph'
import { EnhancedCodeGeneratorAgent } from './enhanced-code-generator-agent.js'
import { EnhancedRendererAgent } from './enhanced-renderer-agent.js'
import type { AgentConfig, ServiceConfig, SystemConfig } from './config.js'
import { VideoGenerationState, type VideoState, type VideoStateUpdate } from './state.js'

export interface VideoGraphOptions {
  codeGenerator: EnhancedCodeGeneratorAgent
  renderer: EnhancedRendererAgent
  /**
   * needed by the human loop (interrupt/resume); a MemorySaver by default, which a restart loses: pass a
   * RenderStoreCheckpointSaver to keep paused runs in render-store, resumable by any process
   */
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
  const names = new Set([codeGenerator.name, renderer.name, 'summary'])
  if (names.size !== 3) throw new Error(`the graph's nodes need three different names, not ${JSON.stringify([codeGenerator.name, renderer.name, 'summary'])}`)
  // Node names are strings only known at run time here; the builder's types track literal names.
  const graph = new StateGraph(VideoGenerationState) as unknown as StateGraph<typeof VideoGenerationState, VideoState, VideoStateUpdate, string>
  return graph
    .addNode(codeGenerator.name, codeGenerator.node)
    .addNode(renderer.name, renderer.node)
    .addNode('summary', summaryNode)
    .addEdge(START, codeGenerator.name)
    .addConditionalEdges(codeGenerator.name, codeGenerator.route(renderer.name), [codeGenerator.name, renderer.name])
    .addConditionalEdges(renderer.name, renderer.route('summary'), [renderer.name, 'summary'])
    .addEdge('summary', END)
    .compile({ checkpointer: options.checkpointer ?? new MemorySaver() })
}

/** Node names of the two agents (default `code_generator` and `renderer`). */
export interface VideoAgentNames {
  codeGenerator?: string
  renderer?: string
}

/** Both agents over one configuration; the graph names its nodes after them. */
export function createVideoAgents (agentConfig: Omit<AgentConfig, 'name'>, systemConfig: SystemConfig, serviceConfig: ServiceConfig = {}, names: VideoAgentNames = {}) {
  return {
    codeGenerator: new EnhancedCodeGeneratorAgent({ ...agentConfig, name: names.codeGenerator ?? 'code_generator' }, systemConfig, serviceConfig),
    renderer: new EnhancedRendererAgent({ ...agentConfig, name: names.renderer ?? 'renderer' }, systemConfig, serviceConfig)
  }
}

export type VideoGraph = ReturnType<typeof buildVideoGraph>
