import { Orchestrator, type AgentContext, type ExecutionReport } from 'open-agent-orchestrator';
import type { BenchCase, BenchRatio } from '../harness.js';

/**
 * What reservation and settlement cost on a governed model call: one run whose step makes ten
 * model calls, side by side as bare usage reports (`ctx.usage()`, nothing reserved), as governed
 * calls reserving tokens (`ctx.beginModelCall()` ... `end()`), and as governed calls under a price
 * table and a cost limit (tokens and micro-dollars reserved, then settled).
 */

const CALLS = 10;
const USAGE = { input: 120, output: 80 };

const usageOnly = {
  name: 'usage-only',
  invoke(_task: unknown, ctx: AgentContext) {
    for (let i = 0; i < CALLS; i += 1) ctx.usage({ ...USAGE, model: 'bench-model' });
    return { output: 'done' };
  },
};

const governed = {
  name: 'governed',
  invoke(_task: unknown, ctx: AgentContext) {
    for (let i = 0; i < CALLS; i += 1) {
      const call = ctx.beginModelCall({ model: 'bench-model', input: 'prompt', inputTokens: USAGE.input, maxOutputTokens: 200 });
      call.end('answer', USAGE);
    }
    return { output: 'done' };
  },
};

function expectTenCalls(report: ExecutionReport): void {
  if (report.status !== 'SUCCESS' || report.tokenUsage.total !== CALLS * (USAGE.input + USAGE.output)) {
    throw new Error(`bench: a cost run did not spend ${CALLS} calls' tokens: ${JSON.stringify(report.termination)}`);
  }
}

function costCase(id: string, label: string, description: string, orch: Orchestrator, agent: typeof governed): BenchCase {
  return {
    kind: 'time',
    id,
    group: 'cost',
    label,
    description,
    mode: 'async',
    setup: async () => {
      expectTenCalls(await orch.run({ agent, task: 't' }));
      return () => orch.run({ agent, task: 't' });
    },
  };
}

const policy = { maxTokens: 1_000_000 };
const pricing = { 'bench-model': { inputPerMTok: 0.15, outputPerMTok: 0.6 } };

export const costCases: readonly BenchCase[] = [
  costCase('cost.usage', `${CALLS} usage reports, nothing reserved`, `A run whose one step reports ${CALLS} model calls' usage with ctx.usage().`, new Orchestrator({ store: false, policy }), usageOnly),
  costCase(
    'cost.reserved',
    `${CALLS} governed model calls, tokens reserved`,
    `The same spend through ctx.beginModelCall() / end(): each call reserves its worst case in tokens, then settles.`,
    new Orchestrator({ store: false, policy }),
    governed,
  ),
  costCase(
    'cost.priced',
    `${CALLS} governed model calls, tokens and cost reserved`,
    `The same governed calls under a price table and maxCostUsd: each reserves tokens and micro-dollars, then settles both.`,
    new Orchestrator({ store: false, policy: { ...policy, maxCostUsd: 100, pricing } }),
    governed,
  ),
];

export const costRatios: readonly BenchRatio[] = [
  { id: 'cost reserved/usage', label: `${CALLS} governed model calls (token reservations) / ${CALLS} usage reports`, numerator: 'cost.reserved', denominator: 'cost.usage' },
  { id: 'cost priced/usage', label: `${CALLS} governed model calls (token and cost reservations) / ${CALLS} usage reports`, numerator: 'cost.priced', denominator: 'cost.usage' },
  { id: 'cost priced/reserved', label: 'cost reservation on top of token reservation', numerator: 'cost.priced', denominator: 'cost.reserved' },
];
