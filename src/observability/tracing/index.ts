/**
 * `open-agent-orchestrator/tracing`: OpenTelemetry spans for every run of an orchestrator. Uses
 * `@opentelemetry/api` only; install and register an SDK to export the spans. See docs/tracing.md.
 */
export { traceRuns } from './traceRuns.js';
export type { TraceRunsOptions } from './traceRuns.js';
