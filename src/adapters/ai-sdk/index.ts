/**
 * `open-agent-orchestrator/ai-sdk`: govern Vercel AI SDK agents (`generateText`, `streamText`, `ToolLoopAgent`).
 * Requires `ai` 6.x (an optional peer dependency of this subpath). See docs/adapters.md.
 */
export { fromAiSdk, governedModel } from './fromAiSdk.js';
export type { AiSdkAgent, AiSdkAgentOptions, AiSdkSettings, ToolLoopAgentLike } from './fromAiSdk.js';
export type { ToolTimeouts } from '../shared/toolTimeouts.js';
