import type { CallbackManagerForToolRun } from '@langchain/core/callbacks/manager';
import type { ToolMessage } from '@langchain/core/messages';
import type { RunnableConfig } from '@langchain/core/runnables';
import { DynamicStructuredTool, type StructuredToolInterface } from '@langchain/core/tools';
import type { ToolCallContext, ToolFunction, ToolSet } from '../../agent.js';
import { OaoError } from '../../errors.js';
import type { ToolTimer } from '../shared/toolTimeouts.js';
import { GOVERNED_TAG, NO_TOOL_TIMEOUTS, bridgeOf } from './runBridge.js';

/** A LangChain tool: `tool(...)`, a `StructuredTool` or a `DynamicTool`. */
export type LangChainTool = StructuredToolInterface;

/** Fields every LangChain tool class has, though the interface does not declare them. */
type ToolFields = LangChainTool & {
  readonly responseFormat?: string;
  readonly metadata?: Record<string, unknown>;
  readonly tags?: string[];
};

const originals = new WeakMap<object, LangChainTool>();

/**
 * Governed stand-ins for LangChain tools, to build a graph or agent with. The originals are not
 * changed. Inside an OAO run (a config from `fromGraph`, `fromRunnable` or `governedConfig`), a call
 * of a stand-in goes through the run's policy first: a denied or over-limit call never runs the
 * original's body, an allowed one is recorded with its arguments and result. Outside OAO a stand-in
 * behaves exactly like its original.
 *
 * The run must supply the tools' bodies: pass the agent's `tools` (`orch.run({ agent, tools:
 * agent.tools, task })`), built by `fromGraph(graph, { tools })` or {@link toolSet}.
 *
 * @example
 * ```ts
 * const tools = governTools([search, calculator]);
 * const graph = createReactAgent({ llm: model, tools });
 * const agent = fromGraph(graph, { tools });
 * const report = await orch.run({ agent, tools: agent.tools, task: 'What is 6 times 7?' });
 * ```
 */
export function governTools(tools: readonly LangChainTool[]): LangChainTool[] {
  checkTools(tools);
  return tools.map((t) => (originals.has(t) ? t : wrap(t)));
}

/** Whether `tool` is a stand-in made by {@link governTools}. */
export function isGovernedTool(tool: unknown): boolean {
  return typeof tool === 'object' && tool !== null && originals.has(tool);
}

/**
 * The run request's `tools` for LangChain tools (originals or governed stand-ins): each entry runs
 * the original tool with the governed call's signal, so cancelling the run reaches a running tool,
 * under the per-tool time limits of `timer` when given.
 */
export function toolSet(tools: readonly LangChainTool[], timer: ToolTimer = NO_TOOL_TIMEOUTS): ToolSet {
  checkTools(tools);
  const set: Record<string, ToolFunction> = {};
  for (const t of tools) {
    const original: ToolFields = originals.get(t) ?? t;
    set[original.name] =
      timer.limitOf(original.name) === undefined
        ? (args: unknown, call: ToolCallContext) => runOriginal(original, args, call, call.signal)
        : (args: unknown, call: ToolCallContext) => timer.run(original.name, call, (signal) => runOriginal(original, args, call, signal));
  }
  return Object.freeze(set);
}

function runOriginal(original: ToolFields, args: unknown, call: ToolCallContext, signal: AbortSignal): Promise<unknown> {
  const config = {
    signal,
    tags: [GOVERNED_TAG],
    metadata: { oao_execution_id: call.executionId, oao_call_id: call.callId },
  };
  return invokeOriginal(original, args, config, call.callId);
}

/**
 * Runs an original tool. A tool whose `responseFormat` is `content_and_artifact` is run as a tool
 * call, the only way it gives back its artifact, and returns `[content, artifact]` as its own
 * function does.
 */
function invokeOriginal(original: ToolFields, args: unknown, config: Record<string, unknown>, toolCallId: string): Promise<unknown> {
  if (original.responseFormat !== 'content_and_artifact') return original.invoke(args as never, config);
  const call = { type: 'tool_call' as const, id: toolCallId, name: original.name, args: args as Record<string, unknown> };
  return (original.invoke(call, config) as Promise<ToolMessage>).then((message) => [message.content, message.artifact]);
}

/** Whether a tool returns `[content, artifact]`. */
export function hasArtifact(tool: LangChainTool): boolean {
  return ((originals.get(tool) ?? tool) as ToolFields).responseFormat === 'content_and_artifact';
}

function wrap(original: ToolFields): LangChainTool {
  const stand = new DynamicStructuredTool({
    name: original.name,
    description: original.description,
    schema: original.schema as never,
    returnDirect: original.returnDirect,
    ...(original.responseFormat === undefined ? {} : { responseFormat: original.responseFormat }),
    ...(original.metadata === undefined ? {} : { metadata: original.metadata }),
    tags: [...(original.tags ?? []), GOVERNED_TAG],
    func: (parsed: unknown, runManager?: CallbackManagerForToolRun, config?: RunnableConfig) => {
      const toolCall = (config as { toolCall?: { args?: unknown; id?: string } } | undefined)?.toolCall;
      // The model's own arguments: the original validates them again, and a transforming schema
      // must not see its own output.
      const args = toolCall?.args ?? parsed;
      const bridge = bridgeOf(config);
      if (bridge !== undefined) return bridge.callTool(original.name, args);
      // Outside an OAO run a stand-in is its original, traced as its child run.
      const { toolCall: _call, ...rest } = (config ?? {}) as Record<string, unknown>;
      return invokeOriginal(original, args, { ...rest, callbacks: runManager?.getChild() }, toolCall?.id ?? 'call');
    },
  });
  originals.set(stand, original);
  return stand as LangChainTool;
}

function checkTools(tools: readonly LangChainTool[]): void {
  if (!Array.isArray(tools)) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected tools to be an array of LangChain tools, got ${typeof tools}`, {
      details: { field: 'tools' },
    });
  }
  const seen = new Set<string>();
  tools.forEach((t, index) => {
    const candidate = t as Partial<LangChainTool> | null;
    if (typeof candidate !== 'object' || candidate === null || typeof candidate.name !== 'string' || typeof candidate.invoke !== 'function') {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected tools[${index}] to be a LangChain tool (with a name and invoke()), got ${typeof t}`, {
        details: { field: `tools[${index}]` },
      });
    }
    if (seen.has(candidate.name)) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Two tools are named "${candidate.name}": tool names must be unique`, {
        details: { field: `tools[${index}].name` },
      });
    }
    seen.add(candidate.name);
  });
}

/** The run's tools must include the agent's: a clear error when `tools: agent.tools` was left out. */
export function requireRunTools(ctx: { readonly tools: Readonly<Record<string, unknown>> }, names: readonly string[]): void {
  for (const name of names) {
    if (ctx.tools[name] === undefined) {
      throw new OaoError(
        'OAO_ERR_INVALID_ARGUMENT',
        `The run has no tool "${name}", which the agent uses: pass the agent's tools with the request, orch.run({ agent, tools: agent.tools, task })`,
        { retryable: false, details: { tool: name } },
      );
    }
  }
}
