// The agent adapters as one import: the package's `render-store/agents` entry point. They need the LangChain packages,
// optional peer dependencies (`npm install @langchain/core @langchain/langgraph @langchain/langgraph-checkpoint` beside
// render-store); the server never imports this folder, so its production install carries none of them.
export { VideoGenerationState, applyUpdate, initialState, type VideoState, type VideoStateUpdate, type UploadStatus, type HumanChoice, type PendingIntervention } from './state.js'
export { EnhancedRendererAgent, type UploadProgressCallback, type UploadProgressSnapshot, type UploadProgressEvent, type RenderUploadResults } from './enhanced-renderer-agent.js'
export { EnhancedCodeGeneratorAgent, type CodeUploadResults } from './enhanced-code-generator-agent.js'
export { buildVideoGraph, createVideoAgents, summaryNode, type VideoGraph, type VideoGraphOptions, type VideoAgentNames } from './graph.js'
export { RenderStoreCheckpointSaver, type RenderStoreCheckpointSaverOptions } from './checkpoint-saver.js'
export { StorageTimeoutError, type NodeRun } from './storage-agent.js'
export { StorageRequiredError, RunAbortedError, HUMAN_CHOICES, type InterventionRequest } from './degradation.js'
export { templateCodeGenerator, templateCodeEditor, fixtureRenderer, fixtureVideoPath, type CodeGenerator, type CodeEditor, type Renderer } from './base-steps.js'
export type { AgentConfig, SystemConfig, ServiceConfig } from './config.js'
