import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition } from 'xstate';

/** One top-level state of a machine, as the dashboard draws it. */
export interface StatechartState {
  readonly name: string;
  /** XState's node type: `atomic`, `compound`, `parallel`, `final` or `history`. */
  readonly type: string;
  readonly final: boolean;
  /** The state's own substates, by key (empty for an atomic state). */
  readonly substates: readonly string[];
  /**
   * Where a run can wait for a person inside this state, at any depth: the substates named
   * `AWAITING_...`, as dotted paths from the state (`running.AWAITING_APPROVAL`).
   */
  readonly waits: readonly string[];
}

/** A transition between two different top-level states, with every event that can take it. */
export interface StatechartEdge {
  readonly source: string;
  readonly target: string;
  /** Event types, in the order first met; `always`, `after <delay>`, `done` and `error` for the built-in ones. */
  readonly events: readonly string[];
}

/** A machine reduced to its top-level states and the edges between them. */
export interface Statechart {
  readonly id: string;
  readonly initial: string | null;
  /** In definition order. */
  readonly states: readonly StatechartState[];
  readonly edges: readonly StatechartEdge[];
}

/**
 * Reduces a machine to what a picture of its top level needs: its top-level states in definition
 * order and the edges between them. Every transition of every state node is considered (event
 * transitions, eventless `always`, delayed `after`, invoke `onDone` / `onError`), both ends are
 * mapped to their top-level ancestor, and self-edges are dropped. A transition of the root itself
 * (an `on` of the whole machine) can be taken from every top-level state that is not final, so it
 * is drawn from each of them.
 *
 * Read from the machine object, not from a copy of its shape, so the picture cannot drift from
 * the lifecycle that actually runs.
 *
 * @example
 * ```ts
 * import { agentLifecycleMachine } from 'open-agent-orchestrator';
 * const chart = describeStatechart(agentLifecycleMachine);
 * chart.edges.find((edge) => edge.source === 'REVIEW' && edge.target === 'EXECUTE'); // { ..., events: ['AGENT.DONE'] }
 * ```
 */
export function describeStatechart(machine: AnyStateMachine): Statechart {
  const root = machine.root;
  const topLevel = Object.values(root.states);
  const states = topLevel.map(
    (node): StatechartState => ({
      name: node.key,
      type: node.type,
      final: node.type === 'final',
      substates: Object.keys(node.states),
      waits: descendantsOf(node)
        .filter((inner) => inner !== node && inner.key.startsWith('AWAITING_'))
        .map((inner) => inner.path.slice(node.path.length).join('.')),
    }),
  );
  const running = topLevel.filter((node) => node.type !== 'final').map((node) => node.key);
  const edges = new Map<string, { source: string; target: string; events: string[] }>();

  const add = (source: string, target: string, event: string): void => {
    if (source === target) return;
    const key = `${source}\u0000${target}`;
    let edge = edges.get(key);
    if (edge === undefined) {
      edge = { source, target, events: [] };
      edges.set(key, edge);
    }
    if (!edge.events.includes(event)) edge.events.push(event);
  };

  for (const node of descendantsOf(root)) {
    const from = topLevelKey(node, root);
    for (const transition of transitionsOf(node)) {
      const event = eventLabel(transition.eventType, node);
      for (const targetNode of transition.target ?? []) {
        const to = topLevelKey(targetNode, root);
        // A target outside every top-level state (the root itself) has no box to point at.
        if (to === undefined) continue;
        if (from === undefined) for (const source of running) add(source, to, event);
        else add(from, to, event);
      }
    }
  }

  const initial = root.initial.target[0];
  return {
    id: machine.id,
    initial: initial === undefined ? null : (topLevelKey(initial, root) ?? null),
    states,
    edges: [...edges.values()],
  };
}

/** The node and every node below it, depth first, in definition order. */
function descendantsOf(node: AnyStateNode): AnyStateNode[] {
  return [node, ...Object.values(node.states).flatMap((child) => descendantsOf(child))];
}

/**
 * Every transition defined on a node. `transitions` holds the event, delayed and done / error
 * transitions; eventless ones are kept apart in `always`.
 */
function transitionsOf(node: AnyStateNode): AnyTransitionDefinition[] {
  return [...[...node.transitions.values()].flat(), ...(node.always ?? [])];
}

/** The key of the top-level state that is, or contains, `node`; undefined for the root. */
function topLevelKey(node: AnyStateNode, root: AnyStateNode): string | undefined {
  let current = node;
  while (current.parent !== undefined && current.parent !== root) current = current.parent;
  return current === root ? undefined : current.key;
}

/** Built-in event types read as what they mean; a user's own events keep their names. */
function eventLabel(eventType: string, node: AnyStateNode): string {
  if (eventType === '') return 'always';
  // `xstate.after.<delay>.<id of the state node>`: the delay is a name or a number of milliseconds.
  const afterPrefix = 'xstate.after.';
  const afterSuffix = `.${node.id}`;
  if (eventType.startsWith(afterPrefix) && eventType.endsWith(afterSuffix)) {
    const delay = eventType.slice(afterPrefix.length, -afterSuffix.length);
    return /^\d+$/.test(delay) ? `after ${delay} ms` : `after ${delay}`;
  }
  if (eventType.startsWith('xstate.done.actor.') || eventType.startsWith('xstate.done.state.')) return 'done';
  if (eventType.startsWith('xstate.error.actor.')) return 'error';
  return eventType;
}
