// Properties of a tenant's budget: however a tenant's concurrent runs interleave their model calls,
// and however a queue's workers interleave the chunks they take of the tenant's window in Redis,
// the window never ends above the tenant's limit, and every refusal names the budget that refused.
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { beforeAll, describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { Orchestrator, type AgentContext, type ExecutionReport, type OaoEvent } from '../src/index.js';
import { queueKeys } from '../src/queue/redisConnection.js';
import { admitTenantRuns, giveBackTenantWindow, leaseTenantWindow, tenantWindowKeys } from '../src/queue/tenantWindow.js';
import { useTenantBudgets } from '../src/runtime/orchestratorInternals.js';
import { checkTenantBudget, type TenantBudgetOptions } from '../src/tenants/tenantBudget.js';
import { TenantBudgets } from '../src/tenants/TenantBudgets.js';
import type { TenantAccount } from '../src/tenants/TenantLevel.js';
import { spanAt } from '../src/tenants/windows.js';
import { useTestRedis } from './queue/redisServer.js';

/** 2026-12-01T12:00:00Z: every run of a property ends in the same daily window. */
const NOON = Date.UTC(2026, 11, 1, 12);
const MODEL = 'fake-model';

/**
 * A predicate that takes 5 s is a failure (a run that never ends), and a property stops after
 * 12 s, shrinking included: on a loaded machine it then passes with the runs it made.
 */
const LIMITS = { timeout: 5_000, plugins: [fc.interruptAfterTimeLimit(12_000)] };

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

async function ticks(count: number): Promise<void> {
  for (let i = 0; i < count; i++) await tick();
}

interface CallPlan {
  readonly before: number;
  readonly inputTokens: number;
  readonly maxOutputTokens: number;
  readonly usedInput: number;
  readonly used: number;
  /** The response reports its usage; without it the call is charged its whole reservation. */
  readonly metered: boolean;
  readonly fitOutput: boolean;
  /** Turns of the event loop between the call's reservation and its end: other runs go on meanwhile. */
  readonly pause: number;
}

const callArb = fc.record({
  before: fc.nat(2),
  inputTokens: fc.integer({ min: 0, max: 150 }),
  maxOutputTokens: fc.integer({ min: 0, max: 300 }),
  usedInput: fc.integer({ min: 0, max: 150 }),
  used: fc.integer({ min: 0, max: 300 }),
  metered: fc.boolean(),
  fitOutput: fc.boolean(),
  pause: fc.nat(3),
});

/**
 * An agent that makes its model calls one after the other in one step; its model honours the
 * call's caps (the prompt it was told, the output cap it was sent with). `billed` collects what the
 * model spent on each call it answered, as the provider would bill it.
 */
function caller(calls: readonly CallPlan[], billed: number[], costOf?: (input: number, output: number) => number) {
  return {
    name: 'caller',
    async invoke(_task: unknown, ctx: AgentContext) {
      for (const plan of calls) {
        await ticks(plan.before);
        const call = ctx.beginModelCall({ model: MODEL, input: 'question', inputTokens: plan.inputTokens, maxOutputTokens: plan.maxOutputTokens, fitOutput: plan.fitOutput });
        await call.ready;
        await ticks(plan.pause);
        const cap = call.loweredMaxOutputTokens ?? plan.maxOutputTokens;
        const input = plan.metered ? Math.min(plan.usedInput, plan.inputTokens) : plan.inputTokens;
        const output = plan.metered ? Math.min(plan.used, cap) : cap;
        billed.push(costOf === undefined ? input + output : costOf(input, output));
        call.end('answer', plan.metered ? { input, output } : null);
      }
      return { output: 'done' };
    },
  };
}

function tenantSetup(budget: TenantBudgetOptions, pricing?: Record<string, { inputPerMTok: number; outputPerMTok: number }>) {
  const clock = new SimulatedClock();
  clock.set(NOON);
  const tenants = new TenantBudgets(new Map([['acme', checkTenantBudget(budget, 'budget')]]), undefined, () => clock.now(), (error) => {
    throw error;
  });
  const orch = new Orchestrator({ clock, store: false, policy: { maxSteps: 10, maxTokens: 100_000, ...(pricing === undefined ? {} : { pricing }) } });
  useTenantBudgets(orch, tenants.accountFor);
  return { orch, tenants };
}

type Denied = Extract<OaoEvent, { type: 'MODEL_CALL_DENIED' }>;

/**
 * A refused call did not fit: what it would have reserved is more than the refusing budget had
 * left. A `fitOutput` call the tenant refused had no room left for its prompt (else it would have
 * been lowered to fit).
 */
function expectDeniedForCause(events: readonly OaoEvent[], calls: readonly CallPlan[]): void {
  // The run's calls are sequential: the refused one comes after every call that was sent.
  const sent = events.filter((event) => event.type === 'MODEL_CALL').length;
  for (const event of events) {
    if (event.type !== 'MODEL_CALL_DENIED') continue;
    const { reserved, remaining, remainingCostMicros, rule, scope } = event.payload;
    if (reserved === null) continue; // the budget was spent outright
    if (rule === 'max_tokens') expect(reserved.input + reserved.output).toBeGreaterThan(remaining);
    if (rule === 'max_tokens' && scope === 'tenant' && calls[sent]?.fitOutput === true) expect(reserved.input).toBeGreaterThanOrEqual(remaining);
    if (rule === 'max_cost') expect(reserved.costMicros ?? 0).toBeGreaterThan(remainingCostMicros ?? 0);
  }
}

describe("a tenant's concurrent runs in one process (property)", () => {
  it('never end with the daily window above maxTokens, and every refusal is the tenant\'s or the smaller run limit\'s', { timeout: 30_000 }, async () => {
    const runArb = fc.record({ calls: fc.array(callArb, { minLength: 1, maxLength: 6 }), ownMaxTokens: fc.option(fc.integer({ min: 0, max: 1_500 }), { nil: undefined }), start: fc.nat(2) });
    await fc.assert(
      fc.asyncProperty(fc.array(runArb, { minLength: 1, maxLength: 5 }), fc.integer({ min: 0, max: 2_000 }), fc.integer({ min: 0, max: 100 }), async (runs, maxTokens, priorPercent) => {
        const { orch, tenants } = tenantSetup({ window: 'day', maxTokens });
        // Runs that ended earlier in the window (in this or another process) spent part of it.
        const prior = Math.floor((maxTokens * priorPercent) / 100);
        tenants.ledger('acme')?.charge({ tokens: prior });
        const billed: number[] = [];
        const handles = runs.map(async (run) => {
          await ticks(run.start);
          return orch.start({ agent: caller(run.calls, billed), task: 't', tenant: 'acme', ...(run.ownMaxTokens === undefined ? {} : { policy: { maxTokens: run.ownMaxTokens } }) });
        });
        const started = await Promise.all(handles);
        const reports = await Promise.all(started.map((handle) => handle.report));

        const window = tenants.usage('acme').spent.tokens;
        expect(window).toBeLessThanOrEqual(maxTokens);
        // Charged once each, and exactly what the model spent.
        expect(window).toBe(prior + reports.reduce((sum, report) => sum + report.tokenUsage.total, 0));
        expect(window).toBe(prior + billed.reduce((sum, tokens) => sum + tokens, 0));
        // Once every run ended, the level holds nothing: a new run finds all the window has left.
        expect(tenants.accountFor('acme')?.tokensLeft()).toBe(maxTokens - window);
        reports.forEach((report, i) => {
          const own = runs[i]?.ownMaxTokens;
          if (own !== undefined) expect(report.tokenUsage.total).toBeLessThanOrEqual(own);
          if (report.status === 'SUCCESS') return;
          expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens' });
          // A refusal is the tenant's, or the run's own limit's where the run had a smaller one.
          if (report.termination.scope !== 'tenant') {
            expect(report.termination.scope).toBeUndefined();
            expect(own).toBeDefined();
          }
        });
        started.forEach((handle, i) => {
          const denied = handle.events().filter((event): event is Denied => event.type === 'MODEL_CALL_DENIED');
          for (const event of denied) expect(event.payload.scope === 'tenant' || event.payload.scope === undefined).toBe(true);
          expectDeniedForCause(handle.events(), runs[i]?.calls ?? []);
        });
      }),
      { numRuns: 500, ...LIMITS },
    );
  });

  it('never end with the daily window above maxCostUsd (priced calls), refused with rule max_cost and scope tenant', { timeout: 30_000 }, async () => {
    const runArb = fc.record({ calls: fc.array(callArb, { minLength: 1, maxLength: 6 }), start: fc.nat(2) });
    // Prices per million tokens in micro-dollars, so that a call's cost is rarely a whole number of them.
    const priceArb = fc.record({ inputMicros: fc.integer({ min: 0, max: 2_000_000_000 }), outputMicros: fc.integer({ min: 1, max: 4_000_000_000 }) });
    await fc.assert(
      fc.asyncProperty(fc.array(runArb, { minLength: 1, maxLength: 5 }), priceArb, fc.integer({ min: 0, max: 2_000_000 }), async (runs, price, maxCostMicros) => {
        const pricing = { [MODEL]: { inputPerMTok: price.inputMicros / 1_000_000, outputPerMTok: price.outputMicros / 1_000_000 } };
        const { orch, tenants } = tenantSetup({ window: 'day', maxCostUsd: maxCostMicros / 1_000_000 }, pricing);
        const limit = tenants.ledger('acme')?.limits.maxCostMicros ?? 0;
        // The model's bill in micro-dollars, rounded up per call.
        const costOf = (input: number, output: number) => Math.ceil((input * price.inputMicros + output * price.outputMicros) / 1_000_000);
        const billed: number[] = [];
        const started = await Promise.all(
          runs.map(async (run) => {
            await ticks(run.start);
            return orch.start({ agent: caller(run.calls, billed, costOf), task: 't', tenant: 'acme' });
          }),
        );
        const reports = await Promise.all(started.map((handle) => handle.report));

        const spent = tenants.ledger('acme')?.spent().costMicros ?? Number.NaN;
        expect(spent).toBeLessThanOrEqual(limit);
        expect(spent).toBe(reports.reduce((sum, report) => sum + (report.cost?.micros ?? 0), 0));
        expect(spent).toBe(billed.reduce((sum, micros) => sum + micros, 0));
        expect(tenants.accountFor('acme')?.costLeft()).toBe(limit - spent);
        for (const report of reports) {
          if (report.status === 'SUCCESS') continue;
          expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_cost', scope: 'tenant' });
        }
        started.forEach((handle, i) => expectDeniedForCause(handle.events(), runs[i]?.calls ?? []));
      }),
      { numRuns: 400, ...LIMITS },
    );
  });
});

describe("a tenant's runs on a queue's workers, against its window in Redis (property)", () => {
  // Redis expires a span's hash by its own clock: the window is today's.
  const NOW = Date.now();
  const redis = useTestRedis();
  let client: Redis;
  beforeAll(() => {
    client = redis.client();
  });

  /** A report as the give-back reads it: what the run spent. */
  const reportOf = (tokens: number) => ({ totalSteps: 0, tokenUsage: { total: tokens }, toolUsage: { total: 0 } }) as unknown as ExecutionReport;

  let queues = 0;

  it("never lets the runs' spend pass maxTokens, and leaves nothing held once every run gave its chunk back", { timeout: 30_000 }, async () => {
    const spendArb = fc.record({ reserve: fc.integer({ min: 0, max: 300 }), used: fc.integer({ min: 0, max: 300 }) });
    const runArb = fc.record({
      // The run's own token limit: -1 is none, so its chunk is all that is left.
      want: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 800 })),
      spends: fc.array(spendArb, { maxLength: 5 }),
      // Its job is handed to another worker mid-way: the run takes its chunk again.
      handedOn: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(runArb, { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 0, max: 1_500 }),
        fc.integer({ min: 0, max: 100 }),
        fc.array(fc.nat(), { minLength: 60, maxLength: 60 }),
        async (runs, maxTokens, seedPercent, picks) => {
          const keys = tenantWindowKeys(queueKeys(`tenant-property-${++queues}`), 'acme');
          const limits = checkTenantBudget({ window: 'day', maxTokens }, 'budget');
          // What the run store held for the window before Redis saw it.
          const seed = Math.floor((maxTokens * seedPercent) / 100);
          const seedOf = () => ({ runs: 0, steps: 0, tokens: seed, toolCalls: 0, costMicros: 0 });
          const windows = new Map<string, string>();
          let total = 0;

          type Op = 'lease' | 'spend' | 'handOn' | 'giveBack';
          const state = runs.map((run, i) => {
            const ops: Op[] = ['lease', ...run.spends.map((): Op => 'spend'), 'giveBack'];
            if (run.handedOn) ops.splice(1 + Math.ceil(run.spends.length / 2), 0, 'handOn');
            return { id: `run-${i}`, run, ops, next: 0, spendIndex: 0, spent: 0, account: undefined as TenantAccount | undefined, admitted: false };
          });

          const take = async (s: (typeof state)[number]): Promise<TenantAccount> => {
            const lease = await leaseTenantWindow(client, keys, 'acme', s.id, { steps: -1, tokens: s.run.want, toolCalls: -1, costMicros: -1 }, NOW, windows);
            expect(lease).toBeDefined();
            return (lease as { account: TenantAccount }).account;
          };

          let pick = 0;
          for (;;) {
            const live = state.filter((s) => s.next < s.ops.length);
            if (live.length === 0) break;
            const s = live[(picks[pick++ % picks.length] ?? 0) % live.length] as (typeof state)[number];
            const op = s.ops[s.next++];
            if (op === 'lease') {
              // A server admits the run (refused once the window is spent), then a worker takes its chunk.
              s.admitted = (await admitTenantRuns(client, keys, limits, 1, NOW, seedOf)) === undefined;
              if (!s.admitted) {
                expect(seed + total).toBeGreaterThanOrEqual(maxTokens);
                s.next = s.ops.length;
                continue;
              }
              s.account = await take(s);
            } else if (op === 'handOn') {
              // The new worker's account counts what the run spent before against the same chunk.
              const account = await take(s);
              account.chargePrior({ steps: 0, tokens: s.spent, toolCalls: 0, costMicros: 0 });
              s.account = account;
            } else if (op === 'spend') {
              const account = s.account as TenantAccount;
              const { reserve, used } = s.run.spends[s.spendIndex++] as { reserve: number; used: number };
              const refusal = account.checkModelCall() ?? account.checkReservation(reserve);
              if (refusal !== null) {
                expect(refusal).toMatchObject({ rule: 'max_tokens', scope: 'tenant' });
                // Refused only for want of room: the chunk is spent, or the reservation is more than it has left.
                const left = account.tokensLeft();
                expect(left <= 0 || reserve > left).toBe(true);
                continue;
              }
              account.reserve(reserve);
              account.release(reserve);
              const spent = Math.min(used, reserve);
              expect(account.chargeTokens(spent)).toBeNull();
              s.spent += spent;
              total += spent;
            } else {
              expect(await giveBackTenantWindow(client, keys, 'day', s.id, reportOf(s.spent), NOW)).toBe(true);
            }
            expect(seed + total).toBeLessThanOrEqual(maxTokens);
          }

          const record = await client.hgetall(keys.record);
          expect(record['held:tokens'] ?? '0').toBe('0');
          expect(Object.keys(record).filter((field) => field.startsWith('run:'))).toEqual([]);
          expect(await client.zcard(keys.holds)).toBe(0);
          const span = await client.hget(keys.span(spanAt('day', NOW).key), 'tokens');
          expect(Number(span ?? 0)).toBe(seed + total);
        },
      ),
      { numRuns: 400, ...LIMITS },
    );
  });
});
