import { ToolMessage, type BaseMessage } from '@langchain/core/messages';
import type { RunnableConfig } from '@langchain/core/runnables';
import type { Agent, AgentContext, ReviewDecision, StepResult, ToolSet } from '../../agent.js';
import { OaoError } from '../../errors.js';
import { checkUngovernedPolicy, governStep } from './governedConfig.js';
import { hasArtifact, requireRunTools, toolSet, type LangChainTool } from './governTools.js';
import { recordMessages, taskMessages, toolContent } from './messages.js';
import { NO_TOOL_TIMEOUTS, type UngovernedToolPolicy } from './runBridge.js';

/** A chat model: `BaseChatModel` (tools are bound with `bindTools`) or a model with tools already bound. */
export interface ChatModelLike {
  invoke(input: BaseMessage[], config?: any): Promise<BaseMessage>;
  bindTools?(tools: any[], kwargs?: any): ChatModelLike;
  getName?(): string;
}

/** What a failing tool body does to the loop. */
export type ToolErrorMode = 'message' | 'fail';

export interface ChatModelAgentOptions {
  /** The agent's name in reports and events. @default the model's `getName()` */
  readonly name?: string;
  /** The tools the model may call. They are bound to the model when it has `bindTools`. @default [] */
  readonly tools?: readonly LangChainTool[];
  /** A system message put first in the conversation. */
  readonly systemPrompt?: string;
  /**
   * `'message'`: a tool that throws (or a call of an unknown tool) becomes a tool message with
   * `status: 'error'` and the error's text, and the model gets another turn, as LangGraph's ToolNode
   * does. `'fail'`: the step fails with the tool's error (the run fails, or the step is retried
   * under the policy's `retry`). Governance errors (a denied tool, a limit, a cancel) always end
   * the run.
   * @default 'message'
   */
  readonly toolErrors?: ToolErrorMode;
  /** Run the tool calls of one model turn at once (in order of the calls) or one after another. @default true */
  readonly parallelToolCalls?: boolean;
  /** A base `RunnableConfig` for every model call: callbacks, tags, metadata, an extra signal. */
  readonly config?: RunnableConfig;
  /** @default 'govern' (see `governedConfig`) */
  readonly ungovernedTools?: UngovernedToolPolicy;
}

/** A tool-calling agent loop. Pass its `tools` with the run request. */
export interface ChatModelAgent extends Agent {
  readonly name: string;
  readonly tools: ToolSet;
  plan(task: unknown): Conversation;
  invoke(input: unknown, ctx: AgentContext): Promise<{ output: string }>;
  review(result: StepResult): ReviewDecision;
}

const GOVERNANCE_CODES = new Set(['OAO_ERR_TOOL_DENIED', 'OAO_ERR_POLICY_VIOLATION', 'OAO_ERR_CANCELLED', 'OAO_ERR_TIMEOUT', 'OAO_ERR_RUN_FINISHED']);

/**
 * A tool-calling agent on a chat model: model → tool calls → tool results → model … Each model turn
 * (the model call and the tool calls it asked for) is one OAO step, so `maxSteps` bounds the loop
 * and REVIEW continues it while the model keeps calling tools. Every model call is metered and
 * gated, every tool call goes through the run's policy.
 *
 * @example
 * ```ts
 * import { fromChatModel } from 'open-agent-orchestrator/langchain';
 * const agent = fromChatModel(new ChatOpenAI({ model: 'gpt-4o-mini' }), { tools: [search] });
 * const report = await orch.run({ agent, tools: agent.tools, task: 'Who won the 2022 World Cup?' });
 * ```
 */
export function fromChatModel(model: ChatModelLike, options: ChatModelAgentOptions = {}): ChatModelAgent {
  if (typeof model !== 'object' || model === null || typeof model.invoke !== 'function') {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected a chat model (an object with invoke()), got ${model === null ? 'null' : typeof model}`, {
      details: { field: 'model' },
    });
  }
  const { name, tools: toolList = [], systemPrompt, toolErrors = 'message', parallelToolCalls = true, config } = options;
  if (toolErrors !== 'message' && toolErrors !== 'fail') {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected toolErrors to be "message" or "fail", got ${JSON.stringify(toolErrors)}`, {
      details: { field: 'toolErrors' },
    });
  }
  if (systemPrompt !== undefined && typeof systemPrompt !== 'string') {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected systemPrompt to be a string, got ${typeof systemPrompt}`, { details: { field: 'systemPrompt' } });
  }
  if (typeof parallelToolCalls !== 'boolean') {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected parallelToolCalls to be a boolean, got ${typeof parallelToolCalls}`, {
      details: { field: 'parallelToolCalls' },
    });
  }
  const ungovernedTools = checkUngovernedPolicy(options.ungovernedTools);
  const tools = toolSet(toolList);
  const toolNames = Object.keys(tools);
  const bound = toolList.length > 0 && typeof model.bindTools === 'function' ? model.bindTools([...toolList]) : model;
  const agentName = name ?? modelName(model);
  // The conversation after each step, keyed by the step's input: found again by REVIEW, gone with the run.
  const next = new WeakMap<Conversation, Conversation>();

  const withArtifact = new Set(toolList.filter(hasArtifact).map((t) => t.name));

  const callTool = async (ctx: AgentContext, call: ToolCallRequest): Promise<ToolMessage> => {
    const id = call.id ?? '';
    try {
      const result = await ctx.callTool(call.name, call.args);
      if (withArtifact.has(call.name) && Array.isArray(result) && result.length === 2) {
        return new ToolMessage({ content: toolContent(result[0]), artifact: result[1], tool_call_id: id, name: call.name });
      }
      return new ToolMessage({ content: toolContent(result), tool_call_id: id, name: call.name });
    } catch (error) {
      if (toolErrors === 'fail' || (OaoError.isInstance(error) && GOVERNANCE_CODES.has(error.code))) throw error;
      const text = error instanceof Error ? error.message : String(error);
      return new ToolMessage({ content: `Error: ${text}`, tool_call_id: id, name: call.name, status: 'error' });
    }
  };

  return {
    name: agentName,
    tools,
    plan(task: unknown): Conversation {
      return task instanceof Conversation ? task : new Conversation(taskMessages(task, systemPrompt), false);
    },
    async invoke(input: unknown, ctx: AgentContext) {
      requireRunTools(ctx, toolNames);
      const conversation = input instanceof Conversation ? input : new Conversation(taskMessages(input, systemPrompt), false);
      // Refuse up front when the budget is spent: no model call, no handler error logged by LangChain.
      if (ctx.budget.tokens.remaining <= 0) ctx.beginModelCall({ model: agentName });
      const { config: runConfig, bridge } = governStep(ctx, config, { ungovernedTools, timer: NO_TOOL_TIMEOUTS });
      let response: BaseMessage;
      try {
        response = await bound.invoke([...conversation.messages], runConfig);
      } catch (error) {
        bridge.throwIfFailed();
        throw error;
      }
      const calls = toolCallsOf(response);
      let results: ToolMessage[] = [];
      if (parallelToolCalls) {
        const settled = await Promise.allSettled(calls.map((call) => callTool(ctx, call)));
        const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
        if (failure !== undefined) throw failure.reason;
        results = settled.map((s) => (s as PromiseFulfilledResult<ToolMessage>).value);
      } else {
        for (const call of calls) results.push(await callTool(ctx, call));
      }
      next.set(conversation, new Conversation([...conversation.messages, response, ...results], calls.length > 0));
      return { output: response.text };
    },
    review(result: StepResult): ReviewDecision {
      const following = result.input instanceof Conversation ? next.get(result.input) : undefined;
      // The model answered without calling tools: done. Otherwise it gets the tool results next step.
      if (following === undefined || !following.awaitsModel) return { done: true };
      return { done: false, input: following };
    },
  };
}

interface ToolCallRequest {
  readonly name: string;
  readonly args: unknown;
  readonly id?: string;
}

function toolCallsOf(message: BaseMessage): ToolCallRequest[] {
  const calls = (message as { tool_calls?: ToolCallRequest[] }).tool_calls;
  return Array.isArray(calls) ? calls : [];
}

function modelName(model: ChatModelLike): string {
  try {
    const name = model.getName?.();
    if (typeof name === 'string' && name.length > 0) return name;
  } catch {
    // fall back
  }
  return 'chat-model';
}

/**
 * The conversation a tool-calling loop carries from step to step (each step's input). Recorded in
 * events as `{ messages: [{ role, content, tool_calls?, tool_call_id? }] }`.
 */
export class Conversation {
  readonly messages: readonly BaseMessage[];
  /** The last turn called tools: the model must see their results. */
  readonly awaitsModel: boolean;

  constructor(messages: readonly BaseMessage[], awaitsModel: boolean) {
    this.messages = Object.freeze([...messages]);
    this.awaitsModel = awaitsModel;
  }

  toJSON(): { messages: Record<string, unknown>[] } {
    return { messages: recordMessages(this.messages) };
  }
}
