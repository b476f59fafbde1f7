/**
 * `open-agent-orchestrator/server`: the HTTP service. Agents are registered by name; requests name
 * one and can only narrow the server's policy. See docs/server.md.
 */
export { createServer } from './createServer.js';
export { startServer, isLoopbackHost } from './startServer.js';
export type { StartServerOptions, StartedServer } from './startServer.js';
export { DEFAULT_SERVER_LIMITS } from './serverOptions.js';
export type { ServerLimits, ServerOptions } from './serverOptions.js';
export { createMemoryRunStore } from './createMemoryRunStore.js';
export type { MemoryRunStoreOptions } from './createMemoryRunStore.js';
export type { LiveRun, RunFilter, RunPage, RunPageRequest, RunRecord, RunStatus, RunStore } from './RunStore.js';
export { formatSseEvent } from './sse.js';
export {
  errorBodySchema,
  runMultiRequestSchema,
  runRequestSchema,
  runStateSchema,
  runSummarySchema,
} from './schemas.js';
export type { ErrorBody, RunMultiRequestBody, RunRequestBody, RunState, RunSummary } from './schemas.js';
