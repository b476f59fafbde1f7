// Budgets in money: prices, cost reservations before each model call, and cost in reports, logs,
// metrics and what-if.
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { chromium } from 'playwright-core';
import { afterEach, describe, expect, it } from 'vitest';
import {
  canonicalJson,
  MultiAgentOrchestrator,
  OaoError,
  Orchestrator,
  StrictPolicy,
  whatIf,
  type AgentContext,
  type OaoEvent,
} from '../src/index.js';
import { fromChatModel } from '../src/adapters/langchain/index.js';
import { ExitCode } from '../src/cli/exitCodes.js';
import { formatUsd, summaryTable } from '../src/cli/formatReport.js';
import { runCli } from '../src/cli/program.js';
import { createStyle } from '../src/cli/style.js';
import { foldRun } from '../src/log/foldRun.js';
import { createMemoryStore } from '../src/store/createMemoryStore.js';
import { createMetrics } from '../src/observability/metrics/index.js';
import { costMicros, priceOf, usdToMicros } from '../src/policy/pricing.js';
import { createServer } from '../src/server/index.js';
import { searchTool } from './adapters/fixtures.js';
import { ScriptedChatModel } from './adapters/scriptedChatModel.js';
import { serveIo } from './cliIo.js';

const pricing = {
  'gpt-mini': { inputPerMTok: 0.15, outputPerMTok: 0.6 },
  'gpt-big': { inputPerMTok: 2.5, outputPerMTok: 10, cachedInputPerMTok: 1.25 },
};

/** An agent making the given model calls in its one step; each call states its caps and the model honours them. */
function caller(calls: readonly { model?: string; inputTokens: number; maxOutputTokens: number; used: number }[], sent: number[] = []) {
  return {
    name: 'caller',
    async invoke(_task: unknown, ctx: AgentContext) {
      for (const [index, c] of calls.entries()) {
        const call = ctx.beginModelCall({ model: c.model ?? 'gpt-big', input: 'x', inputTokens: c.inputTokens, maxOutputTokens: c.maxOutputTokens });
        await call.ready;
        sent.push(index);
        call.end('ok', { input: c.inputTokens, output: Math.min(c.used, c.maxOutputTokens) });
      }
      return { output: 'done' };
    },
  };
}

const types = (events: readonly OaoEvent[]) => events.map((e) => e.type);

describe('prices in integer micro-dollars', () => {
  it('turns USD per million tokens into micro-dollars and rounds a call up once', { timeout: 2_000 }, () => {
    expect(usdToMicros(0.15)).toBe(150_000);
    expect(usdToMicros(-1)).toBeUndefined();
    expect(usdToMicros(Number.POSITIVE_INFINITY)).toBeUndefined();
    const mini = priceOf(pricing, 'gpt-mini');
    expect(mini).toEqual({ inputPerMTok: 150_000, outputPerMTok: 600_000 });
    // One input token at $0.15/MTok is 0.15 micro-dollars: rounded up to 1.
    expect(costMicros(mini!, 1, 0)).toBe(1);
    // 1,000 input + 500 output: 150 + 300 micro-dollars exactly.
    expect(costMicros(mini!, 1_000, 500)).toBe(450);
    expect(costMicros(mini!, 0, 0)).toBe(0);
    // Past the safe integers the products are exact (BigInt), and a cost too large to count is refused by any budget.
    expect(costMicros({ inputPerMTok: 1_000_000, outputPerMTok: 0 }, Number.MAX_SAFE_INTEGER, 0)).toBe(Number.MAX_SAFE_INTEGER);
    expect(costMicros({ inputPerMTok: 2_000_000, outputPerMTok: 0 }, Number.MAX_SAFE_INTEGER, 0)).toBe(Number.MAX_SAFE_INTEGER + 1);
  });

  it('prices an unknown model by the default entry only', { timeout: 2_000 }, () => {
    expect(priceOf(pricing, 'other')).toBeUndefined();
    expect(priceOf({ ...pricing, default: { inputPerMTok: 1, outputPerMTok: 2 } }, 'other')).toEqual({ inputPerMTok: 1_000_000, outputPerMTok: 2_000_000 });
    expect(priceOf({ ...pricing, default: { inputPerMTok: 1, outputPerMTok: 2 } }, null)).toEqual({ inputPerMTok: 1_000_000, outputPerMTok: 2_000_000 });
  });

  it('never drifts: the sum of many calls equals the exact rational sum, each call rounded up (property)', { timeout: 30_000 }, () => {
    const priceArb = fc.record({ inputPerMTok: fc.integer({ min: 0, max: 100_000_000 }), outputPerMTok: fc.integer({ min: 0, max: 100_000_000 }) });
    const callArb = fc.record({ input: fc.integer({ min: 0, max: 2_000_000 }), output: fc.integer({ min: 0, max: 2_000_000 }) });
    fc.assert(
      fc.property(priceArb, fc.array(callArb, { maxLength: 200 }), (price, calls) => {
        let sum = 0;
        let exact = 0n;
        for (const call of calls) {
          const cost = costMicros(price, call.input, call.output);
          const numerator = BigInt(call.input) * BigInt(price.inputPerMTok) + BigInt(call.output) * BigInt(price.outputPerMTok);
          // Each call: the least integer at or above its exact cost.
          expect(BigInt(cost) * 1_000_000n >= numerator).toBe(true);
          expect((BigInt(cost) - 1n) * 1_000_000n < numerator || cost === 0).toBe(true);
          sum += cost;
          exact += (numerator + 999_999n) / 1_000_000n;
        }
        expect(Number.isSafeInteger(sum)).toBe(true);
        expect(BigInt(sum)).toBe(exact);
      }),
      { numRuns: 300 },
    );
  });
});

describe('a cost limit is checked before each model call', () => {
  it('refuses the call whose worst case does not fit: MODEL_CALL_DENIED, then max_cost, and the call is never sent', { timeout: 5_000 }, async () => {
    // Each call may cost 1,000 × $2.50 + 2,000 × $10 per MTok = $0.0225; it spends $0.0025 + $0.015 = $0.0175.
    const calls = Array.from({ length: 10 }, () => ({ inputTokens: 1_000, maxOutputTokens: 2_000, used: 1_500 }));
    const sent: number[] = [];
    const orch = new Orchestrator({ policy: { maxCostUsd: 0.05, maxTokens: 1_000_000, pricing } });
    const handle = orch.start({ agent: caller(calls, sent), task: 't' });
    const report = await handle.report;
    // Two calls spend $0.035; a third could bring it to $0.0575 > $0.05: refused before it is sent.
    expect(sent).toEqual([0, 1]);
    expect(report).toMatchObject({ status: 'FAILED', termination: { reason: 'policy_violation', rule: 'max_cost' }, cost: { micros: 35_000, usd: 0.035 } });
    const events = handle.events();
    const denied = events.find((e) => e.type === 'MODEL_CALL_DENIED');
    expect(denied?.payload).toMatchObject({ model: 'gpt-big', rule: 'max_cost', reserved: { input: 1_000, output: 2_000, costMicros: 22_500 }, remainingCostMicros: 15_000 });
    const t = types(events);
    expect(t[t.indexOf('MODEL_CALL_DENIED') + 1]).toBe('POLICY_VIOLATION');
    expect(events.find((e) => e.type === 'POLICY_VIOLATION')?.payload).toMatchObject({ rule: 'max_cost', limit: 50_000, attempted: 57_500 });
    expect(events.filter((e) => e.type === 'TOKEN_USAGE').map((e) => e.type === 'TOKEN_USAGE' && e.payload.costMicros)).toEqual([17_500, 17_500]);
    // The log is the run: the fold and replay give the same cost.
    expect(foldRun(events)?.report).toEqual(report);
    expect(canonicalJson(await orch.replay(report.executionId))).toBe(canonicalJson(report));
  });

  it('a governed LangChain chat model is priced by the name its adapter reports', { timeout: 5_000 }, async () => {
    const model = new ScriptedChatModel([{ toolCalls: [{ name: 'search', args: { q: 'x' } }], usage: { input: 10, output: 20 } }]);
    const agent = fromChatModel(model, { tools: [searchTool({ count: 0 })] });
    const handle = new Orchestrator({ policy: { maxSteps: 50, maxToolCalls: 50, maxCostUsd: 0.05, reserveOutputTokens: 100, pricing: { default: { inputPerMTok: 100, outputPerMTok: 100 } } } }).start({
      agent,
      tools: agent.tools,
      task: 't',
    });
    const report = await handle.report;
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_cost' });
    expect(report.cost?.micros).toBeLessThanOrEqual(50_000);
    expect(report.cost?.micros).toBeGreaterThan(0);
    const call = handle.events().find((e) => e.type === 'MODEL_CALL');
    expect(call?.payload).toMatchObject({ reserved: { costMicros: expect.any(Number) as number } });
  });

  it('charges a response without usage its whole reservation, in tokens and money, and flags it', { timeout: 5_000 }, async () => {
    const agent = {
      name: 'unmetered',
      async invoke(_task: unknown, ctx: AgentContext) {
        const call = ctx.beginModelCall({ model: 'gpt-mini', input: 'x', inputTokens: 100, maxOutputTokens: 1_000 });
        await call.ready;
        call.end('no usage');
        return 'done';
      },
    };
    const handle = new Orchestrator({ policy: { maxCostUsd: 1, pricing } }).start({ agent, task: 't' });
    const report = await handle.report;
    // 100 × 0.15 + 1,000 × 0.6 = 615 micro-dollars.
    expect(report).toMatchObject({ status: 'SUCCESS', tokenUsage: { total: 1_100 }, cost: { micros: 615, usd: 0.000615 } });
    expect(handle.events().find((e) => e.type === 'MODEL_RESULT')?.payload).toMatchObject({ unmetered: true });
  });

  it('refuses a model with no price under a cost limit: OAO_ERR_UNKNOWN_MODEL_PRICE, before it is sent', { timeout: 5_000 }, async () => {
    let caught: unknown;
    let sent = 0;
    const agent = {
      name: 'unpriced',
      async invoke(_task: unknown, ctx: AgentContext) {
        try {
          const call = ctx.beginModelCall({ model: 'mystery', input: 'x', inputTokens: 1, maxOutputTokens: 1 });
          sent += 1;
          call.end('ok', { input: 1, output: 1 });
        } catch (error) {
          caught = error;
        }
        return 'went on';
      },
    };
    const handle = new Orchestrator({ policy: { maxCostUsd: 1, pricing } }).start({ agent, task: 't' });
    const report = await handle.report;
    expect(sent).toBe(0);
    expect(OaoError.isInstance(caught) && caught.code).toBe('OAO_ERR_UNKNOWN_MODEL_PRICE');
    expect(report).toMatchObject({ status: 'FAILED', termination: { reason: 'error' }, error: { code: 'OAO_ERR_UNKNOWN_MODEL_PRICE', details: { model: 'mystery' } } });
    expect(types(handle.events())).not.toContain('MODEL_CALL');
    expect(foldRun(handle.events())?.report).toEqual(report);
  });

  it('prices unknown models with the default entry, and costs nothing it cannot price when there is no limit', { timeout: 5_000 }, async () => {
    const withDefault = await new Orchestrator({ policy: { maxCostUsd: 1, pricing: { ...pricing, default: { inputPerMTok: 1, outputPerMTok: 1 } } } }).run({
      agent: caller([{ model: 'mystery', inputTokens: 500, maxOutputTokens: 500, used: 500 }]),
      task: 't',
    });
    expect(withDefault).toMatchObject({ status: 'SUCCESS', cost: { micros: 1_000 } });
    const noLimit = await new Orchestrator({ policy: { pricing } }).run({ agent: caller([{ model: 'mystery', inputTokens: 500, maxOutputTokens: 500, used: 500 }]), task: 't' });
    expect(noLimit).toMatchObject({ status: 'SUCCESS', tokenUsage: { total: 1_000 }, cost: { micros: 0 } });
    // Without prices or a cost limit a report has no cost at all.
    const plain = await new Orchestrator().run({ agent: caller([{ inputTokens: 5, maxOutputTokens: 5, used: 5 }]), task: 't' });
    expect(plain.cost).toBeUndefined();
  });

  it('costs usage reported after the fact when it names a priced model, and stops the run once past the limit', { timeout: 5_000 }, async () => {
    const agent = {
      name: 'reporter',
      invoke(_task: unknown, ctx: AgentContext) {
        ctx.usage({ input: 1_000, output: 1_000, model: 'gpt-big' }); // $0.0125
        ctx.usage({ input: 1_000, output: 1_000 }); // no model: not costed
        ctx.usage({ input: 1_000, output: 1_000, model: 'gpt-big' }); // $0.025 in all: past $0.02
        return 'done';
      },
    };
    const report = await new Orchestrator({ policy: { maxCostUsd: 0.02, maxTokens: 100_000, pricing } }).run({ agent, task: 't' });
    expect(report).toMatchObject({ status: 'FAILED', termination: { rule: 'max_cost' }, tokenUsage: { total: 6_000 }, cost: { micros: 25_000 } });
  });

  it('a run pausing at its token limit is refused at once when the call’s cost does not fit either', { timeout: 5_000 }, async () => {
    const sent: number[] = [];
    // The second call fits neither 3,000 tokens nor $0.03: a raise of tokens could not let it through.
    const handle = new Orchestrator({ policy: { maxTokens: 3_000, onLimit: { maxTokens: 'pause' }, maxCostUsd: 0.03, pricing } }).start({
      agent: caller([{ inputTokens: 1_000, maxOutputTokens: 1_500, used: 1_500 }, { inputTokens: 1_000, maxOutputTokens: 1_500, used: 1_500 }], sent),
      task: 't',
    });
    const report = await handle.report;
    expect(sent).toEqual([0]);
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_cost' });
    expect(types(handle.events())).not.toContain('BUDGET_EXHAUSTED');
  });

  it('never lets a run end above its cost limit (property, calls through beginModelCall)', { timeout: 60_000 }, async () => {
    const callArb = fc.record({
      model: fc.constantFrom('gpt-mini', 'gpt-big'),
      inputTokens: fc.integer({ min: 0, max: 5_000 }),
      maxOutputTokens: fc.integer({ min: 0, max: 5_000 }),
      used: fc.integer({ min: 0, max: 5_000 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(callArb, { minLength: 1, maxLength: 12 }), fc.integer({ min: 0, max: 200_000 }), async (calls, maxMicros) => {
        const maxCostUsd = maxMicros / 1_000_000;
        const orch = new Orchestrator({ policy: { maxCostUsd, maxTokens: 10_000_000, pricing } });
        const handle = orch.start({ agent: caller(calls), task: 't' });
        const report = await handle.report;
        expect(report.cost?.micros).toBeLessThanOrEqual(maxMicros);
        // The report's cost is the exact integer sum of the log's usage costs.
        const logged = handle.events().reduce((sum, e) => sum + (e.type === 'TOKEN_USAGE' ? (e.payload.costMicros ?? 0) : 0), 0);
        expect(report.cost?.micros).toBe(logged);
        expect(report.cost?.usd).toBe(logged / 1_000_000);
      }),
      { numRuns: 200 },
    );
  });
});

describe('a resumed run counts what its log spent', () => {
  /** Three steps, each one governed model call: worst case $0.0225, spends $0.0175. */
  const stepper = {
    name: 'stepper',
    async invoke(_task: unknown, ctx: AgentContext) {
      const call = ctx.beginModelCall({ model: 'gpt-big', input: 'x', inputTokens: 1_000, maxOutputTokens: 2_000 });
      await call.ready;
      call.end('ok', { input: 1_000, output: 1_500 });
      return { output: ctx.step };
    },
    review: (result: { step: number }) => ({ done: result.step === 3 }),
  };

  it('continues with the cost spent before the crash, never charging it twice, and stops at the limit', { timeout: 10_000 }, async () => {
    const store = createMemoryStore();
    const full = await new Orchestrator({ store, policy: { maxCostUsd: 1, maxTokens: 1_000_000, pricing } }).run({ executionId: 'c', agent: stepper, task: 't' });
    expect(full.cost).toEqual({ micros: 52_500, usd: 0.0525 });
    const events = store.events('c');
    const step2 = events.findIndex((e) => e.type === 'STEP_START' && e.payload.step === 2);

    const again = createMemoryStore();
    again.append('c', events.slice(0, step2 + 1));
    const resumed = await new Orchestrator({ store: again, owner: 'heir' }).resume('c', { agent: stepper });
    expect(resumed).toMatchObject({ status: 'SUCCESS', cost: { micros: 52_500 } });

    // Under a recorded limit of $0.05 the third call no longer fits: $0.035 spent before it, $0.0225 more possible.
    const start = events[0] as Extract<OaoEvent, { type: 'EXECUTION_START' }>;
    const tighter = createMemoryStore();
    tighter.append('c', [{ ...start, payload: { ...start.payload, policy: { ...start.payload.policy, maxCostUsd: 0.05 } } }, ...events.slice(1, step2 + 1)]);
    const stopped = await new Orchestrator({ store: tighter, owner: 'heir' }).resume('c', { agent: stepper });
    expect(stopped).toMatchObject({ status: 'FAILED', termination: { rule: 'max_cost' }, cost: { micros: 35_000 } });
  });
});

describe('a batch shares a cost budget', () => {
  it('never lets a batch end above its shared cost limit (property, several runs at once)', { timeout: 60_000 }, async () => {
    const callArb = fc.record({ inputTokens: fc.integer({ min: 0, max: 2_000 }), maxOutputTokens: fc.integer({ min: 0, max: 2_000 }), used: fc.integer({ min: 0, max: 2_000 }) });
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(callArb, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 5 }), fc.integer({ min: 0, max: 100_000 }), async (runs, maxMicros) => {
        const multi = new MultiAgentOrchestrator({ maxConcurrency: 3, budget: { maxCostUsd: maxMicros / 1_000_000 }, policy: { maxTokens: 10_000_000, pricing } });
        const reports = await multi.runAll(runs.map((calls) => ({ agent: caller(calls), task: 't' })));
        const total = reports.reduce((sum, report) => sum + (report.cost?.micros ?? 0), 0);
        expect(total).toBeLessThanOrEqual(maxMicros);
      }),
      { numRuns: 100 },
    );
  });

  it('stops the batch with a shared max_cost violation when its cost budget is spent', { timeout: 5_000 }, async () => {
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 1, budget: { maxCostUsd: 0.03 }, policy: { maxTokens: 10_000_000, pricing } });
    const call = { inputTokens: 1_000, maxOutputTokens: 2_000, used: 1_500 }; // worst $0.0225, spends $0.0175
    const reports = await multi.runAll([{ agent: caller([call]), task: 'a' }, { agent: caller([call]), task: 'b' }]);
    expect(reports[0]).toMatchObject({ status: 'SUCCESS', cost: { micros: 17_500 } });
    expect(reports[1]).toMatchObject({ status: 'FAILED', termination: { reason: 'policy_violation', rule: 'max_cost', scope: 'shared' }, cost: { micros: 0 } });
  });
});

describe('prices are checked at startup and belong to the orchestrator', () => {
  it('rejects negative or non-finite prices and cost limits with OAO_ERR_INVALID_POLICY naming the field', { timeout: 2_000 }, () => {
    const invalid = (build: () => unknown, field: string) => {
      try {
        build();
      } catch (error) {
        expect(OaoError.isInstance(error) && error.code).toBe('OAO_ERR_INVALID_POLICY');
        expect((error as OaoError).details?.field).toBe(field);
        return;
      }
      throw new Error(`expected ${field} to be refused`);
    };
    invalid(() => new Orchestrator({ policy: { pricing: { m: { inputPerMTok: -1, outputPerMTok: 1 } } } }), 'pricing.m.inputPerMTok');
    invalid(() => new Orchestrator({ policy: { pricing: { m: { inputPerMTok: 1, outputPerMTok: Number.NaN } } } }), 'pricing.m.outputPerMTok');
    invalid(() => new StrictPolicy({ pricing: { m: { inputPerMTok: 1, outputPerMTok: 1, cachedInputPerMTok: Number.POSITIVE_INFINITY } } }), 'pricing.m.cachedInputPerMTok');
    invalid(() => new StrictPolicy({ pricing: { m: { inputPerMTok: 1 } } } as never), 'pricing.m.outputPerMTok');
    invalid(() => new StrictPolicy({ maxCostUsd: -0.5 }), 'maxCostUsd');
    invalid(() => new MultiAgentOrchestrator({ budget: { maxCostUsd: Number.POSITIVE_INFINITY } }), 'budget.maxCostUsd');
  });

  it('refuses prices in a per-run policy', { timeout: 5_000 }, async () => {
    const orch = new Orchestrator({ policy: { pricing } });
    await expect(orch.run({ agent: () => 'x', task: 't', policy: { pricing: { 'gpt-big': { inputPerMTok: 0, outputPerMTok: 0 } } } })).rejects.toMatchObject({
      code: 'OAO_ERR_INVALID_POLICY',
      details: { field: 'pricing' },
    });
    // A per-run policy may lower the cost limit, never raise it.
    expect(new StrictPolicy({ maxCostUsd: 1, pricing }).narrow({ maxCostUsd: 2 }).limits.maxCostUsd).toBe(1);
    expect(new StrictPolicy({ maxCostUsd: 1, pricing }).narrow({ maxCostUsd: 0.5 }).limits).toMatchObject({ maxCostUsd: 0.5, pricing });
  });
});

describe('cost outside the run', () => {
  const apps: FastifyInstance[] = [];
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
  });

  it('counts oao_cost_usd_total by agent and model, from integer micro-dollars', { timeout: 5_000 }, async () => {
    const metrics = createMetrics();
    const orch = new Orchestrator({ policy: { maxCostUsd: 1, pricing } });
    const stop = metrics.observe(orch);
    const calls = Array.from({ length: 3 }, () => ({ model: 'gpt-mini', inputTokens: 1, maxOutputTokens: 1, used: 1 }));
    await orch.run({ agent: caller(calls), task: 't' });
    stop();
    const text = await metrics.metricsText();
    // Each call costs ceil(0.15 + 0.6) = 1 micro-dollar: 3 in all, exactly 0.000003.
    expect(text).toContain('oao_cost_usd_total{agent="caller",model="gpt-mini"} 0.000003');
  });

  it('what-if flags the runs a stricter maxCostUsd would have stopped, and where', { timeout: 5_000 }, async () => {
    const orch = new Orchestrator({ policy: { maxCostUsd: 1, maxTokens: 1_000_000, pricing } });
    const calls = Array.from({ length: 4 }, () => ({ inputTokens: 1_000, maxOutputTokens: 2_000, used: 1_500 }));
    const handle = orch.start({ agent: caller(calls), task: 't' });
    const report = await handle.report;
    expect(report).toMatchObject({ status: 'SUCCESS', cost: { micros: 70_000 } });
    const events = handle.events();
    const result = await whatIf({ runs: [events], policy: { maxCostUsd: 0.05, maxTokens: 1_000_000, pricing } });
    const run = result.runs[0];
    expect(run?.same).toBe(false);
    expect(run?.wouldStop?.rule).toBe('max_cost');
    // The third MODEL_CALL is where it would have been refused ($0.035 spent, $0.0225 more possible).
    const thirdCall = events.filter((e) => e.type === 'MODEL_CALL')[2];
    expect(run?.wouldStop?.seq).toBe(thirdCall?.seq);
    expect(run?.saved.tokens).toBe(2 * 2_500);
    // And what it would have saved in money: the last two calls' $0.035.
    expect(run?.saved.costMicros).toBe(35_000);
    expect(run?.recorded.costMicros).toBe(70_000);
    expect(result.totals.saved.costMicros).toBe(35_000);
    // A looser limit changes nothing.
    expect((await whatIf({ runs: [events], policy: { maxCostUsd: 0.1, maxTokens: 1_000_000, pricing } })).runs[0]?.same).toBe(true);
  });

  it('the server refuses a request that sends prices with a typed 400, and shows cost in its run projection', { timeout: 10_000 }, async () => {
    const agent = caller([{ model: 'gpt-mini', inputTokens: 1_000, maxOutputTokens: 1_000, used: 1_000 }]);
    const app = await createServer({ agents: { caller: agent }, policy: { maxCostUsd: 1, pricing }, apiKeys: [], dashboard: false });
    apps.push(app);
    const refused = await app.inject({ method: 'POST', url: '/runs', payload: { agent: 'caller', task: 't', policy: { pricing: { 'gpt-mini': { inputPerMTok: 0, outputPerMTok: 0 } } } } });
    expect(refused.statusCode).toBe(400);
    expect(refused.json()).toMatchObject({ error: { code: 'OAO_ERR_INVALID_POLICY', details: { field: 'body.policy.pricing' } } });
    const whatIfPrices = await app.inject({ method: 'POST', url: '/what-if', payload: { policy: { pricing: {} } } });
    expect(whatIfPrices.statusCode).toBe(400);
    const started = await app.inject({ method: 'POST', url: '/runs?wait=true', payload: { agent: 'caller', task: 't' } });
    expect(started.statusCode).toBeLessThan(300);
    const body = started.json<{ executionId?: string; report?: { cost?: unknown } }>();
    const id = body.executionId ?? (body.report as { executionId?: string } | undefined)?.executionId;
    expect(id).toBeDefined();
    // 1,000 × 0.15 + 1,000 × 0.6 = 750 micro-dollars.
    for (;;) {
      const run = (await app.inject({ method: 'GET', url: `/runs/${id}` })).json<{ report: { cost?: unknown } | null; cost?: unknown }>();
      if (run.report !== null) {
        expect(run.report.cost).toEqual({ micros: 750, usd: 0.00075 });
        expect(run.cost).toEqual({ micros: 750, usd: 0.00075 });
        break;
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
  });

  it('startup refuses invalid prices in createServer', { timeout: 5_000 }, async () => {
    await expect(createServer({ agents: {}, policy: { pricing: { m: { inputPerMTok: -2, outputPerMTok: 1 } } }, apiKeys: [], dashboard: false })).rejects.toMatchObject({
      code: 'OAO_ERR_INVALID_POLICY',
    });
  });
});

describe('cost for people', () => {
  it('oao serve refuses a module whose policy has a negative price, before it listens', { timeout: 30_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'oao-cost-'));
    try {
      const file = join(dir, 'priced.mjs');
      await writeFile(file, "export const agents = { echo: (task) => task };\nexport const policy = { maxCostUsd: 1, pricing: { m: { inputPerMTok: -1, outputPerMTok: 1 } } };\n");
      const cli = serveIo({ untilStopped: () => Promise.reject(new Error('oao serve started, but it should not have')) });
      const code = await runCli(['serve', file, '--store', 'memory', '--port', '0'], cli.io);
      expect(code).not.toBe(ExitCode.OK);
      expect(cli.err()).toContain('[OAO_ERR_INVALID_POLICY]');
      expect(cli.err()).toContain('pricing.m.inputPerMTok');
      expect(cli.out()).not.toContain('OAO listening');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('formats micro-dollars exactly, and the run table shows cost only when a run is costed', { timeout: 5_000 }, async () => {
    expect([formatUsd(0), formatUsd(1), formatUsd(17_500), formatUsd(440_000), formatUsd(1_500_000), formatUsd(123_456_789)]).toEqual([
      '$0.00',
      '$0.000001',
      '$0.0175',
      '$0.44',
      '$1.50',
      '$123.456789',
    ]);
    const costed = await new Orchestrator({ policy: { maxCostUsd: 1, pricing } }).run({ agent: caller([{ inputTokens: 1_000, maxOutputTokens: 2_000, used: 1_500 }]), task: 't' });
    const plain = await new Orchestrator().run({ agent: () => 'x', task: 't' });
    const table = summaryTable([['priced', costed], ['plain', plain]], createStyle(false));
    expect(table.split('\n')[0]).toMatch(/tokens\s+cost\s+tools/);
    expect(table).toContain('$0.0175');
    expect(summaryTable([['plain', plain]], createStyle(false))).not.toContain('cost');
  });

  it('the dashboard derives cost from the events, as the fold does, and shows a cost gauge beside tokens', { timeout: 5_000 }, async () => {
    const { deriveRun } = (await import(`../dashboard/${'runModel.js'}`)) as { deriveRun: (events: readonly OaoEvent[], options?: object) => { cost: number | null } };
    const handle = new Orchestrator({ policy: { maxCostUsd: 1, pricing } }).start({
      agent: caller([{ inputTokens: 1_000, maxOutputTokens: 2_000, used: 1_500 }, { model: 'gpt-mini', inputTokens: 10, maxOutputTokens: 10, used: 10 }]),
      task: 't',
    });
    await handle.report;
    const events = handle.events();
    const live = events.slice(0, -1);
    const folded = foldRun(live);
    expect(deriveRun(live).cost).toBe(folded?.costMicros);
    expect(deriveRun(events).cost).toBe(17_500 + 8);
    const plain = new Orchestrator().start({ agent: () => 'x', task: 't' });
    await plain.report;
    expect(deriveRun(plain.events()).cost).toBeNull();
  });
});

const CHROMIUM_PATH = '/usr/bin/chromium';

describe.skipIf(!existsSync(CHROMIUM_PATH) && process.env.OAO_REQUIRE_BROWSER !== '1')('the dashboard’s cost gauge in Chromium', () => {
  it('shows cost beside tokens, against maxCostUsd, for a costed run', { timeout: 60_000 }, async () => {
    const agent = caller([{ inputTokens: 1_000, maxOutputTokens: 2_000, used: 1_500 }]);
    const app = await createServer({ agents: { caller: agent }, policy: { maxCostUsd: 0.05, pricing }, apiKeys: [], dashboard: true });
    const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] });
    try {
      await app.listen({ port: 0, host: '127.0.0.1' });
      const origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
      const started = await fetch(`${origin}/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ agent: 'caller', task: 't' }) });
      const { executionId } = (await started.json()) as { executionId: string };
      const page = await browser.newPage();
      await page.goto(`${origin}/dashboard/#run=${encodeURIComponent(executionId)}`);
      const gauges = page.locator('[data-testid="gauge"]');
      await page.locator('[data-testid="gauge"][data-gauge="cost"] [data-testid="gauge-value"]').filter({ hasText: '$0.0175 / $0.05' }).waitFor({ timeout: 15_000 });
      // Beside tokens.
      expect(await gauges.evaluateAll((nodes) => nodes.map((node) => node.getAttribute('data-gauge')))).toEqual(['steps', 'tokens', 'cost', 'toolCalls', 'time']);
    } finally {
      await browser.close();
      await app.close();
    }
  });
});
