import type { AgentContext, StepResult } from '../agent.js';
import { OaoError } from '../errors.js';
import type { Orchestrator } from '../Orchestrator.js';
import type { ExecutionReport, JsonValue } from '../report/schema.js';

/** The limits of the demo's one orchestrator; the hung agent's run narrows `timeoutMs` further. */
export const DEMO_POLICY = { maxSteps: 3, maxTokens: 1_000, maxToolCalls: 3, timeoutMs: 2_000 } as const;

/** The hung agent's run gets this much wall time: small, so the demo stays fast. */
export const HUNG_TIMEOUT_MS = 150;

/** What one scenario's run produced, beyond its report: facts only the demo's own agents and tools could observe. */
export interface ScenarioOutcome {
  readonly report: ExecutionReport;
  /** JSON-safe observations (how often a tool body ran, whether a signal aborted...). */
  readonly facts: Readonly<Record<string, JsonValue>>;
  /** The same facts, said in a sentence each, for the human output. */
  readonly notes: readonly string[];
}

export interface DemoScenario {
  /** A short stable id: `well-behaved`, `runaway`, `tool-happy`, `hung`. */
  readonly name: string;
  /** What the scenario shows, in one line. */
  readonly title: string;
  /** How it must end, in words. */
  readonly expected: string;
  run(orch: Orchestrator): Promise<ScenarioOutcome>;
  /** What went differently from `expected`; empty when the run ended as it must. */
  check(outcome: ScenarioOutcome): string[];
}

/** Compares one field and says how it differed. */
function expectField(problems: string[], what: string, actual: unknown, expected: unknown): void {
  if (actual !== expected) problems.push(`${what} was ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
}

function expectEnd(report: ExecutionReport, status: 'SUCCESS' | 'FAILED', reason: string, rule?: string): string[] {
  const problems: string[] = [];
  expectField(problems, 'status', report.status, status);
  expectField(problems, 'termination.reason', report.termination.reason, reason);
  expectField(problems, 'termination.rule', report.termination.rule, rule);
  return problems;
}

/** a) Plans nothing, researches in two steps, reports its tokens both ways, and stops when its review is satisfied. */
const wellBehaved: DemoScenario = {
  name: 'well-behaved',
  title: 'A well-behaved agent: two steps, one allowed tool call, token usage reported',
  expected: 'SUCCESS, completed',
  async run(orch) {
    const researcher = {
      name: 'researcher',
      async invoke(question: string, ctx: AgentContext) {
        if (ctx.step === 1) {
          // Goes through the policy first; the body runs only if the call is allowed.
          const hits = await ctx.tools.search?.({ q: question });
          ctx.usage({ input: 120, output: 45 }); // metered live, mid-step
          return { output: `Found: ${String(hits)}` };
        }
        // Usage may also come with the output.
        return { output: 'Governance bounds what an agent may spend and do.', usage: { input: 80, output: 60 } };
      },
      review: (result: StepResult) => (result.step < 2 ? { done: false, input: 'summarize' } : { done: true }),
    };
    const report = await orch.run({
      agent: researcher,
      task: 'What is agent governance?',
      tools: { search: ({ q }: { q: string }) => `3 articles about "${q}"` },
    });
    return { report, facts: {}, notes: [] };
  },
  check({ report }) {
    const problems = expectEnd(report, 'SUCCESS', 'completed');
    expectField(problems, 'totalSteps', report.totalSteps, 2);
    expectField(problems, 'toolUsage.total', report.toolUsage.total, 1);
    expectField(problems, 'tokenUsage.total', report.tokenUsage.total, 305);
    return problems;
  },
};

/** b) Its review never says done: the guarded REVIEW -> EXECUTE edge refuses step maxSteps + 1. */
const runaway: DemoScenario = {
  name: 'runaway',
  title: `A runaway agent that always wants one more step, stopped by maxSteps (${DEMO_POLICY.maxSteps})`,
  expected: 'FAILED, policy_violation (max_steps)',
  async run(orch) {
    const looper = {
      name: 'looper',
      invoke: (_task: string, ctx: AgentContext) => ({ output: `still thinking (step ${ctx.step})`, usage: 50 }),
      review: () => ({ done: false }),
    };
    const report = await orch.run({ agent: looper, task: 'Think until you are sure' });
    return { report, facts: {}, notes: [`step ${DEMO_POLICY.maxSteps + 1} was refused before it started`] };
  },
  check({ report }) {
    const problems = expectEnd(report, 'FAILED', 'policy_violation', 'max_steps');
    expectField(problems, 'totalSteps', report.totalSteps, DEMO_POLICY.maxSteps);
    return problems;
  },
};

/** c) Calls a tool in a loop and even catches the refusal: the over-limit body never runs, and the run still fails. */
const toolHappy: DemoScenario = {
  name: 'tool-happy',
  title: `A tool-happy agent that calls a tool in a loop, stopped by maxToolCalls (${DEMO_POLICY.maxToolCalls})`,
  expected: 'FAILED, policy_violation (max_tool_calls); the refused call never runs',
  async run(orch) {
    let bodyRuns = 0;
    let attempts = 0;
    let refusal: string | null = null;
    let agentWork: Promise<unknown> = Promise.resolve();
    const crawl = async (site: string, ctx: AgentContext) => {
      const pages: unknown[] = [];
      for (let page = 1; page <= 10; page++) {
        attempts = page;
        try {
          pages.push(await ctx.callTool('fetchPage', { site, page }));
        } catch (error) {
          // Catching the refusal does not help: the run still ends with policy_violation.
          refusal = OaoError.isInstance(error) ? error.code : String(error);
          break;
        }
      }
      return { output: pages.length };
    };
    const crawler = {
      name: 'crawler',
      invoke(site: string, ctx: AgentContext) {
        return (agentWork = crawl(site, ctx));
      },
    };
    const report = await orch.run({
      agent: crawler,
      task: 'example.com',
      tools: {
        fetchPage: ({ site, page }: { site: string; page: number }) => {
          bodyRuns += 1;
          return `<html>${site} page ${page}</html>`;
        },
      },
    });
    // The run ended the moment call 4 was refused; the agent's own code learns of it a tick later.
    await agentWork.catch(() => undefined);
    return {
      report,
      facts: { toolBodyRuns: bodyRuns, callsAttempted: attempts, agentSawError: refusal },
      notes: [
        `tool body ran ${bodyRuns} times; call ${attempts} was refused before it ran`,
        `the agent caught ${refusal ?? 'nothing'} and returned normally, but the run still failed`,
      ],
    };
  },
  check({ report, facts }) {
    const problems = expectEnd(report, 'FAILED', 'policy_violation', 'max_tool_calls');
    expectField(problems, 'tool body runs', facts.toolBodyRuns, DEMO_POLICY.maxToolCalls);
    expectField(problems, 'tool calls attempted', facts.callsAttempted, DEMO_POLICY.maxToolCalls + 1);
    expectField(problems, 'toolUsage.total', report.toolUsage.total, DEMO_POLICY.maxToolCalls);
    expectField(problems, 'error the agent caught', facts.agentSawError, 'OAO_ERR_TOOL_DENIED');
    return problems;
  },
};

/** d) Never answers and ignores its signal: the deadline still ends the run, and the signal aborts. */
const hung: DemoScenario = {
  name: 'hung',
  title: `A hung agent that never answers and ignores its signal, cancelled at its ${HUNG_TIMEOUT_MS} ms timeout`,
  expected: 'FAILED, timeout; the step signal aborted',
  async run(orch) {
    let signal: AbortSignal | undefined;
    const sleeper = {
      name: 'sleeper',
      invoke(_task: string, ctx: AgentContext) {
        signal = ctx.signal;
        return new Promise<never>(() => {}); // never settles, never looks at the signal
      },
    };
    // A per-run policy can only narrow the orchestrator's: here, less time.
    const report = await orch.run({ agent: sleeper, task: 'Wait for an answer', policy: { timeoutMs: HUNG_TIMEOUT_MS } });
    const reason: unknown = signal?.reason;
    const abortCode = OaoError.isInstance(reason) ? reason.code : null;
    const aborted = signal?.aborted ?? false;
    return {
      report,
      facts: { signalAborted: aborted, abortReasonCode: abortCode, timeoutMs: HUNG_TIMEOUT_MS },
      notes: [
        `ctx.signal aborted: ${String(aborted)} (reason ${abortCode ?? 'none'}); report ready after ${report.executionTimeMs.toFixed(0)} ms`,
      ],
    };
  },
  check({ report, facts }) {
    const problems = expectEnd(report, 'FAILED', 'timeout');
    expectField(problems, 'signal aborted', facts.signalAborted, true);
    expectField(problems, 'abort reason code', facts.abortReasonCode, 'OAO_ERR_TIMEOUT');
    // Generous: the point is that the run did not wait for the agent, not how precise timers are.
    if (report.executionTimeMs > HUNG_TIMEOUT_MS + 1_000) {
      problems.push(`the report took ${report.executionTimeMs.toFixed(0)} ms, far past the ${HUNG_TIMEOUT_MS} ms deadline`);
    }
    return problems;
  },
};

/** The demo's scenarios, in the order they run. */
export const demoScenarios: readonly DemoScenario[] = [wellBehaved, runaway, toolHappy, hung];
