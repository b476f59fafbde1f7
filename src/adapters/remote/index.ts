/**
 * `open-agent-orchestrator/remote`: govern an agent that runs elsewhere, over A2A or plain HTTP.
 * The A2A transport requires `@a2a-js/sdk` 1.3 (an optional peer dependency of this subpath); the
 * plain-HTTP transport needs nothing more. See docs/adapters.md.
 */
export { fromRemoteAgent, RemoteConversation } from './fromRemoteAgent.js';
export type { RemoteA2ATransport, RemoteAgent, RemoteAgentOptions, RemoteHttpTransport, RemoteInputRequest } from './fromRemoteAgent.js';
export type { RemoteHttpRequestBody, RemoteHttpResponseBody } from './http.js';
export type { RemoteTurnResult, RemoteUsage } from './remoteTurn.js';
