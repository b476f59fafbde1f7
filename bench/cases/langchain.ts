import { BaseCallbackHandler } from '@langchain/core/callbacks/base';
import { StringOutputParser } from '@langchain/core/output_parsers';
import { ChatPromptTemplate } from '@langchain/core/prompts';
import { FakeListChatModel } from '@langchain/core/utils/testing';
import { createReactAgent } from '@langchain/langgraph/prebuilt';
import { Orchestrator, type ExecutionReport } from 'open-agent-orchestrator';
import { fromRunnable } from 'open-agent-orchestrator/langchain';
import { fromGraph } from 'open-agent-orchestrator/langgraph';
import { DummyAgent, TASK } from '../baselines.js';
import type { BenchCase, BenchDifference, BenchRatio } from '../harness.js';

/**
 * What governing a LangChain.js Runnable or a LangGraph.js graph costs: the same object invoked
 * directly, then as an OAO agent (a config with OAO's awaited callback handler, a governed model
 * call per LLM call, the lifecycle, events with one subscriber). The models are LangChain's own
 * FakeListChatModel, so the rows measure the frameworks and OAO, not a provider.
 *
 * Side by side with the governed chain: a governed trivial run (what any governed run costs), the
 * raw chain invoked as OAO invokes it (an awaited callback handler that does nothing, and a
 * signal: what LangChain itself spends on being observed), and a governed run whose agent invokes
 * that observed chain itself (everything but OAO's LangChain handling). What OAO's handling adds
 * (the handler's gating and metering, the model call's events) is the governed chain minus that
 * last row; the differences below print it.
 */

const ANSWER = 'Governed.';
const TOPIC = { topic: 'agent governance' };

function chain() {
  return ChatPromptTemplate.fromTemplate('Explain {topic} in one line.')
    .pipe(new FakeListChatModel({ responses: [ANSWER] }))
    .pipe(new StringOutputParser());
}

function graph() {
  return createReactAgent({ llm: new FakeListChatModel({ responses: [ANSWER] }), tools: [] });
}

/** An awaited, raising handler that does nothing: LangChain's own cost of calling one. */
class IdleHandler extends BaseCallbackHandler {
  name = 'IdleHandler';
  override awaitHandlers = true;
  override raiseError = true;
  override ignoreChain = true;
  override async handleChatModelStart(): Promise<void> {}
  override handleLLMEnd(): void {}
}

function subscribedOrchestrator(): Orchestrator {
  const orch = new Orchestrator();
  orch.events$.subscribe(() => {});
  return orch;
}

function expectAnswer(value: unknown, what: string): void {
  if (value !== ANSWER) throw new Error(`bench: ${what} answered ${JSON.stringify(value)}`);
}

function expectSuccess(report: ExecutionReport, what: string): void {
  if (report.status !== 'SUCCESS') throw new Error(`bench: ${what} ended ${JSON.stringify(report.termination)}`);
  expectAnswer(report.finalOutput, what);
}

export const langchainCases: readonly BenchCase[] = [
  {
    kind: 'time',
    id: 'langchain.raw',
    group: 'langchain',
    label: 'raw: chain.invoke()',
    description: 'prompt | FakeListChatModel | StringOutputParser, invoked directly.',
    mode: 'async',
    setup: async () => {
      const runnable = chain();
      expectAnswer(await runnable.invoke(TOPIC), 'the raw chain');
      return () => runnable.invoke(TOPIC);
    },
  },
  {
    kind: 'time',
    id: 'langchain.observed',
    group: 'langchain',
    label: 'raw: chain.invoke(x, { callbacks, signal })',
    description: 'The raw chain with an idle awaited callback handler and a signal, as OAO invokes it: LangChain’s own share.',
    mode: 'async',
    setup: async () => {
      const runnable = chain();
      const controller = new AbortController();
      const invoke = () => runnable.invoke(TOPIC, { callbacks: [new IdleHandler()], signal: controller.signal });
      expectAnswer(await invoke(), 'the observed chain');
      return invoke;
    },
  },
  {
    kind: 'time',
    id: 'langchain.trivial',
    group: 'langchain',
    label: 'governed: run(DummyAgent)',
    description: 'A governed trivial run on the same kind of orchestrator (one events$ subscriber): the floor of any governed run.',
    mode: 'async',
    setup: async () => {
      const orch = subscribedOrchestrator();
      const agent = new DummyAgent();
      const report = await orch.run({ agent, task: TASK });
      if (report.status !== 'SUCCESS') throw new Error(`bench: the trivial run ended ${JSON.stringify(report.termination)}`);
      return () => orch.run({ agent, task: TASK });
    },
  },
  {
    kind: 'time',
    id: 'langchain.trivialObserved',
    group: 'langchain',
    label: 'governed: run(agent that invokes the observed chain)',
    description:
      'A governed run whose agent invokes the chain with the idle handler and the step’s signal, as the observed row does: ' +
      'a governed run plus LangChain’s own cost, without OAO’s LangChain handling.',
    mode: 'async',
    setup: async () => {
      const orch = subscribedOrchestrator();
      const runnable = chain();
      const agent = {
        name: 'observed-chain',
        async invoke(task: typeof TOPIC, ctx: { readonly signal: AbortSignal }) {
          return { output: await runnable.invoke(task, { callbacks: [new IdleHandler()], signal: ctx.signal }) };
        },
      };
      expectSuccess(await orch.run({ agent, task: TOPIC }), 'the governed run around the observed chain');
      return () => orch.run({ agent, task: TOPIC });
    },
  },
  {
    kind: 'time',
    id: 'langchain.governed',
    group: 'langchain',
    label: 'governed: run(fromRunnable(chain))',
    description: 'The same chain as an OAO agent: one step, its model call metered and gated; one events$ subscriber.',
    mode: 'async',
    setup: async () => {
      const orch = subscribedOrchestrator();
      const agent = fromRunnable(chain());
      expectSuccess(await orch.run({ agent, task: TOPIC }), 'the governed chain');
      return () => orch.run({ agent, task: TOPIC });
    },
  },
  {
    kind: 'time',
    id: 'langgraph.raw',
    group: 'langchain',
    label: 'raw: reactAgent.invoke()',
    description: "LangGraph's prebuilt ReAct agent on FakeListChatModel (one model turn, no tools), invoked directly.",
    mode: 'async',
    setup: async () => {
      const agent = graph();
      const run = async () => {
        const state = await agent.invoke({ messages: [{ role: 'user', content: 'Why govern agents?' }] });
        return state.messages[state.messages.length - 1]?.text;
      };
      expectAnswer(await run(), 'the raw graph');
      return run;
    },
  },
  {
    kind: 'time',
    id: 'langgraph.governed',
    group: 'langchain',
    label: 'governed: run(fromGraph(reactAgent))',
    description: 'The same graph as an OAO agent, one step per model turn; one events$ subscriber.',
    mode: 'async',
    setup: async () => {
      const orch = subscribedOrchestrator();
      const agent = fromGraph(graph());
      expectSuccess(await orch.run({ agent, task: 'Why govern agents?' }), 'the governed graph');
      return () => orch.run({ agent, task: 'Why govern agents?' });
    },
  },
];

/** The aim: a governed chain costs at most 100 µs more than a governed trivial run. */
export const langchainDifferences: readonly BenchDifference[] = [
  { id: 'langchainGoverned-trivial', label: 'governed chain - governed trivial run', minuend: 'langchain.governed', subtrahend: 'langchain.trivial', atMostNs: 100_000 },
  { id: 'langchainObserved-raw', label: 'observed chain - raw chain (LangChain observed)', minuend: 'langchain.observed', subtrahend: 'langchain.raw' },
  {
    id: 'langchainGoverned-trivialObserved',
    label: 'governed chain - governed run around the observed chain (OAO handling)',
    minuend: 'langchain.governed',
    subtrahend: 'langchain.trivialObserved',
  },
];

export const langchainRatios: readonly BenchRatio[] = [
  { id: 'langchainGoverned/raw', label: 'governed chain / raw chain', numerator: 'langchain.governed', denominator: 'langchain.raw' },
  { id: 'langchainGoverned/trivial', label: 'governed chain / governed trivial run', numerator: 'langchain.governed', denominator: 'langchain.trivial' },
  { id: 'langchainObserved/raw', label: 'observed chain / raw chain', numerator: 'langchain.observed', denominator: 'langchain.raw' },
  { id: 'langgraphGoverned/raw', label: 'governed graph / raw graph', numerator: 'langgraph.governed', denominator: 'langgraph.raw' },
];
