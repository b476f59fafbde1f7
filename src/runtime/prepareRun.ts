import type { AgentLike, ToolSet } from '../agent.js';
import { OaoError } from '../errors.js';
import { typeOf } from '../options.js';
import { StrictPolicy } from '../policy/StrictPolicy.js';
import type { PolicyOptions } from '../policy/schema.js';
import { canonicalJson } from '../report/canonicalJson.js';
import { executionHash } from '../report/executionHash.js';
import type { Clock } from './clock.js';
import { RunSession, type EventSink } from './RunSession.js';
import { isLangChainRunnable, runnableAgent } from './runnableAgent.js';
import type { SharedBudget } from './SharedBudget.js';

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
}

/**
 * Validates a run request (typed errors naming the field), resolves its effective policy and
 * identity, and builds the run's ledger. Nothing has started yet.
 */
export function prepareRun(request: RunRequest, env: RunEnvironment): { session: RunSession; signal: AbortSignal | undefined } {
  const checked = checkRequest(request);
  const policy = checked.policy === undefined ? env.policy : env.policy.narrow(checked.policy);
  const session = new RunSession({
    executionId: checked.executionId ?? env.generateId(),
    agent: checked.agent,
    agentName: checked.agentName,
    task: checked.task,
    tools: checked.tools,
    toolNames: checked.toolNames,
    limits: policy.limits,
    executionHash: executionHash({
      task: checked.taskJson,
      policy: policy.canonical,
      agent: checked.agentName,
      tools: checked.toolNames,
    }),
    clock: env.clock,
    sink: env.sink,
    syncOnly: env.syncOnly,
    record: env.record,
    shared: env.shared,
  });
  return { session, signal: checked.signal };
}

interface CheckedRequest {
  agent: AgentLike;
  agentName: string;
  task: unknown;
  taskJson: string;
  tools: ToolSet | undefined;
  toolNames: readonly string[];
  policy: StrictPolicy | PolicyOptions | undefined;
  signal: AbortSignal | undefined;
  executionId: string | undefined;
}

const EMPTY: readonly string[] = Object.freeze([]);

export function checkRequest(request: RunRequest): CheckedRequest {
  if (typeof request !== 'object' || request === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected the run request to be an object, got ${typeOf(request)}`);
  }
  const { task, tools, policy, signal, executionId } = request;
  const agentName = checkAgent(request.agent);
  const runnable = isLangChainRunnable(request.agent);
  const agent = runnable ? runnableAgent(request.agent, agentName) : request.agent;
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
  const own = runnable ? undefined : (request.agent as { tools?: unknown }).tools;
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
  return { agent, agentName, task, taskJson, tools: allTools, toolNames, policy, signal, executionId };
}

/** Validates the agent contract and returns the agent's name. */
export function checkAgent(agent: unknown): string {
  if (typeof agent === 'function') {
    return (agent as { name?: string }).name || 'agent';
  }
  if (typeof agent !== 'object' || agent === null) {
    throw new OaoError('OAO_ERR_INVALID_AGENT', `Expected "agent" to be an object with invoke() or a function, got ${typeOf(agent)}`, {
      details: { field: 'agent' },
    });
  }
  const candidate = agent as Record<string, unknown>;
  if (typeof candidate.invoke !== 'function') {
    throw new OaoError('OAO_ERR_INVALID_AGENT', 'The agent has no invoke(input, ctx) method', { details: { field: 'agent.invoke' } });
  }
  for (const method of ['plan', 'review'] as const) {
    if (candidate[method] !== undefined && typeof candidate[method] !== 'function') {
      throw new OaoError('OAO_ERR_INVALID_AGENT', `The agent's "${method}" must be a function when present`, {
        details: { field: `agent.${method}` },
      });
    }
  }
  const ctorName = (agent as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof candidate.name === 'string' && candidate.name.length > 0
      ? candidate.name
      : typeof ctorName === 'string' && ctorName !== 'Object' && ctorName.length > 0
        ? ctorName
        : 'agent';
}

function checkToolSet(value: unknown, field: string): ToolSet {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `"${field}" must be an object of functions, got ${typeOf(value)}`, { details: { field } });
  }
  const set = value as Record<string, unknown>;
  for (const name of Object.keys(set)) {
    if (typeof set[name] !== 'function') {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Tool "${name}" must be a function, got ${typeOf(set[name])}`, {
        details: { field: `${field}.${name}` },
      });
    }
  }
  return set as ToolSet;
}


/** A readable reason from an aborted signal. */
export function abortReason(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason.message || reason.name;
  if (typeof reason === 'string' && reason.length > 0) return reason;
  return 'aborted by signal';
}
