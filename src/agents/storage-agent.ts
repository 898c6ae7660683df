import type { RenderStoreClient } from '../client/index.js'
import { serviceClient, type AgentConfig, type ServiceConfig, type SystemConfig } from './config.js'
import { routeAfter } from './degradation.js'
import { applyUpdate, type VideoState, type VideoStateUpdate } from './state.js'

/** What both enhanced agents share: their configs, the service client, and use as a graph node or on its own. */
export abstract class StorageAgent {
  readonly name: string
  protected readonly client?: RenderStoreClient

  constructor (readonly agentConfig: AgentConfig, readonly systemConfig: SystemConfig, readonly serviceConfig: ServiceConfig = {}) {
    this.name = agentConfig.name
    this.client = serviceClient(serviceConfig)
  }

  /** The graph node: `graph.addNode(agent.name, agent.node)`. */
  abstract readonly node: (state: VideoState) => Promise<VideoStateUpdate>

  /**
   * Runs the node on a plain state (outside a graph) and answers the new state. With the human loop, a failure comes
   * back as `pending_intervention`; asking and resuming need the graph (interrupt needs a checkpointer).
   */
  async execute (state: Partial<VideoState>): Promise<VideoState> {
    const full = applyUpdate(state, {})
    return applyUpdate(full, await this.node(full))
  }

  /** The edge after this node for `addConditionalEdges`: itself while a person must decide, else `next`. */
  route (next: string): (state: VideoState) => string {
    return routeAfter(this.name, next)
  }
}
