import type { AgentLike, ToolSet } from '../agent.js';
import { OaoError, serializeError } from '../errors.js';
import { typeOf } from '../options.js';
import { ownRecord } from '../policy/schema.js';
import { StrictPolicy } from '../policy/StrictPolicy.js';
import type { PolicyOptions } from '../policy/schema.js';
import { canonicalJson } from '../report/canonicalJson.js';
import { executionHash } from '../report/executionHash.js';
import type { Clock } from './clock.js';
import { RunSession, type EventSink, type ReplayObserver } from './RunSession.js';
import { isLangChainRunnable, runnableAgent } from './runnableAgent.js';
import type { SharedBudget } from './SharedBudget.js';
import type { RunStore } from '../store/RunStore.js';
import type { RunOwnership } from '../store/RunLog.js';
import type { Lease } from '../store/RunStore.js';
import type { ResumePoint } from '../log/resumePoint.js';
import type { InstalledPlugins } from '../plugins/installPlugins.js';
import type { PluginToolCall } from '../plugins/definePlugin.js';
import { checkTenantId } from '../tenants/tenantKeys.js';
import { checkBatchId } from './batchId.js';
import type { TenantBudgetSource } from '../tenants/TenantLevel.js';

/** One run: the agent, its task, and optionally tools, a narrower policy and a cancel signal. */
export interface RunRequest {
  readonly agent: AgentLike;
  /** A string or any JSON value; it is what `plan` (or the first step) receives. */
  readonly task: unknown;
  /** Tools the agent may call through `ctx.tools`, each governed by the policy. */
  readonly tools?: ToolSet;
  /** Narrows the orchestrator's policy for this run; it can never widen it. */
  readonly policy?: StrictPolicy | PolicyOptions;
  /** Aborting it cancels the run. */
  readonly signal?: AbortSignal;
  /** Use this id instead of a generated one (it must be unique among live runs). */
  readonly executionId?: string;
  /**
   * The run's `agentName` in its report, events, executionHash and metrics labels (the server
   * passes the name an agent is registered under).
   * @default the agent's own `name`, else its class name, else `"agent"`
   */
  readonly agentName?: string;
  /**
   * The tenant the run belongs to, recorded in its EXECUTION_START (`payload.tenant`) and used as
   * the `tenant` label of its metrics; not part of the executionHash. The server sets it from the
   * request's API key. A tenant id: 1 to 100 letters, digits, ".", "_" or "-", starting with a
   * letter or digit.
   * @default none
   */
  readonly tenant?: string;
  /**
   * The queued batch the run belongs to (see `RunQueue.createBatch`), recorded in its
   * EXECUTION_START (`payload.batch`) so that a job of the run enqueued again spends the same
   * shared budget; not part of the executionHash. It names the batch only: the budget a run runs
   * under is given by whoever runs it (a queue's worker takes the run's chunk of the batch). A
   * batch id: 1 to 128 letters, digits, ".", "_" or "-".
   * @default none
   */
  readonly batch?: string;
}


/** What a run needs from whoever starts it (an Orchestrator, a supervisor). */
export interface RunEnvironment {
  /** The ceiling: the request's policy can only narrow it. */
  readonly policy: StrictPolicy;
  readonly clock: Clock;
  readonly sink: EventSink | undefined;
  readonly generateId: () => string;
  readonly syncOnly: boolean;
  /** Keep the run's events on its session (needed for a handle's events() and replay). */
  readonly record: boolean;
  /** Totals shared with sibling runs (a supervisor's budget). */
  readonly shared?: SharedBudget;
  /** Accounts on tenants' budgets, for a run that has a tenant (the level above the run's and its batch's). */
  readonly tenantBudgets?: TenantBudgetSource | undefined;
  /** Where every event of the run is written. */
  readonly store?: RunStore;
  /** Who leases the run in the store while it is live. */
  readonly ownership?: RunOwnership;
  /** Verify-replay's observer (see src/log/verifyReplay.ts). */
  readonly replay?: ReplayObserver;
  /** The orchestrator's plugins: their rules, their tools and their identity for the execution hash. */
  readonly plugins?: InstalledPlugins;
}

/**
 * Validates a run request (typed errors naming the field), resolves its effective policy and
 * identity, and builds the run's ledger. Nothing has started yet.
 */
export function prepareRun(request: RunRequest, env: RunEnvironment): { session: RunSession; signal: AbortSignal | undefined } {
  const checked = withPluginTools(checkRequest(request), env.plugins);
  const policy = checked.policy === undefined ? env.policy : env.policy.narrow(checked.policy);
  const session = new RunSession({
    executionId: checked.executionId ?? env.generateId(),
    agent: checked.agent,
    agentName: checked.agentName,
    task: checked.task,
    tools: checked.tools,
    toolNames: checked.toolNames,
    tenant: checked.tenant,
    batch: checked.batch,
    limits: policy.limits,
    executionHash: executionHash({
      task: checked.taskJson,
      policy: policy.canonical,
      agent: checked.agentName,
      tools: checked.toolNames,
      ...(env.plugins === undefined ? {} : { plugins: env.plugins.identity }),
    }),
    plugins: env.plugins?.rules,
    clock: env.clock,
    sink: env.sink,
    syncOnly: env.syncOnly,
    record: env.record,
    shared: env.shared,
    tenantBudget: checked.tenant === undefined || env.tenantBudgets === undefined ? undefined : env.tenantBudgets(checked.tenant),
    store: env.store,
    ownership: env.ownership,
    replay: env.replay,
    hasPlanner: checked.hasPlanner,
    hasReviewer: checked.hasReviewer,
    approvalPredicate: policy.approvalPredicate,
    // raise() can take a paused limit up to the orchestrator's own policy, never beyond.
    ceiling: env.policy.limits,
  });
  return { session, signal: checked.signal };
}

/** What `orch.resume()` is given besides the run's log: the code to continue it with. */
export interface ResumeRequest {
  /** The agent's code (the log names it; the code itself is not recorded). */
  readonly agent: AgentLike;
  /** Tool bodies, by the names the run recorded. A recorded tool missing here is OAO_ERR_UNKNOWN_TOOL when called. */
  readonly tools?: ToolSet;
  /** Aborting it cancels the resumed run. */
  readonly signal?: AbortSignal;
}

/**
 * Builds the ledger of a run continued from its log: the recorded request (agent name, task,
 * effective policy, tool names, identity hash) with the agent and tool bodies given now. The
 * ledger starts where the log left off; nothing has started yet.
 */
export function prepareResume(
  point: ResumePoint,
  request: ResumeRequest,
  env: RunEnvironment & { readonly lease?: Lease | undefined; readonly pluginToolCalls?: readonly PluginToolCall[] },
): { session: RunSession; signal: AbortSignal | undefined } {
  if (typeof request !== 'object' || request === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected the resume options to be an object, got ${typeOf(request)}`);
  }
  const fold = point.fold;
  const checked = withPluginTools(checkRequest({
    agent: readField(request, 'agent', 'agent') as AgentLike,
    task: fold.task,
    tools: readField(request, 'tools', 'tools') as ToolSet | undefined,
    signal: readField(request, 'signal', 'signal') as AbortSignal | undefined,
    executionId: fold.executionId,
    agentName: fold.agentName,
    ...(fold.tenant === undefined ? {} : { tenant: fold.tenant }),
    ...(fold.batch === undefined ? {} : { batch: fold.batch }),
  }), env.plugins);
  const session = new RunSession({
    executionId: fold.executionId,
    agent: checked.agent,
    agentName: fold.agentName,
    task: fold.task,
    tools: checked.tools,
    // The recorded names: the policy and the identity hash were decided with them.
    toolNames: Object.freeze([...fold.tools]),
    tenant: checked.tenant,
    batch: checked.batch,
    limits: StrictPolicy.fromLimits(fold.policy).limits,
    executionHash: fold.executionHash,
    clock: env.clock,
    sink: env.sink,
    syncOnly: false,
    record: env.record,
    shared: env.shared,
    // Its tenant's budget covers a continued run as it covers a new one (what it spent before is charged to the account on start).
    tenantBudget: checked.tenant === undefined || env.tenantBudgets === undefined ? undefined : env.tenantBudgets(checked.tenant),
    store: env.store,
    ownership: env.ownership,
    hasPlanner: checked.hasPlanner,
    hasReviewer: checked.hasReviewer,
    // The log records the approval list; a predicate is code, taken from the policy here.
    approvalPredicate: env.policy.approvalPredicate,
    ceiling: env.policy.limits,
    resume: { point, lease: env.lease },
    plugins: env.plugins?.rules,
    pluginToolCalls: env.pluginToolCalls,
  });
  session.resumeInput = point.input;
  return { session, signal: checked.signal };
}

interface CheckedRequest {
  agent: AgentLike;
  agentName: string;
  hasPlanner: boolean;
  hasReviewer: boolean;
  task: unknown;
  taskJson: string;
  tools: ToolSet | undefined;
  toolNames: readonly string[];
  policy: StrictPolicy | PolicyOptions | undefined;
  signal: AbortSignal | undefined;
  executionId: string | undefined;
  tenant: string | undefined;
  batch: string | undefined;
}

const EMPTY: readonly string[] = Object.freeze([]);

/** Adds the plugins' tools to a checked request: the agent's and the request's win on a name clash. */
function withPluginTools(checked: CheckedRequest, plugins: InstalledPlugins | undefined): CheckedRequest {
  const pluginTools = plugins?.tools;
  if (pluginTools === undefined) return checked;
  const tools = checked.tools === undefined ? pluginTools : { ...pluginTools, ...checked.tools };
  return { ...checked, tools, toolNames: Object.keys(tools).sort() };
}

export function checkRequest(request: RunRequest): CheckedRequest {
  if (typeof request !== 'object' || request === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected the run request to be an object, got ${typeOf(request)}`);
  }
  // Every field is read once, here: a getter that throws is a typed error naming the field.
  const task = readField(request, 'task', 'task');
  const tools = readField(request, 'tools', 'tools');
  const policy = readField(request, 'policy', 'policy');
  const signal = readField(request, 'signal', 'signal');
  const executionId = readField(request, 'executionId', 'executionId');
  const requestAgent = readField(request, 'agent', 'agent') as AgentLike;
  const requestedName = readField(request, 'agentName', 'agentName');
  const tenant = readField(request, 'tenant', 'tenant');
  const batch = readField(request, 'batch', 'batch');
  if (requestedName !== undefined && (typeof requestedName !== 'string' || requestedName.length === 0)) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `"agentName" must be a non-empty string, got ${typeOf(requestedName)}`, { details: { field: 'agentName' } });
  }
  const ownName = checkAgent(requestAgent);
  const agentName = requestedName ?? ownName;
  const runnable = isLangChainRunnable(requestAgent);
  const agent = runnable ? runnableAgent(requestAgent, agentName) : requestAgent;
  const hasPlanner = typeof agent !== 'function' && typeof readField(agent, 'plan', 'agent.plan', 'OAO_ERR_INVALID_AGENT') === 'function';
  const hasReviewer = typeof agent !== 'function' && typeof readField(agent, 'review', 'agent.review', 'OAO_ERR_INVALID_AGENT') === 'function';
  if (task === undefined) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'The run request needs a "task"', { details: { field: 'task' } });
  }
  let taskJson: string;
  try {
    taskJson = canonicalJson(task);
  } catch (error) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `"task" must be JSON-serializable: ${(error as Error).message}`, {
      details: { field: 'task' },
    });
  }
  // An agent may bring its own tools (the adapters do); the request's win on a name clash.
  const own = runnable ? undefined : readField(requestAgent, 'tools', 'agent.tools', 'OAO_ERR_INVALID_AGENT');
  const agentTools = own === undefined ? undefined : checkToolSet(own, 'agent.tools');
  const requestTools = tools === undefined ? undefined : checkToolSet(tools, 'tools');
  const allTools = agentTools === undefined ? requestTools : requestTools === undefined ? agentTools : { ...agentTools, ...requestTools };
  const toolNames = allTools === undefined ? EMPTY : Object.keys(allTools).sort();
  if (policy !== undefined && !(policy instanceof StrictPolicy) && (typeof policy !== 'object' || policy === null)) {
    throw new OaoError('OAO_ERR_INVALID_POLICY', `"policy" must be a StrictPolicy or policy options, got ${typeOf(policy)}`, {
      details: { field: 'policy' },
    });
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `"signal" must be an AbortSignal, got ${typeOf(signal)}`, {
      details: { field: 'signal' },
    });
  }
  if (executionId !== undefined && (typeof executionId !== 'string' || executionId.length === 0)) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', '"executionId" must be a non-empty string', { details: { field: 'executionId' } });
  }
  return {
    agent,
    agentName,
    hasPlanner,
    hasReviewer,
    task,
    taskJson,
    tools: allTools,
    toolNames,
    policy: policy,
    signal: signal,
    executionId: executionId,
    tenant: tenant === undefined ? undefined : checkTenantId(tenant, 'tenant'),
    batch: batch === undefined ? undefined : checkBatchId(batch, 'batch'),
  };
}

/**
 * Reads one field of a caller's object. A getter (or Proxy trap) that throws becomes a typed error
 * naming the field, never an untyped rejection.
 */
function readField(target: object, key: string, field: string, code: 'OAO_ERR_INVALID_ARGUMENT' | 'OAO_ERR_INVALID_AGENT' = 'OAO_ERR_INVALID_ARGUMENT'): unknown {
  try {
    return (target as Record<string, unknown>)[key];
  } catch (error) {
    throw new OaoError(code, `Reading "${field}" threw: ${serializeError(error).message}`, { details: { field }, cause: error });
  }
}

/** Validates the agent contract and returns the agent's name. */
export function checkAgent(agent: unknown): string {
  if (typeof agent === 'function') {
    const name = readField(agent, 'name', 'agent.name', 'OAO_ERR_INVALID_AGENT');
    return typeof name === 'string' && name.length > 0 ? name : 'agent';
  }
  if (typeof agent !== 'object' || agent === null) {
    throw new OaoError('OAO_ERR_INVALID_AGENT', `Expected "agent" to be an object with invoke() or a function, got ${typeOf(agent)}`, {
      details: { field: 'agent' },
    });
  }
  const candidate = agent as Record<string, unknown>;
  if (typeof readField(candidate, 'invoke', 'agent.invoke', 'OAO_ERR_INVALID_AGENT') !== 'function') {
    throw new OaoError('OAO_ERR_INVALID_AGENT', 'The agent has no invoke(input, ctx) method', { details: { field: 'agent.invoke' } });
  }
  for (const method of ['plan', 'review'] as const) {
    const value = readField(candidate, method, `agent.${method}`, 'OAO_ERR_INVALID_AGENT');
    if (value !== undefined && typeof value !== 'function') {
      throw new OaoError('OAO_ERR_INVALID_AGENT', `The agent's "${method}" must be a function when present`, {
        details: { field: `agent.${method}` },
      });
    }
  }
  const ctor = readField(candidate, 'constructor', 'agent.constructor', 'OAO_ERR_INVALID_AGENT') as { name?: unknown } | undefined;
  const ctorName = typeof ctor === 'function' ? readField(ctor, 'name', 'agent.constructor.name', 'OAO_ERR_INVALID_AGENT') : undefined;
  const name = readField(candidate, 'name', 'agent.name', 'OAO_ERR_INVALID_AGENT');
  return typeof name === 'string' && name.length > 0
      ? name
      : typeof ctorName === 'string' && ctorName !== 'Object' && ctorName.length > 0
        ? ctorName
        : 'agent';
}

function checkToolSet(value: unknown, field: string): ToolSet {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `"${field}" must be an object of functions, got ${typeOf(value)}`, { details: { field } });
  }
  const entries: [string, ToolSet[string]][] = [];
  for (const name of Object.keys(value)) {
    const body = readField(value, name, `${field}.${name}`);
    if (typeof body !== 'function') {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Tool "${name}" must be a function, got ${typeOf(body)}`, {
        details: { field: `${field}.${name}` },
      });
    }
    entries.push([name, body as ToolSet[string]]);
  }
  // A copy of own data properties: each body was read once, and a tool may be named "__proto__".
  return ownRecord(entries);
}


/** A readable reason from an aborted signal. */
export function abortReason(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  if (typeof reason === 'string') return reason.length > 0 ? reason : 'aborted by signal';
  if (reason === undefined || reason === null) return 'aborted by signal';
  // Whatever the reason is (an Error, a Proxy, an object whose getters throw), never throw here.
  return serializeError(reason).message || 'aborted by signal';
}
