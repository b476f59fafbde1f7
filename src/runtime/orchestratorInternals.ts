import { OaoError } from '../errors.js';
import type { EventHub } from '../events/EventHub.js';
import type { OaoEvent } from '../events/schema.js';
import type { WorkflowEvent } from '../events/workflowSchema.js';
import type { StrictPolicy } from '../policy/StrictPolicy.js';
import type { RunStore } from '../store/RunStore.js';
import type { RunOwnership } from '../store/RunLog.js';
import { typeOf } from '../options.js';
import type { Clock } from './clock.js';
import type { InstalledPlugins } from '../plugins/installPlugins.js';
import type { RunSession } from './RunSession.js';
import type { TenantAccount, TenantBudgetSource } from '../tenants/TenantLevel.js';
import type { RunHandle } from '../Orchestrator.js';
import type { ResumeRequest, RunRequest } from './prepareRun.js';
import type { SharedBudget } from './SharedBudget.js';

/**
 * What runs started on an orchestrator's behalf outside `Orchestrator` itself (workflow nodes,
 * `createGovernedRun(orch)`) share with it: its policy ceiling, clock, ids, store, inspector and
 * event streams. Kept out of the public class so that users see none of it.
 */
export interface OrchestratorInternals {
  readonly policy: StrictPolicy;
  readonly clock: Clock;
  /** Whether the clock was given (then actors are created with it, as XState's own clock). */
  readonly customClock: boolean;
  readonly generateId: () => string;
  readonly store: RunStore | undefined;
  readonly ownership: RunOwnership | undefined;
  readonly inspect: unknown;
  readonly hub: EventHub<OaoEvent>;
  readonly workflowHub: EventHub<WorkflowEvent>;
  /** The orchestrator's plugins: they govern these runs as they do its own. */
  readonly plugins: InstalledPlugins | undefined;
  /**
   * The orchestrator's live runs by execution id: a run registered here while it is live takes
   * decisions by id (`orch.approve/deny/raise`) and shows in `orch.pendingApprovals()`.
   */
  readonly live: Map<string, RunSession>;
  /** Gives the orchestrator's runs of a tenant their account on the tenant's budget (see `useTenantBudgets`). */
  readonly useTenantBudgets?: (source: TenantBudgetSource | undefined) => void;
  /**
   * `orch.start()` and `orch.startResumed()` for a run whose spend also counts against `shared`
   * (a queued batch's chunk, see src/queue/batchBudget.ts) and against `tenant` (its lease of its
   * tenant's window, see src/queue/tenantWindow.ts) instead of the orchestrator's own tenant
   * budgets. A continued run's spend before it was cut short is charged to both first.
   */
  readonly startShared?: (request: RunRequest, shared: SharedBudget | undefined, tenant?: TenantAccount) => RunHandle;
  readonly startResumedShared?: (executionId: string, request: ResumeRequest, shared: SharedBudget | undefined, tenant?: TenantAccount) => Promise<RunHandle>;
}

const registry = new WeakMap<object, OrchestratorInternals>();

export function registerInternals(orchestrator: object, internals: OrchestratorInternals): void {
  registry.set(orchestrator, internals);
}

/** The internals of an Orchestrator, or the typed error for anything else. */
export function internalsOf(orchestrator: unknown, field = 'orchestrator'): OrchestratorInternals {
  const internals = typeof orchestrator === 'object' && orchestrator !== null ? registry.get(orchestrator) : undefined;
  if (internals === undefined) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected an Orchestrator, got ${typeOf(orchestrator)}`, { details: { field } });
  }
  return internals;
}

/** Tenant budget sources of supervisors (MultiAgentOrchestrator), which have no internals of their own. */
const supervisorTenantBudgets = new WeakMap<object, TenantBudgetSource>();

/**
 * Puts the runs `orchestrator` (an Orchestrator or a MultiAgentOrchestrator) starts for a tenant
 * under that tenant's budget: `source` gives each such run its account on the tenant's level, or
 * undefined for a tenant whose budget limits nothing a run spends. Kept off the public classes: the
 * server uses it for the tenants of its API keys.
 */
export function useTenantBudgets(orchestrator: object, source: TenantBudgetSource | undefined): void {
  const internals = registry.get(orchestrator);
  if (internals?.useTenantBudgets !== undefined) {
    internals.useTenantBudgets(source);
    return;
  }
  if (source === undefined) supervisorTenantBudgets.delete(orchestrator);
  else supervisorTenantBudgets.set(orchestrator, source);
}

/** The tenant budget source given to a supervisor, if any. */
export function tenantBudgetsOf(supervisor: object): TenantBudgetSource | undefined {
  return supervisorTenantBudgets.get(supervisor);
}
