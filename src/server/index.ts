/**
 * `open-agent-orchestrator/server`: the HTTP service, as a server of its own (`createServer`,
 * `startServer`) or as a plugin for your Fastify app (`oaoPlugin`). Agents are registered by
 * name; requests name one and can only narrow the server's policy. See docs/server.md.
 */
export { createServer } from './createServer.js';
export { oaoPlugin } from './oaoPlugin.js';
export type { OaoPluginOptions } from './oaoPlugin.js';
export { oaoCheckExpectation, oaoClientErrorHandler, oaoFrameworkErrors } from './clientErrorHandler.js';
export { startServer, isLoopbackHost } from './startServer.js';
export type { StartServerOptions, StartedServer } from './startServer.js';
export { DEFAULT_RUN_LEASE_TTL_MS, DEFAULT_SERVER_LIMITS, DEFAULT_STORE_MAX_RUNS } from './serverOptions.js';
export type { ApiKey, ServerLimits, ServerOptions } from './serverOptions.js';
// Deprecated aliases, removed in the next release: the server's store is the core RunStore.
export { createMemoryRunStore } from './createMemoryRunStore.js';
export type { MemoryRunStoreOptions, RunStore } from './createMemoryRunStore.js';
export { formatSseEvent } from './sse.js';
export {
  decisionRequestSchema,
  decisionResponseSchema,
  errorBodySchema,
  pendingApprovalSchema,
  pendingApprovalsResponseSchema,
  runMultiRequestSchema,
  runRequestSchema,
  runStateSchema,
  runStatusSchema,
  runSummarySchema,
  serverPolicyResponseSchema,
  whatIfRequestSchema,
  whatIfResponseSchema,
} from './schemas.js';
export type {
  DecisionRequestBody,
  DecisionResponse,
  ErrorBody,
  PendingApprovalBody,
  RunMultiRequestBody,
  RunRequestBody,
  RunState,
  RunStatus,
  RunSummary,
  ServerPolicyResponse,
  WhatIfRequestBody,
  WhatIfResponse,
} from './schemas.js';
