/**
 * `open-agent-orchestrator/langchain`: govern LangChain.js Runnables, chat models and tools.
 * Requires `@langchain/core` (an optional peer dependency of this subpath). See docs/adapters.md.
 */
export { fromRunnable } from './fromRunnable.js';
export type { RunnableAgent, RunnableAgentOptions, RunnableLike, StepMode, SteppedRun } from './fromRunnable.js';
export { fromChatModel } from './fromChatModel.js';
export type { ChatModelAgent, ChatModelAgentOptions, ChatModelLike, Conversation, ToolErrorMode } from './fromChatModel.js';
export { governTools, isGovernedTool, toolSet } from './governTools.js';
export type { LangChainTool } from './governTools.js';
export { governedConfig } from './governedConfig.js';
export type { GovernedConfigOptions } from './governedConfig.js';
export type { UngovernedToolPolicy } from './runBridge.js';
export { RecordedChatModel, recordedChatModel } from './recordedChatModel.js';
export type { RecordedChatModelOptions } from './recordedChatModel.js';
