import type { AgentLike, ToolSet } from '../agent.js';
import { OaoError } from '../errors.js';
import { typeOf } from '../options.js';
import { StrictPolicy } from '../policy/StrictPolicy.js';
import type { PolicyOptions } from '../policy/schema.js';
import { checkAgent } from '../runtime/prepareRun.js';
import { createWorkflowMachine, type WorkflowMachine } from './workflowMachine.js';

/**
 * What a finished node gives the nodes after it: its report, or for a fan-out node the array of
 * its runs' reports in input order. Typed loosely on purpose, so that `results.research.finalOutput`
 * reads as it does in plain JavaScript; a node's reports are `ExecutionReport`s.
 */
export type WorkflowResults = { readonly [node: string]: any };

/** What `task`, `each` and `when` receive. */
export interface WorkflowContext<I = any> {
  /** The workflow's input, as given to `runWorkflow`. */
  readonly input: I;
  /** Every node finished so far (SUCCESS or FAILED), by name. */
  readonly results: WorkflowResults;
}

/** What a fan-out node's `task` receives for each item. */
export interface WorkflowItemContext<I = any> extends WorkflowContext<I> {
  /** The item of `each` this run is for (undefined for a node without `each`). */
  readonly item?: unknown;
  /** Its index in the `each` array (undefined for a node without `each`). */
  readonly index?: number;
}

/** One node of a workflow: a governed run (or, with `each`, one governed run per item). */
export interface WorkflowNode<I = any> {
  readonly agent: AgentLike;
  /** Nodes that must finish with SUCCESS before this one starts. @default [] */
  readonly needs?: readonly string[];
  /**
   * The run's task. @default the workflow input for a node that needs nothing, else the results
   * of the nodes it needs; for a fan-out node, the item
   */
  readonly task?: (context: WorkflowItemContext<I>) => unknown;
  /** Fan-out: one run per item of the returned array, under the workflow's concurrency limit. */
  readonly each?: (context: WorkflowContext<I>) => readonly unknown[];
  /** Runs the node only when it returns true; otherwise the node is SKIPPED with reason `condition`. */
  readonly when?: (context: WorkflowContext<I>) => boolean;
  /** Narrows the workflow's policy for this node's runs; it can never widen it. */
  readonly policy?: StrictPolicy | PolicyOptions;
  /** Tools this node's runs may call. */
  readonly tools?: ToolSet;
}

/** A workflow definition: its id and its nodes, by name (or as a list with a `name` each). */
export interface WorkflowDefinition<I = any> {
  readonly id: string;
  readonly nodes: Readonly<Record<string, WorkflowNode<I>>> | readonly (WorkflowNode<I> & { readonly name: string })[];
}

/** One validated node. */
export interface WorkflowNodeSpec {
  readonly name: string;
  readonly agent: AgentLike;
  readonly agentName: string;
  readonly needs: readonly string[];
  /** Nodes that need this one. */
  readonly dependents: readonly string[];
  readonly task: WorkflowNode['task'];
  readonly each: WorkflowNode['each'];
  readonly when: WorkflowNode['when'];
  readonly policy: StrictPolicy | undefined;
  readonly tools: ToolSet | undefined;
}

/** The JSON shape of a workflow: what the dashboard draws and the workflow hash covers. */
export interface WorkflowShape {
  readonly id: string;
  readonly nodes: readonly {
    readonly name: string;
    readonly agent: string;
    readonly needs: readonly string[];
    readonly fanOut: boolean;
    readonly conditional: boolean;
    readonly policy: string | null;
    readonly tools: readonly string[];
  }[];
}

const WORKFLOW_BRAND = Symbol.for('open-agent-orchestrator.workflow');

/** A validated workflow: run it with `orch.runWorkflow(wf, input)`. */
export interface Workflow<I = any> {
  readonly id: string;
  /** The nodes in a topological order (every node after the nodes it needs). */
  readonly nodes: readonly WorkflowNodeSpec[];
  /** The XState machine that runs the workflow (see docs/workflows.md for its encoding). */
  readonly machine: WorkflowMachine;
  /** The definition's JSON shape. */
  readonly shape: WorkflowShape;
  node(name: string): WorkflowNodeSpec | undefined;
  /** Carries the input type; never set. */
  readonly __input?: I;
}

/** Whether `value` is a workflow made by `defineWorkflow`. */
export function isWorkflow(value: unknown): value is Workflow {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[WORKFLOW_BRAND] === true;
}

function invalid(problem: string, message: string, details: Record<string, unknown> = {}): OaoError {
  return new OaoError('OAO_ERR_INVALID_WORKFLOW', message, { details: { problem, ...details } });
}

/**
 * Validates a workflow definition up front and returns the workflow. Each problem is a typed
 * error: `OAO_ERR_INVALID_WORKFLOW` (with `details.problem`) for an unknown dependency, an empty
 * or duplicate name, a node without an agent; `OAO_ERR_WORKFLOW_CYCLE` (with `details.cycle`, the
 * path) for a cycle.
 *
 * @example
 * ```ts
 * import { defineWorkflow, Orchestrator } from 'open-agent-orchestrator';
 * const echo = { invoke: (task: unknown) => ({ output: task }) };
 * const wf = defineWorkflow({
 *   id: 'pair',
 *   nodes: {
 *     first: { agent: echo },
 *     second: { agent: echo, needs: ['first'], task: ({ results }) => results.first.finalOutput },
 *   },
 * });
 * const result = await new Orchestrator().runWorkflow(wf, 'hello');
 * result.nodes.second?.report?.finalOutput; // 'hello'
 * ```
 */
export function defineWorkflow<I = any>(definition: WorkflowDefinition<I>): Workflow<I> {
  if (typeof definition !== 'object' || definition === null) {
    throw invalid('invalid_definition', `Expected a workflow definition object, got ${typeOf(definition)}`);
  }
  const id: unknown = definition.id;
  if (typeof id !== 'string' || id.trim().length === 0) {
    throw invalid('invalid_id', `A workflow needs a non-empty string "id", got ${typeOf(id)}`, { field: 'id' });
  }
  const raw = readNodes(definition.nodes);
  if (raw.length === 0) throw invalid('no_nodes', `Workflow "${id}" has no nodes`, { field: 'nodes' });
  const byName = new Map<string, { node: WorkflowNode<I>; needs: string[] }>();
  for (const [name, node] of raw) {
    if (typeof name !== 'string' || name.trim().length === 0) {
      throw invalid('empty_name', `Workflow "${id}" has a node with an empty name`, { node: typeof name === 'string' ? name : null });
    }
    if (byName.has(name)) throw invalid('duplicate_node', `Workflow "${id}" has two nodes named "${name}"`, { node: name });
    if (typeof node !== 'object' || node === null) {
      throw invalid('invalid_node', `Node "${name}" must be an object, got ${typeOf(node)}`, { node: name });
    }
    const needs: unknown = node.needs ?? [];
    if (!Array.isArray(needs) || needs.some((need) => typeof need !== 'string')) {
      throw invalid('invalid_node', `Node "${name}": "needs" must be an array of node names`, { node: name, field: 'needs' });
    }
    byName.set(name, { node, needs: [...new Set(needs as string[])] });
  }
  const specs = new Map<string, WorkflowNodeSpec>();
  const dependents = new Map<string, string[]>([...byName.keys()].map((name) => [name, []]));
  for (const [name, { needs }] of byName) {
    for (const need of needs) {
      if (!byName.has(need)) {
        throw invalid('unknown_dependency', `Node "${name}" needs "${need}", which is not a node of workflow "${id}"`, { node: name, dependency: need });
      }
      (dependents.get(need) as string[]).push(name);
    }
  }
  for (const [name, { node, needs }] of byName) specs.set(name, checkNode(name, node, needs, dependents.get(name) as string[]));
  const order = topologicalOrder(byName, dependents);
  const nodes = Object.freeze(order.map((name) => specs.get(name) as WorkflowNodeSpec));
  const shape: WorkflowShape = Object.freeze({
    id,
    nodes: nodes.map((spec) => ({
      name: spec.name,
      agent: spec.agentName,
      needs: [...spec.needs],
      fanOut: spec.each !== undefined,
      conditional: spec.when !== undefined,
      policy: spec.policy === undefined ? null : spec.policy.canonical,
      tools: spec.tools === undefined ? [] : Object.keys(spec.tools).sort(),
    })),
  });
  let machine: WorkflowMachine | undefined;
  const workflow: Workflow<I> = {
    id,
    nodes,
    shape,
    get machine() {
      return (machine ??= createWorkflowMachine(id));
    },
    node: (name) => specs.get(name),
  };
  Object.defineProperty(workflow, WORKFLOW_BRAND, { value: true });
  return Object.freeze(workflow);
}

function readNodes<I>(nodes: WorkflowDefinition<I>['nodes'] | undefined): [unknown, WorkflowNode<I>][] {
  if (Array.isArray(nodes)) {
    return (nodes as readonly (WorkflowNode<I> & { readonly name: string })[]).map((node) => [
      typeof node === 'object' && node !== null ? node.name : undefined,
      node,
    ]);
  }
  if (typeof nodes !== 'object' || nodes === null) {
    throw invalid('no_nodes', `"nodes" must be an object of named nodes or an array, got ${typeOf(nodes)}`, { field: 'nodes' });
  }
  return Object.keys(nodes).map((name) => [name, (nodes as Record<string, WorkflowNode<I>>)[name] as WorkflowNode<I>]);
}

function checkNode<I>(name: string, node: WorkflowNode<I>, needs: readonly string[], dependents: readonly string[]): WorkflowNodeSpec {
  if (node.agent === undefined || node.agent === null) throw invalid('missing_agent', `Node "${name}" has no agent`, { node: name, field: 'agent' });
  let agentName: string;
  try {
    agentName = checkAgent(node.agent);
  } catch (error) {
    if (!OaoError.isInstance(error)) throw error;
    throw new OaoError(error.code, `Node "${name}": ${error.message}`, { cause: error, details: { ...error.details, node: name } });
  }
  for (const key of ['task', 'each', 'when'] as const) {
    if (node[key] !== undefined && typeof node[key] !== 'function') {
      throw invalid('invalid_node', `Node "${name}": "${key}" must be a function, got ${typeOf(node[key])}`, { node: name, field: key });
    }
  }
  let policy: StrictPolicy | undefined;
  if (node.policy !== undefined) {
    try {
      policy = node.policy instanceof StrictPolicy ? node.policy : new StrictPolicy(node.policy);
    } catch (error) {
      if (!OaoError.isInstance(error)) throw error;
      throw new OaoError(error.code, `Node "${name}": ${error.message}`, { cause: error, details: { ...error.details, node: name } });
    }
  }
  if (node.tools !== undefined && (typeof node.tools !== 'object' || node.tools === null || Array.isArray(node.tools))) {
    throw invalid('invalid_node', `Node "${name}": "tools" must be an object of functions`, { node: name, field: 'tools' });
  }
  return Object.freeze({
    name,
    agent: node.agent,
    agentName,
    needs: Object.freeze([...needs]),
    dependents: Object.freeze([...dependents]),
    task: node.task,
    each: node.each,
    when: node.when,
    policy,
    tools: node.tools,
  });
}

/** Kahn's algorithm, in definition order among ready nodes; a leftover means a cycle, named by its path. */
function topologicalOrder(byName: ReadonlyMap<string, { needs: readonly string[] }>, dependents: ReadonlyMap<string, readonly string[]>): string[] {
  const missing = new Map<string, number>();
  const ready: string[] = [];
  for (const [name, { needs }] of byName) {
    missing.set(name, needs.length);
    if (needs.length === 0) ready.push(name);
  }
  const order: string[] = [];
  for (let i = 0; i < ready.length; i++) {
    const name = ready[i] as string;
    order.push(name);
    for (const dependent of dependents.get(name) ?? []) {
      const left = (missing.get(dependent) as number) - 1;
      missing.set(dependent, left);
      if (left === 0) ready.push(dependent);
    }
  }
  if (order.length === byName.size) return order;
  const cycle = findCycle(byName, new Set(order));
  throw new OaoError('OAO_ERR_WORKFLOW_CYCLE', `The workflow's nodes need each other in a cycle: ${cycle.join(' -> ')}`, { details: { cycle } });
}

/** A cycle among the nodes Kahn's algorithm could not order: walk `needs` until a node repeats. */
function findCycle(byName: ReadonlyMap<string, { needs: readonly string[] }>, ordered: ReadonlySet<string>): string[] {
  const start = [...byName.keys()].find((name) => !ordered.has(name)) as string;
  const path: string[] = [];
  const seen = new Map<string, number>();
  let current = start;
  // Every unordered node needs at least one unordered node, so this walk must revisit one.
  while (!seen.has(current)) {
    seen.set(current, path.length);
    path.push(current);
    current = (byName.get(current) as { needs: readonly string[] }).needs.find((need) => !ordered.has(need)) as string;
  }
  // The walk follows `needs` (backwards along the edges): report it in the direction work flows.
  return [...path.slice(seen.get(current)), current].reverse();
}
