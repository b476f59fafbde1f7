/**
 * `open-agent-orchestrator/openai-agents`: govern OpenAI Agents JS agents (`Agent`, handoffs, function tools).
 * Requires `@openai/agents` 0.14 (an optional peer dependency of this subpath). See docs/adapters.md.
 */
export { fromOpenAIAgent } from './fromOpenAIAgent.js';
export type { OpenAIAgentLike, OpenAIAgentOptions, OpenAIAgentRunner } from './fromOpenAIAgent.js';
export type { ToolTimeouts } from '../shared/toolTimeouts.js';
