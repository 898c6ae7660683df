// The agent adapters as one import.
export { VideoGenerationState, applyUpdate, initialState, type VideoState, type VideoStateUpdate, type UploadStatus, type HumanChoice, type PendingIntervention } from './state.js'
export { EnhancedRendererAgent, type UploadProgressCallback, type UploadProgressSnapshot, type RenderUploadResults } from './enhanced-renderer-agent.js'
export { EnhancedCodeGeneratorAgent, type CodeUploadResults } from './enhanced-code-generator-agent.js'
export { buildVideoGraph, createVideoAgents, summaryNode, type VideoGraph, type VideoGraphOptions } from './graph.js'
export { StorageRequiredError, RunAbortedError, HUMAN_CHOICES, type InterventionRequest } from './degradation.js'
export { templateCodeGenerator, templateCodeEditor, fixtureRenderer, fixtureVideoPath, type CodeGenerator, type CodeEditor, type Renderer } from './base-steps.js'
export type { AgentConfig, SystemConfig, ServiceConfig } from './config.js'
