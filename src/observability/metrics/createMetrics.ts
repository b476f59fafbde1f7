import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Observable } from 'rxjs';
import { OaoError } from '../../errors.js';
import type { BatchEvent, BatchProgress } from '../../events/batchSchema.js';
import type { OaoEvent } from '../../events/schema.js';
import type { MultiAgentOrchestrator } from '../../MultiAgentOrchestrator.js';
import type { Orchestrator } from '../../Orchestrator.js';
import { positiveIntegerOption } from '../../options.js';

/** Run durations are seconds to minutes, so the bucket range goes well past prom-client's 10s default. */
export const DEFAULT_DURATION_BUCKETS: readonly number[] = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/** Distinct `tenant` label values a metrics instance gives out before it counts later tenants under {@link OTHER_TENANT}. */
export const DEFAULT_MAX_TENANT_LABELS = 100;

/** The `tenant` label of every tenant seen after the first `maxTenantLabels` ones. */
export const OTHER_TENANT = 'other';

export interface MetricsOptions {
  /**
   * Where the metrics are registered. Never the global default registry unless it is passed here.
   * @default a new prom-client Registry
   */
  readonly registry?: Registry;
  /**
   * Put before every metric name.
   * @default 'oao_'
   */
  readonly prefix?: string;
  /**
   * Buckets (seconds) of the run duration histogram.
   * @default DEFAULT_DURATION_BUCKETS
   */
  readonly durationBuckets?: readonly number[];
  /**
   * The cap on the `tenant` label's values: the first this many distinct tenants seen get a label
   * value of their own, every later one is counted under `tenant="other"` ({@link OTHER_TENANT}).
   * Runs without a tenant carry no `tenant` label and take no place.
   * @default DEFAULT_MAX_TENANT_LABELS (100)
   */
  readonly maxTenantLabels?: number;
}

export interface Metrics {
  readonly registry: Registry;
  /** The Content-Type of `metricsText()`, for an HTTP answer. */
  readonly contentType: string;
  /** Counts every run of `orchestrator` from now on; returns the function that stops counting. */
  observe(orchestrator: Orchestrator): () => void;
  /** Counts the batches of `supervisor` and every run of them; returns the function that stops counting. */
  observeSupervisor(supervisor: MultiAgentOrchestrator): () => void;
  /** The registry in Prometheus text exposition format. */
  metricsText(): Promise<string>;
}

/** Agent of an event whose EXECUTION_START was never seen (observing began mid-run). */
const UNKNOWN_AGENT = 'unknown';
/** The `model` label of costed usage that names no model (a model call without one, priced by `default`). */
const UNKNOWN_MODEL = 'unknown';
const PROMETHEUS_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/** The labels a run's series carry from its EXECUTION_START: `tenant` only when the run has one. */
interface RunLabels {
  readonly agent: string;
  readonly tenant?: string;
}

/** What one `observe()` or `observeSupervisor()` call is tracking, so stopping it can undo its gauges. */
interface Observation {
  /** executionId -> its labels, from EXECUTION_START until EXECUTION_COMPLETE. */
  readonly runs: Map<string, RunLabels>;
  /** batchId -> its queued and running jobs, from BATCH_START (or a BATCH_PROGRESS) until BATCH_COMPLETE. */
  readonly batches: Map<string, Pick<BatchProgress, 'queued' | 'running'>>;
}

/**
 * Prometheus metrics for orchestrators and supervisors: each one observed is followed through its
 * `events$`, so metrics never change what a run does.
 *
 * @example
 * ```ts
 * import { Orchestrator } from 'open-agent-orchestrator';
 * import { createMetrics } from 'open-agent-orchestrator/metrics';
 * const metrics = createMetrics();
 * const orch = new Orchestrator();
 * const stop = metrics.observe(orch);
 * await orch.run({ agent: (task: string) => `done: ${task}`, task: 'hi' });
 * (await metrics.metricsText()).includes('oao_runs_total{status="SUCCESS",agent="agent",reason="completed"} 1'); // true
 * stop();
 * ```
 */
export function createMetrics(options: MetricsOptions = {}): Metrics {
  if (typeof options !== 'object' || options === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected metrics options to be an object, got ${options === null ? 'null' : typeof options}`);
  }
  const prefix = options.prefix ?? 'oao_';
  if (typeof prefix !== 'string' || (prefix !== '' && !PROMETHEUS_NAME.test(prefix))) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected prefix to be a valid Prometheus metric name prefix, got ${JSON.stringify(prefix)}`, {
      details: { field: 'prefix' },
    });
  }
  if (options.registry !== undefined && !(options.registry instanceof Registry)) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Expected registry to be a prom-client Registry', { details: { field: 'registry' } });
  }
  const maxTenantLabels = options.maxTenantLabels === undefined ? DEFAULT_MAX_TENANT_LABELS : positiveIntegerOption(options.maxTenantLabels, 'maxTenantLabels');
  const registry = options.registry ?? new Registry();
  const registers = [registry];
  /** The tenants that have a label value of their own, in the order they were first seen. */
  const labelledTenants = new Set<string>();

  /** The run's labels: its tenant's own value while places are left (or it has one), else OTHER_TENANT. */
  function runLabels(agent: string, tenant: string | undefined): RunLabels {
    if (tenant === undefined) return { agent };
    if (!labelledTenants.has(tenant)) {
      if (labelledTenants.size >= maxTenantLabels) return { agent, tenant: OTHER_TENANT };
      labelledTenants.add(tenant);
    }
    return { agent, tenant };
  }

  const runs = new Counter({
    name: `${prefix}runs_total`,
    help: 'Finished runs, by report status, agent, termination reason and tenant.',
    labelNames: ['status', 'agent', 'reason', 'tenant'] as const,
    registers,
  });
  const runDuration = new Histogram({
    name: `${prefix}run_duration_seconds`,
    help: 'Wall time of finished runs (report.executionTimeMs), in seconds.',
    labelNames: ['agent', 'status'] as const,
    buckets: [...(options.durationBuckets ?? DEFAULT_DURATION_BUCKETS)],
    registers,
  });
  const activeRuns = new Gauge({
    name: `${prefix}active_runs`,
    help: 'Runs started and not yet finished.',
    labelNames: ['agent', 'tenant'] as const,
    registers,
  });
  const tokens = new Counter({
    name: `${prefix}tokens_total`,
    help: 'Tokens spent by runs (TOKEN_USAGE events), by direction.',
    labelNames: ['agent', 'direction', 'tenant'] as const,
    registers,
  });
  // Money is summed as integer micro-dollars and turned into dollars only when scraped, so the
  // exposed value never carries the drift of summed floats.
  const costMicros = new Map<string, { readonly labels: RunLabels & { readonly model: string }; micros: number }>();
  new Counter({
    name: `${prefix}cost_usd_total`,
    help: 'US dollars spent on model calls (TOKEN_USAGE events priced by the policy), by agent, model and tenant.',
    labelNames: ['agent', 'model', 'tenant'] as const,
    registers,
    collect() {
      this.reset();
      for (const entry of costMicros.values()) this.inc(entry.labels, entry.micros / 1_000_000);
    },
  });
  const toolCalls = new Counter({
    name: `${prefix}tool_calls_total`,
    help: 'Tool calls the policy allowed.',
    labelNames: ['agent', 'tool', 'tenant'] as const,
    registers,
  });
  const toolDenials = new Counter({
    name: `${prefix}tool_denials_total`,
    help: 'Tool calls the policy refused, by the rule that refused them.',
    labelNames: ['agent', 'tool', 'rule'] as const,
    registers,
  });
  const policyViolations = new Counter({
    name: `${prefix}policy_violations_total`,
    help: 'Policy limits that ended a run, by rule.',
    labelNames: ['agent', 'rule'] as const,
    registers,
  });
  const queueDepth = new Gauge({
    name: `${prefix}supervisor_queue_depth`,
    help: 'Jobs waiting to start, summed over the live batches of observed supervisors.',
    registers,
  });
  const supervisorRunning = new Gauge({
    name: `${prefix}supervisor_running`,
    help: 'Jobs running, summed over the live batches of observed supervisors.',
    registers,
  });

  const observations = new Set<Observation>();

  function updateSupervisorGauges(): void {
    let queued = 0;
    let running = 0;
    for (const observation of observations) {
      for (const batch of observation.batches.values()) {
        queued += batch.queued;
        running += batch.running;
      }
    }
    queueDepth.set(queued);
    supervisorRunning.set(running);
  }

  function onRunEvent(observation: Observation, event: OaoEvent): void {
    const agent = (): string => observation.runs.get(event.executionId)?.agent ?? UNKNOWN_AGENT;
    /** The run's labels, `tenant` first-seen-capped; a run whose start was not seen has no tenant label. */
    const labels = (): RunLabels => observation.runs.get(event.executionId) ?? { agent: UNKNOWN_AGENT };
    switch (event.type) {
      case 'EXECUTION_START': {
        if (observation.runs.has(event.executionId)) return;
        const started = runLabels(event.payload.agentName, event.payload.tenant);
        observation.runs.set(event.executionId, started);
        activeRuns.inc(started);
        return;
      }
      case 'TOKEN_USAGE': {
        const run = labels();
        if (event.payload.input > 0) tokens.inc({ agent: run.agent, direction: 'input', ...tenantOf(run) }, event.payload.input);
        if (event.payload.output > 0) tokens.inc({ agent: run.agent, direction: 'output', ...tenantOf(run) }, event.payload.output);
        if (event.payload.costMicros !== undefined && event.payload.costMicros > 0) {
          const costLabels = { agent: run.agent, model: event.payload.model ?? UNKNOWN_MODEL, ...tenantOf(run) };
          const key = JSON.stringify([costLabels.agent, costLabels.model, run.tenant ?? null]);
          const entry = costMicros.get(key);
          if (entry === undefined) costMicros.set(key, { labels: costLabels, micros: event.payload.costMicros });
          else entry.micros = Math.min(Number.MAX_SAFE_INTEGER, entry.micros + event.payload.costMicros);
        }
        return;
      }
      case 'TOOL_CALL': {
        const run = labels();
        toolCalls.inc({ agent: run.agent, tool: event.payload.tool, ...tenantOf(run) });
        return;
      }
      case 'TOOL_DENIED':
        toolDenials.inc({ agent: agent(), tool: event.payload.tool, rule: event.payload.rule });
        return;
      case 'POLICY_VIOLATION':
        policyViolations.inc({ agent: agent(), rule: event.payload.rule });
        return;
      case 'EXECUTION_COMPLETE': {
        const { report } = event.payload;
        const started = observation.runs.get(event.executionId);
        runs.inc({ status: report.status, agent: report.agentName, reason: report.termination.reason, ...(started === undefined ? {} : tenantOf(started)) });
        runDuration.observe({ agent: report.agentName, status: report.status }, report.executionTimeMs / 1000);
        // Only a start this observation counted is undone: observing mid-run must not go below zero.
        if (started !== undefined) {
          observation.runs.delete(event.executionId);
          activeRuns.dec(started);
        }
        return;
      }
      default:
        return;
    }
  }

  /** Batches first seen mid-way are left out until their next BATCH_PROGRESS says where they stand. */
  function moveJob(observation: Observation, batchId: string, queued: number, running: number): void {
    const batch = observation.batches.get(batchId);
    if (batch === undefined) return;
    observation.batches.set(batchId, { queued: Math.max(0, batch.queued + queued), running: Math.max(0, batch.running + running) });
    updateSupervisorGauges();
  }

  function onBatchEvent(observation: Observation, event: BatchEvent): void {
    switch (event.type) {
      case 'RUN_EVENT':
        onRunEvent(observation, event.payload.event);
        return;
      case 'BATCH_START':
        observation.batches.set(event.batchId, { queued: event.payload.total, running: 0 });
        updateSupervisorGauges();
        return;
      // BATCH_PROGRESS only follows a finished job, so starts and finishes move the gauges in between.
      case 'JOB_STARTED':
        moveJob(observation, event.batchId, -1, 1);
        return;
      case 'JOB_FINISHED':
        if (event.payload.started) moveJob(observation, event.batchId, 0, -1);
        else moveJob(observation, event.batchId, -1, 0);
        return;
      case 'BATCH_PROGRESS':
        observation.batches.set(event.batchId, { queued: event.payload.queued, running: event.payload.running });
        updateSupervisorGauges();
        return;
      case 'BATCH_COMPLETE':
        if (observation.batches.delete(event.batchId)) updateSupervisorGauges();
        return;
      default:
        return;
    }
  }

  function track<E>(source: { readonly events$: Observable<E> }, handle: (observation: Observation, event: E) => void): () => void {
    const observation: Observation = { runs: new Map(), batches: new Map() };
    observations.add(observation);
    const subscription = source.events$.subscribe((event) => handle(observation, event));
    let stopped = false;
    return (): void => {
      if (stopped) return;
      stopped = true;
      subscription.unsubscribe();
      // Runs and batches this observation can no longer see finish must not stay in the gauges.
      for (const started of observation.runs.values()) activeRuns.dec(started);
      observations.delete(observation);
      if (observation.batches.size > 0) updateSupervisorGauges();
    };
  }

  return {
    registry,
    contentType: registry.contentType,
    observe: (orchestrator) => track<OaoEvent>(checkSource(orchestrator, 'orchestrator'), onRunEvent),
    observeSupervisor: (supervisor) => track<BatchEvent>(checkSource(supervisor, 'supervisor'), onBatchEvent),
    metricsText: () => registry.metrics(),
  };
}

/** The `tenant` label of a run's series: none for a run without a tenant (which Prometheus reads as `tenant=""`). */
function tenantOf(run: RunLabels): { tenant?: string } {
  return run.tenant === undefined ? {} : { tenant: run.tenant };
}

function checkSource<T extends { readonly events$: unknown }>(source: T, field: string): T {
  const events$ = (source as { events$?: { subscribe?: unknown } } | null | undefined)?.events$;
  if (typeof events$?.subscribe !== 'function') {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected ${field} to have an events$ observable`, { details: { field } });
  }
  return source;
}
