import { isBaseMessage } from '@langchain/core/messages';
import type { AgentContext } from '../../agent.js';
import { OaoError } from '../../errors.js';
import {
  resolveOptions,
  runnableAgent,
  type RunnableAgent,
  type RunnableAgentOptions,
  type RunnableLike,
} from '../langchain/fromRunnable.js';

export interface GraphAgentOptions extends RunnableAgentOptions {
  /**
   * `'modelCall'`: one OAO step per model call of the graph; the graph runs once across the run's
   * steps, pausing before each further model call until REVIEW continues and `maxSteps` allows it.
   * `'run'`: one step runs the whole graph (every model call inside it still metered and gated).
   * @default 'modelCall'
   */
  readonly steps?: RunnableAgentOptions['steps'];
  /**
   * Graph supersteps one model turn takes, for the `recursionLimit` backstop of `'modelCall'` runs:
   * `recursionLimit = (maxSteps + 1) * superstepsPerTurn` unless `config.recursionLimit` is set.
   * The prebuilt ReAct agent takes 2 (the model node, the tool node).
   * @default 2
   */
  readonly superstepsPerTurn?: number;
}

/**
 * Governs a compiled LangGraph.js graph (a `StateGraph`, the prebuilt ReAct agent, a supervisor):
 * its model calls are metered and gated as they happen, its governed tools (`governTools`) go
 * through the run's policy, the run's signal reaches the running node, and by default each model
 * turn is one OAO step, so `maxSteps` bounds the graph's loop (with `recursionLimit` as a backstop).
 *
 * The graph's input: a string task becomes `{ messages: [{ role: 'user', content: task }] }`, an
 * array becomes `{ messages }`, an object is passed as it is. Its output: the final state's
 * `structuredResponse` if any, else the text of its last message, else the state.
 *
 * @example
 * ```ts
 * import { createReactAgent } from '@langchain/langgraph/prebuilt';
 * import { fromGraph, governTools } from 'open-agent-orchestrator/langgraph';
 * const tools = governTools([search]);
 * const agent = fromGraph(createReactAgent({ llm: model, tools }), { tools });
 * const report = await orch.run({ agent, tools: agent.tools, task: 'What is OAO?' });
 * report.totalSteps; // model turns
 * ```
 */
export function fromGraph(graph: RunnableLike, options: GraphAgentOptions = {}): RunnableAgent {
  const settings = resolveOptions(graph, options, { steps: 'modelCall', input: graphInput, output: graphOutput });
  const perTurn = options.superstepsPerTurn ?? 2;
  if (!Number.isInteger(perTurn) || perTurn < 1) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected superstepsPerTurn to be a whole number from 1 up, got ${String(perTurn)}`, {
      details: { field: 'superstepsPerTurn' },
    });
  }
  const explicitLimit = settings.config?.recursionLimit;
  return runnableAgent(graph, {
    ...settings,
    recursionLimit: (ctx: AgentContext) => explicitLimit ?? (ctx.budget.steps.limit + 1) * perTurn,
    mapError: recursionAsFailure,
  });
}

function graphInput(task: unknown): unknown {
  if (typeof task === 'string') return { messages: [{ role: 'user', content: task }] };
  if (Array.isArray(task)) return { messages: task };
  return task;
}

function graphOutput(state: unknown): unknown {
  if (typeof state !== 'object' || state === null) return state ?? null;
  const record = state as { structuredResponse?: unknown; messages?: unknown };
  if (record.structuredResponse !== undefined) return record.structuredResponse;
  if (Array.isArray(record.messages)) {
    const last: unknown = record.messages[record.messages.length - 1];
    if (isBaseMessage(last)) return last.text;
  }
  return state;
}

/** The graph's recursion backstop tripped: a failure no retry can fix. */
function recursionAsFailure(error: unknown): unknown {
  if (error instanceof Error && error.name === 'GraphRecursionError') {
    return new OaoError('OAO_ERR_AGENT_FAILED', error.message, { retryable: false, cause: error, details: { graphError: 'GraphRecursionError' } });
  }
  return error;
}
