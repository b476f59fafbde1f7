import { OaoError } from '../errors.js';
import type { QueueTenantWindows } from '../queue/tenantWindow.js';
import type { RunStore } from '../store/RunStore.js';
import { checkTenantBudget, type TenantBudgetLimits } from './tenantBudget.js';
import { TenantLedger, type TenantLimitKind, type TenantRefusal, type TenantUsage } from './TenantLedger.js';
import { limitsRunSpend, TenantLevel, type TenantAccount } from './TenantLevel.js';

export { TenantLedger };
import type { TenantTable } from './tenantKeys.js';

/** The window of a tenant that has no budget: its usage is still kept, per calendar month. */
const UNLIMITED: TenantBudgetLimits = checkTenantBudget({ window: 'month' }, 'budget');

/**
 * The ledgers of a server's tenants: one per tenant its keys name, kept in the run store's
 * counters. A tenant without a budget has its usage kept per calendar month, with no limit.
 */
export class TenantBudgets {
  readonly #ledgers = new Map<string, TenantLedger>();
  /** The in-process level of each tenant whose budget limits what runs spend. */
  readonly #levels = new Map<string, TenantLevel>();
  readonly #now: () => number;
  readonly #onError: (error: unknown) => void;
  /** Set when runs go to a queue's workers: their tenants' windows are then checked and charged in its Redis. */
  #queue: QueueTenantWindows | undefined;

  constructor(tenants: TenantTable, store: RunStore | undefined, now: () => number, onError: (error: unknown) => void) {
    this.#now = now;
    this.#onError = onError;
    for (const [tenant, limits] of tenants) {
      const ledger = new TenantLedger(tenant, limits ?? UNLIMITED, store, now, onError);
      this.#ledgers.set(tenant, ledger);
      if (limits !== undefined && limitsRunSpend(ledger)) this.#levels.set(tenant, new TenantLevel(ledger));
    }
  }

  /**
   * A new run's account on its tenant's level (see TenantLevel): every step, tool call and model
   * call of the run is checked against what the tenant has left. Undefined for a tenant whose
   * budget limits no spend of a run (only `maxRuns`, or no budget).
   */
  readonly accountFor = (tenant: string): TenantAccount | undefined => this.#levels.get(tenant)?.open();

  /**
   * Whether the run's account charged its tenant's window when it ended (then it must not be
   * charged again from its report); forgets the run.
   */
  settledInRun(tenant: string, executionId: string): boolean {
    return this.#levels.get(tenant)?.takeSettled(executionId) ?? false;
  }

  /**
   * Runs go to the workers of a queue: a tenant's runs are admitted atomically in the queue's Redis
   * (so that every server counts the same runs), and the workers check what each run spends against
   * the tenant's window there (see src/queue/tenantWindow.ts). The run store's counters are still
   * charged, so a restart (or a Redis that lost its data) does not reset the window.
   */
  useQueue(queue: QueueTenantWindows | undefined): void {
    this.#queue = queue;
  }

  get size(): number {
    return this.#ledgers.size;
  }

  /** Reads every tenant's current spend from the store (before the server takes requests). */
  async load(): Promise<void> {
    for (const ledger of this.#ledgers.values()) await ledger.load();
  }

  ledger(tenant: string): TenantLedger | undefined {
    return this.#ledgers.get(tenant);
  }

  /**
   * Lets `runs` runs of `tenant` start, charging them, or throws `OAO_ERR_TENANT_BUDGET` (HTTP 429,
   * with the seconds until spend leaves the window) when a limit of the tenant's window is reached.
   */
  admit(tenant: string, runs = 1): TenantLedger | undefined {
    const ledger = this.#ledgers.get(tenant);
    if (ledger === undefined) return undefined;
    const refusal = ledger.refusal(runs);
    if (refusal !== undefined) throw budgetError(refusal);
    ledger.charge({ runs });
    return ledger;
  }

  /**
   * `admit()`, in the queue's Redis when runs go to a queue (see `useQueue`): atomic over every
   * server. `OAO_ERR_QUEUE_UNAVAILABLE` (503) when Redis does not answer.
   */
  async admitShared(tenant: string, runs = 1): Promise<TenantLedger | undefined> {
    const queue = this.#queue;
    const ledger = this.#ledgers.get(tenant);
    if (queue === undefined || ledger === undefined || !hasLimits(ledger)) return this.admit(tenant, runs);
    const refused = await queue.admit(tenant, ledger.limits, runs, this.#now(), (span) => ledger.spanSpent(span));
    if (refused !== undefined) {
      const limit = LIMIT_OF[refused.field];
      const max = limit === 'maxCostUsd' ? ledger.limits.maxCostMicros : ledger.limits[limit];
      throw budgetError(ledger.refusalOf(limit, max ?? 0, refused.spent));
    }
    ledger.charge({ runs });
    return ledger;
  }

  /** Takes back `runs` admitted runs of a request that started none. */
  refund(ledger: TenantLedger, runs: number): void {
    ledger.charge({ runs: -runs });
    const queue = this.#queue;
    if (queue !== undefined && hasLimits(ledger)) queue.refund(ledger.tenant, ledger.limits.window, runs, this.#now()).catch(this.#onError);
  }

  /** `GET /tenants/:id/usage`: `OAO_ERR_UNKNOWN_TENANT` for a tenant no key names. */
  usage(tenant: string): TenantUsage {
    const ledger = this.#ledgers.get(tenant);
    if (ledger === undefined) {
      throw new OaoError('OAO_ERR_UNKNOWN_TENANT', `No API key of this server belongs to a tenant "${tenant}"`, { details: { tenant } });
    }
    return ledger.usage();
  }
}

const LIMIT_OF: Record<'runs' | 'steps' | 'tokens' | 'toolCalls' | 'costMicros', TenantLimitKind> = {
  runs: 'maxRuns',
  steps: 'maxSteps',
  tokens: 'maxTokens',
  toolCalls: 'maxToolCalls',
  costMicros: 'maxCostUsd',
};

/** Does the tenant's budget limit anything (a tenant without one has its usage kept, unlimited)? */
function hasLimits(ledger: TenantLedger): boolean {
  const limits = ledger.limits;
  return limits.maxRuns !== undefined || limitsRunSpend(ledger);
}

/** `OAO_ERR_TENANT_BUDGET` (HTTP 429) for a refusal, with the seconds until spend leaves the window. */
function budgetError(refusal: TenantRefusal): OaoError {
  return new OaoError('OAO_ERR_TENANT_BUDGET', refusal.message, {
    details: {
      tenant: refusal.tenant,
      limit: refusal.limit,
      max: refusal.limit === 'maxCostUsd' ? refusal.max / 1_000_000 : refusal.max,
      spent: refusal.limit === 'maxCostUsd' ? refusal.spent / 1_000_000 : refusal.spent,
      retryAfterMs: refusal.retryAfterMs,
      scope: 'tenant',
    },
  });
}
