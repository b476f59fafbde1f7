/**
 * `open-agent-orchestrator/langgraph`: govern compiled LangGraph.js graphs. Requires
 * `@langchain/core` and a graph from `@langchain/langgraph` (optional peer dependencies of this
 * subpath). See docs/adapters.md.
 */
export { fromGraph } from './fromGraph.js';
export type { GraphAgentOptions } from './fromGraph.js';
export { governTools, governedConfig, isGovernedTool, recordedChatModel, toolSet } from '../langchain/index.js';
export type { LangChainTool, RecordedChatModelOptions, RunnableAgent, UngovernedToolPolicy } from '../langchain/index.js';
