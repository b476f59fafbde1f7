/**
 * `open-agent-orchestrator/llamaindex`: govern LlamaIndex.TS agent workflows (`agent()`, `multiAgent()`,
 * `AgentWorkflow`, their LLMs and tools). Requires `@llamaindex/workflow` 1.1 and `@llamaindex/core` 0.6
 * (optional peer dependencies of this subpath). See docs/adapters.md.
 */
export { callSignal, fromLlamaIndex } from './fromLlamaIndex.js';
export type { LlamaIndexAgent, LlamaIndexAgentOptions, LlamaIndexResult, LlamaIndexUsage } from './fromLlamaIndex.js';
export type { ToolTimeouts } from '../shared/toolTimeouts.js';
