import type { FastifyLoggerOptions } from 'fastify';
import { isPlugin, type Plugin } from '../plugins/definePlugin.js';
import type { Workflow } from '../workflow/defineWorkflow.js';
import { resolveWorkflows } from './WorkflowService.js';
import type { AgentLike, ToolSet } from '../agent.js';
import type { Metrics } from '../observability/metrics/createMetrics.js';
import type { OaoInspector } from '../Orchestrator.js';
import { OaoError } from '../errors.js';
import { StrictPolicy } from '../policy/StrictPolicy.js';
import type { PolicyOptions } from '../policy/schema.js';
import type { Clock } from '../runtime/clock.js';
import { invalidOption, positiveIntegerOption, typeOf } from '../options.js';
import { checkAgent } from '../runtime/prepareRun.js';
import { createMemoryStore } from '../store/createMemoryStore.js';
import type { RunStore } from '../store/RunStore.js';
import type { RunQueue } from '../queue/createQueue.js';
import type { TenantBudgetOptions } from '../tenants/tenantBudget.js';
import { DEFAULT_TENANT, TenantKeyTable, type TenantKeyOptions, type TenantTable } from '../tenants/tenantKeys.js';

export interface ServerLimits {
  /**
   * Largest request body in bytes; a larger one is answered 413 `OAO_ERR_PAYLOAD_TOO_LARGE`.
   * @default 1048576 (1 MiB)
   */
  readonly bodyLimit?: number;
  /**
   * Longest task: the characters of a string task, or of the JSON of any other task.
   * @default 100000
   */
  readonly maxTaskLength?: number;
  /**
   * Runs executing at once, over all endpoints; one more is answered 429 `OAO_ERR_TOO_MANY_RUNS`.
   * @default 100
   */
  readonly maxConcurrentRuns?: number;
}

/**
 * The options of `oaoPlugin`: everything the API needs, none of the root-level settings of a
 * Fastify instance. `createServer` takes the same plus `logger` (`ServerOptions`), so the
 * two cannot drift apart.
 */
export interface OaoPluginOptions {
  /**
   * The agents requests may name, by name. A request can only name one; it never supplies code.
   * The name is also the run's `agentName` (in its report, events, hash and metrics labels),
   * whatever the agent calls itself.
   */
  readonly agents: Readonly<Record<string, AgentLike>>;
  /** The ceiling of every run: a request's policy can only narrow it. @default new StrictPolicy() */
  readonly policy?: StrictPolicy | PolicyOptions;
  /** Tools every run may call (governed by the policy). */
  readonly tools?: ToolSet;
  /**
   * Workflows requests may start by name (`POST /workflows/:name/runs`), each made by
   * `defineWorkflow`; their nodes run under `policy`. See docs/workflows.md.
   */
  readonly workflows?: Readonly<Record<string, Workflow>>;
  /** Runs of one POST /run-multi at once; a request may ask for fewer. @default 4 */
  readonly maxConcurrency?: number;
  readonly limits?: ServerLimits;
  /**
   * When set (and not empty), every route except GET /health and the docs needs
   * `Authorization: Bearer <key>`. When absent, read from env `OAO_API_KEYS` (comma-separated).
   * A key is a string, or `{ name, key }`: a named key's name is who decided on a tool call
   * decided with it (`by` in the run's approvals), and what `approverKeys` may list.
   *
   * Keys belong to tenants: `{ name?, key, tenant, budget? }` in the list, or the map form
   * `{ [key]: { tenant, name?, budget? } }`. A run a key starts is its tenant's, charged to the
   * tenant's budget (`budget`: `{ window, maxTokens?, maxCostUsd?, maxToolCalls?, maxSteps?,
   * maxRuns? }`, see docs/budgets.md#tenants); a client cannot choose another tenant. Keys given
   * without a tenant belong to the tenant `default`.
   */
  readonly apiKeys?: readonly (string | ApiKey)[] | Readonly<Record<string, TenantKeyOptions>>;
  /**
   * The keys (by name, or the key itself) that see and manage every tenant: `GET
   * /tenants/:id/usage` and `POST /runs/:id/budget` of any tenant. Any other key sees (and raises)
   * only its own tenant's. Needs `apiKeys`.
   * @default none
   */
  readonly adminKeys?: readonly string[];
  /**
   * The keys that may approve or deny tool calls (`POST /runs/:id/approvals/:callId`), by name
   * (or, for a key without one, the key itself); any other key is answered 403
   * `OAO_ERR_FORBIDDEN`. Every key may still list pending approvals. Needs `apiKeys`.
   * @default every valid key may decide
   */
  readonly approverKeys?: readonly string[];
  /**
   * Where every run is recorded, as its event log: `createMemoryStore()` (from
   * `open-agent-orchestrator`), `createSqliteStore()` (`open-agent-orchestrator/sqlite`) or
   * `createPostgresStore()` (`open-agent-orchestrator/postgres`). `GET /runs`, `/runs/:id` and
   * `/runs/:id/events` read it, so with a durable store every run, report and event outlives the
   * process. The server never closes a store you pass: close it after the server.
   * @default createMemoryStore({ maxRuns: 1000 }): in memory, the 1000 newest finished runs
   */
  readonly store?: RunStore;
  /**
   * How long a run's lease lasts without renewal, in ms. The server leases every run it starts
   * and renews the lease while the run is live; a run whose process died lists as `interrupted`
   * once its lease has expired (at most this long after the crash).
   * @default 10000
   */
  readonly runLeaseTtlMs?: number;
  /**
   * Take up the runs that a stopped process left live in the store (status `interrupted`: a
   * crash, `kill -9`, a lost host): once the server is ready and then every `runLeaseTtlMs`, each
   * such run whose agent is registered here under its `agentName` is resumed here
   * (`orch.startResumed()`, with the server's `tools`) and served as a live run; any other is
   * ended FAILED with reason `error` and `OAO_ERR_INTERRUPTED`. A run is taken over through its
   * lease, so servers sharing a store never take up the same run twice.
   * @default true, unless the store is a memory store (`createMemoryStore()`, the default):
   *   no other process can have left runs in this process's memory
   */
  readonly resumeInterrupted?: boolean;
  /** Time source of the runs (timestamps, deadlines); XState's SimulatedClock fits. @default the system clock */
  readonly clock?: Clock;
  /**
   * Prometheus metrics of every run and batch this server runs, answered at `GET /metrics` (behind
   * the API keys when they are set). Pass `createMetrics()` from `open-agent-orchestrator/metrics`.
   * @default no metrics and no /metrics route
   */
  readonly metrics?: Metrics;
  /**
   * An XState inspector that sees every run actor and every batch's supervisor actor, for example
   * `createRunInspector().inspect` from `open-agent-orchestrator/inspect`.
   */
  readonly inspect?: OaoInspector;
  /**
   * Plugins made by `definePlugin()`: they govern every run and batch of this server (see
   * docs/plugins.md). A request cannot add or remove one. @default none
   */
  readonly plugins?: readonly Plugin[];
  /**
   * Serve the live dashboard at `/dashboard` (static assets only; its data comes from the API, with
   * the same API keys).
   * @default true
   */
  readonly dashboard?: boolean;
  /**
   * Run on workers instead of in this process: `POST /runs`, `/run` and `/run-multi` record each
   * run's start in the store, enqueue it (`createQueue()` from `open-agent-orchestrator/queue`, on
   * the same store) and a worker runs it; `/run` and `/run-multi` wait for the reports the workers
   * store (a batch's `maxConcurrency` gives way to the queue's limits). Cancels go through
   * the queue to whichever worker runs the run; a queue that does not take a run is answered 503
   * `OAO_ERR_QUEUE_UNAVAILABLE`. Interrupted runs are enqueued again instead of resumed here. The
   * server never closes a queue you pass. See docs/distributed.md.
   * @default none: every run executes in this process
   */
  readonly queue?: RunQueue;
}

/** An API key with a name: the name, never the key, is what the server records and shows. */
export interface ApiKey {
  /** Who holds the key, e.g. `ops` or `alice`: 1 to 100 characters, no control characters. */
  readonly name?: string;
  /** The bearer key itself: visible ASCII, no spaces. */
  readonly key: string;
  /** The tenant whose runs the key starts and whose usage it sees. @default 'default' */
  readonly tenant?: string;
  /** The tenant's budget (every key of a tenant that states one must state the same). */
  readonly budget?: TenantBudgetOptions;
}

/** The options of `createServer` and `startServer`: the plugin's, plus the Fastify instance's logger. */
export interface ServerOptions extends OaoPluginOptions {
  /** Fastify's logger. @default false */
  readonly logger?: boolean | FastifyLoggerOptions;
}

export const DEFAULT_SERVER_LIMITS = Object.freeze({
  bodyLimit: 1_048_576,
  maxTaskLength: 100_000,
  maxConcurrentRuns: 100,
});

/** The runs the default store keeps: the newest finished ones (running runs are never dropped). */
export const DEFAULT_STORE_MAX_RUNS = 1_000;
export const DEFAULT_RUN_LEASE_TTL_MS = 10_000;

/** ServerOptions checked, with every default filled in. */
export interface ResolvedServerOptions {
  readonly agents: ReadonlyMap<string, AgentLike>;
  readonly policy: StrictPolicy;
  readonly tools: ToolSet | undefined;
  readonly workflows: ReadonlyMap<string, Workflow>;
  readonly maxConcurrency: number;
  readonly limits: Required<ServerLimits>;
  readonly apiKeys: readonly ApiKey[];
  /** The keys (themselves) that may decide on tool calls; undefined: every valid key may. */
  readonly approverKeys: ReadonlySet<string> | undefined;
  /** Every tenant a key names, with its budget when it has one (empty without keys). */
  readonly tenants: TenantTable;
  /** The keys (themselves) that see every tenant. */
  readonly adminKeys: ReadonlySet<string>;
  readonly store: RunStore;
  readonly runLeaseTtlMs: number;
  readonly resumeInterrupted: boolean;
  readonly logger: boolean | FastifyLoggerOptions;
  readonly clock: Clock | undefined;
  readonly metrics: Metrics | undefined;
  readonly inspect: OaoInspector | undefined;
  readonly plugins: readonly Plugin[] | undefined;
  readonly dashboard: boolean;
  readonly queue: RunQueue | undefined;
}

/** Validates the options eagerly, so a misconfigured server fails at startup, naming the option. */
export function resolveServerOptions(options: ServerOptions, env: NodeJS.ProcessEnv = process.env): ResolvedServerOptions {
  if (typeof options !== 'object' || options === null) {
    throw invalidOption('options', `Expected the server options to be an object, got ${typeOf(options)}`);
  }
  const policy = options.policy instanceof StrictPolicy ? options.policy : new StrictPolicy(options.policy ?? {});
  const limits = options.limits ?? {};
  if (typeof limits !== 'object' || limits === null) throw invalidOption('limits', `Expected limits to be an object, got ${typeOf(limits)}`);
  const { keys: apiKeys, tenants } = resolveTenantKeys(options.apiKeys, env);
  const resolved = {
    agents: resolveAgents(options.agents),
    policy,
    tools: resolveTools(options.tools),
    workflows: resolveWorkflows(options.workflows),
    maxConcurrency: positiveIntegerOption(options.maxConcurrency ?? 4, 'maxConcurrency'),
    limits: {
      bodyLimit: positiveIntegerOption(limits.bodyLimit ?? DEFAULT_SERVER_LIMITS.bodyLimit, 'limits.bodyLimit'),
      maxTaskLength: positiveIntegerOption(limits.maxTaskLength ?? DEFAULT_SERVER_LIMITS.maxTaskLength, 'limits.maxTaskLength'),
      maxConcurrentRuns: positiveIntegerOption(limits.maxConcurrentRuns ?? DEFAULT_SERVER_LIMITS.maxConcurrentRuns, 'limits.maxConcurrentRuns'),
    },
    apiKeys,
    approverKeys: resolveApproverKeys(options.approverKeys, apiKeys),
    tenants,
    adminKeys: resolveNamedKeys(options.adminKeys, apiKeys, 'adminKeys') ?? new Set<string>(),
    store: resolveStore(options.store),
    runLeaseTtlMs: positiveIntegerOption(options.runLeaseTtlMs ?? DEFAULT_RUN_LEASE_TTL_MS, 'runLeaseTtlMs'),
    logger: resolveLogger(options.logger),
    clock: resolveClock(options.clock),
    metrics: resolveMetrics(options.metrics),
    inspect: resolveInspect(options.inspect),
    plugins: resolvePlugins(options.plugins),
    dashboard: resolveFlag(options.dashboard, 'dashboard', true),
    queue: resolveQueue(options.queue),
  };
  return { ...resolved, resumeInterrupted: resolveFlag(options.resumeInterrupted, 'resumeInterrupted', !isMemoryStore(resolved.store)) };
}

/**
 * The keys a server accepts: the option when given (an empty list turns auth off), else the
 * comma-separated env `OAO_API_KEYS`. Each is returned as `{ key }` or `{ name, key }`, in the
 * order given, once per key.
 */
export function resolveApiKeys(keys: ServerOptions['apiKeys'], env: NodeJS.ProcessEnv = process.env): readonly ApiKey[] {
  return resolveTenantKeys(keys, env).keys;
}

/** The keys a server accepts, and the tenants they name with their budgets. */
export function resolveTenantKeys(keys: ServerOptions['apiKeys'], env: NodeJS.ProcessEnv = process.env): { readonly keys: readonly ApiKey[]; readonly tenants: TenantTable } {
  if (typeof keys === 'object' && keys !== null && !Array.isArray(keys)) {
    // The map form: { [key]: { tenant, name?, budget? } }.
    const entries = Object.entries(keys as Record<string, unknown>).map(([key, entry], index) => {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
        throw invalidOption(`apiKeys.${index}`, `Entry ${index} of apiKeys must be { tenant, name?, budget? }, got ${typeOf(entry)}`);
      }
      const unknown = Object.keys(entry).find((field) => field !== 'tenant' && field !== 'name' && field !== 'budget');
      if (unknown !== undefined) throw invalidOption(`apiKeys.${index}.${unknown}`, `Unknown field "${unknown}" in entry ${index} of apiKeys: expected tenant, name or budget`);
      if ((entry as { tenant?: unknown }).tenant === undefined) throw invalidOption(`apiKeys.${index}.tenant`, `Entry ${index} of apiKeys needs a tenant`);
      return { ...entry, key };
    });
    return tenantKeys(checkKeys(entries, 'apiKeys'), entries);
  }
  const checked = resolveKeyList(keys, env);
  return tenantKeys(checked, Array.isArray(keys) ? (keys as readonly unknown[]) : checked);
}

function tenantKeys(checked: readonly ApiKey[], given: readonly unknown[]): { readonly keys: readonly ApiKey[]; readonly tenants: TenantTable } {
  const table = new TenantKeyTable();
  const tenantOf = new Map<string, string>();
  given.forEach((entry, index) => {
    const named = typeof entry === 'object' && entry !== null;
    const key = named ? (entry as { key: string }).key : (entry as string);
    const tenant = table.add(key, named ? (entry as { tenant?: unknown }).tenant : undefined, named ? (entry as { budget?: unknown }).budget : undefined, `apiKeys.${index}`);
    tenantOf.set(key, tenant);
  });
  const keys = checked.map((apiKey) => Object.freeze({ ...apiKey, tenant: tenantOf.get(apiKey.key) ?? DEFAULT_TENANT }));
  return { keys: Object.freeze(keys), tenants: checked.length === 0 ? new Map() : table.tenants() };
}

function resolveKeyList(keys: readonly (string | ApiKey)[] | undefined, env: NodeJS.ProcessEnv): readonly ApiKey[] {
  if (keys === undefined) {
    const fromEnv = (env.OAO_API_KEYS ?? '')
      .split(',')
      .map((key) => key.trim())
      .filter((key) => key.length > 0);
    return checkKeys(fromEnv, 'OAO_API_KEYS');
  }
  if (!Array.isArray(keys)) throw invalidOption('apiKeys', `Expected apiKeys to be an array of keys (strings or { name, key, tenant? }) or a map of key to { tenant }, got ${typeOf(keys)}`);
  return checkKeys(keys, 'apiKeys');
}

function checkKeys(keys: readonly unknown[], source: string): readonly ApiKey[] {
  const byKey = new Map<string, ApiKey>();
  keys.forEach((entry, index) => {
    const field = source === 'apiKeys' ? `apiKeys.${index}` : source;
    const named = typeof entry === 'object' && entry !== null && !Array.isArray(entry);
    const key = named ? (entry as { key?: unknown }).key : entry;
    // Visible ASCII only: anything else cannot travel in an Authorization header unchanged.
    if (typeof key !== 'string' || !/^[\x21-\x7e]+$/.test(key)) {
      throw invalidOption(
        named ? `${field}.key` : field,
        `API key ${index} of ${source} must be a non-empty string of visible ASCII characters without spaces${source === 'apiKeys' ? ', or { name, key } with such a key' : ''}`,
      );
    }
    const name = named ? (entry as { name?: unknown }).name : undefined;
    if (name !== undefined && (typeof name !== 'string' || !/^[^\p{Cc}]{1,100}$/u.test(name) || name.trim() !== name)) {
      throw invalidOption(`${field}.name`, `The name of API key ${index} must be 1 to 100 characters, without control characters or surrounding spaces`);
    }
    const known = byKey.get(key);
    if (known !== undefined && known.name !== name) {
      throw invalidOption(`${field}.name`, `API key ${index} of ${source} is given twice, with different names`);
    }
    byKey.set(key, Object.freeze(name === undefined ? { key } : { name, key }));
    const extra = named ? Object.keys(entry).find((field) => !['name', 'key', 'tenant', 'budget'].includes(field)) : undefined;
    if (extra !== undefined) throw invalidOption(`${field}.${extra}`, `Unknown field "${extra}" in API key ${index} of ${source}: expected name, key, tenant or budget`);
  });
  return Object.freeze([...byKey.values()]);
}

/**
 * The keys `approverKeys` lets decide, as the keys themselves: each entry names keys of `apiKeys`
 * by their name (every key of that name), or is one of its keys.
 */
function resolveApproverKeys(approvers: unknown, apiKeys: readonly ApiKey[]): ReadonlySet<string> | undefined {
  return resolveNamedKeys(approvers, apiKeys, 'approverKeys');
}

/** The keys an option like `approverKeys` or `adminKeys` names (by name or as the key itself). */
function resolveNamedKeys(approvers: unknown, apiKeys: readonly ApiKey[], option: 'approverKeys' | 'adminKeys'): ReadonlySet<string> | undefined {
  if (approvers === undefined) return undefined;
  if (!Array.isArray(approvers)) throw invalidOption(option, `Expected ${option} to be an array of key names, got ${typeOf(approvers)}`);
  if (approvers.length > 0 && apiKeys.length === 0) {
    throw invalidOption(
      option,
      `${option} says which API keys may ${option === 'adminKeys' ? 'see every tenant' : 'decide on tool calls'}: set apiKeys too (without keys no request says who sent it)`,
    );
  }
  const allowed = new Set<string>();
  approvers.forEach((entry: unknown, index) => {
    const matching = typeof entry === 'string' ? apiKeys.filter((apiKey) => apiKey.name === entry || apiKey.key === entry) : [];
    // The entry is not echoed: one that matches nothing may be a mistyped secret.
    if (matching.length === 0) {
      throw invalidOption(`${option}.${index}`, `${option}.${index} matches no key of apiKeys: give a key's name, or the key itself for a key without a name`);
    }
    for (const apiKey of matching) allowed.add(apiKey.key);
  });
  return allowed;
}

function resolveAgents(agents: unknown): ReadonlyMap<string, AgentLike> {
  if (typeof agents !== 'object' || agents === null || Array.isArray(agents)) {
    throw invalidOption('agents', `Expected agents to be an object of named agents, got ${typeOf(agents)}`);
  }
  const names = Object.keys(agents);
  if (names.length === 0) throw invalidOption('agents', 'Expected at least one agent in agents');
  const map = new Map<string, AgentLike>();
  for (const name of names) {
    if (name.length > 200) throw invalidOption(`agents.${name.slice(0, 20)}...`, 'Agent names must be at most 200 characters');
    const agent = (agents as Record<string, unknown>)[name];
    try {
      checkAgent(agent);
    } catch (error) {
      if (!OaoError.isInstance(error)) throw error;
      throw new OaoError(error.code, `Agent "${name}": ${error.message}`, { details: { field: `agents.${name}` }, cause: error });
    }
    map.set(name, agent as AgentLike);
  }
  return map;
}

function resolveTools(tools: unknown): ToolSet | undefined {
  if (tools === undefined) return undefined;
  if (typeof tools !== 'object' || tools === null || Array.isArray(tools)) {
    throw invalidOption('tools', `Expected tools to be an object of functions, got ${typeOf(tools)}`);
  }
  for (const [name, tool] of Object.entries(tools)) {
    if (typeof tool !== 'function') throw invalidOption(`tools.${name}`, `Tool "${name}" must be a function, got ${typeOf(tool)}`);
  }
  return tools as ToolSet;
}

/** What the server calls on a store: the Orchestrator's writes, and its own reads, leases and retention. */
const STORE_METHODS = ['append', 'events', 'report', 'get', 'list', 'prune', 'acquireLease', 'renewLease', 'releaseLease'] as const;

function resolveStore(store: unknown): RunStore {
  if (store === undefined) return createMemoryStore({ maxRuns: DEFAULT_STORE_MAX_RUNS });
  if (typeof store !== 'object' || store === null) {
    throw invalidOption('store', `Expected store to be a RunStore (createMemoryStore(), createSqliteStore(), createPostgresStore()), got ${typeOf(store)}`);
  }
  const candidate = store as Record<string, unknown>;
  if (typeof candidate.append !== 'function' && typeof candidate.put === 'function' && typeof candidate.delete === 'function') {
    // The server's own store interface of earlier releases: it kept records, not event logs.
    throw invalidOption(
      'store',
      'Expected store to be a RunStore of open-agent-orchestrator (createMemoryStore(), createSqliteStore(), createPostgresStore()); ' +
        'this one has put/get/list/delete, the interface of the server\'s former store, which the server no longer takes (see docs/server.md, "Migrating from the server\'s former store")',
    );
  }
  for (const method of STORE_METHODS) {
    if (typeof candidate[method] !== 'function') {
      throw invalidOption('store', `Expected store to be a RunStore (createMemoryStore(), createSqliteStore(), createPostgresStore()); "${method}" is missing`);
    }
  }
  return store as RunStore;
}

let memoryStorePrototype: object | null | undefined;

/** Whether the store is a memory store: it lives and dies with this process, so no other process left runs in it. */
function isMemoryStore(store: RunStore): boolean {
  memoryStorePrototype ??= Object.getPrototypeOf(createMemoryStore()) as object | null;
  return Object.getPrototypeOf(store) === memoryStorePrototype;
}

function resolveLogger(logger: unknown): boolean | FastifyLoggerOptions {
  if (logger === undefined) return false;
  if (typeof logger === 'boolean') return logger;
  if (typeof logger === 'object' && logger !== null) return logger;
  throw invalidOption('logger', `Expected logger to be a boolean or Fastify logger options, got ${typeOf(logger)}`);
}

function resolveClock(clock: unknown): Clock | undefined {
  if (clock === undefined) return undefined;
  const candidate = clock as Record<string, unknown> | null;
  if (typeof candidate?.now !== 'function' || typeof candidate.setTimeout !== 'function' || typeof candidate.clearTimeout !== 'function') {
    throw invalidOption('clock', 'Expected clock to have now(), setTimeout() and clearTimeout()');
  }
  return clock as Clock;
}

function resolveMetrics(metrics: unknown): Metrics | undefined {
  if (metrics === undefined) return undefined;
  const candidate = metrics as Record<string, unknown> | null;
  for (const method of ['observe', 'observeSupervisor', 'metricsText']) {
    if (typeof candidate?.[method] !== 'function') {
      throw invalidOption('metrics', `Expected metrics to come from createMetrics() (open-agent-orchestrator/metrics); "${method}" is missing`);
    }
  }
  return metrics as Metrics;
}

function resolvePlugins(plugins: unknown): readonly Plugin[] | undefined {
  if (plugins === undefined) return undefined;
  if (!Array.isArray(plugins)) throw invalidOption('plugins', `Expected plugins to be an array of plugins made by definePlugin(), got ${typeOf(plugins)}`);
  (plugins as unknown[]).forEach((plugin, index) => {
    if (!isPlugin(plugin)) throw invalidOption('plugins', `Expected plugins[${index}] to be made by definePlugin(), got ${typeOf(plugin)}`);
  });
  return Object.freeze([...(plugins as Plugin[])]);
}

function resolveInspect(inspect: unknown): OaoInspector | undefined {
  if (inspect === undefined || typeof inspect === 'function') return inspect as OaoInspector | undefined;
  if (typeof inspect === 'object' && inspect !== null && typeof (inspect as { next?: unknown }).next === 'function') return inspect;
  throw invalidOption('inspect', `Expected inspect to be an XState inspector (a function or an observer with next()), got ${typeOf(inspect)}`);
}

function resolveFlag(value: unknown, field: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalidOption(field, `Expected ${field} to be a boolean, got ${typeOf(value)}`);
  return value;
}

function resolveQueue(queue: unknown): RunQueue | undefined {
  if (queue === undefined) return undefined;
  const methods = typeof queue === 'object' && queue !== null ? (queue as Record<string, unknown>) : {};
  if (typeof methods.enqueue !== 'function' || typeof methods.cancel !== 'function' || typeof methods.waitForReport !== 'function') {
    throw invalidOption('queue', `Expected "queue" to be a run queue from createQueue() (open-agent-orchestrator/queue), got ${typeOf(queue)}`);
  }
  return queue as RunQueue;
}
