/**
 * `open-agent-orchestrator/metrics`: Prometheus metrics for orchestrators and supervisors, and a
 * Fastify plugin serving them. See docs/metrics.md.
 */
export { createMetrics, DEFAULT_DURATION_BUCKETS, DEFAULT_MAX_TENANT_LABELS, OTHER_TENANT } from './createMetrics.js';
export type { Metrics, MetricsOptions } from './createMetrics.js';
export { metricsPlugin } from './fastifyPlugin.js';
