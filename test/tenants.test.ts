// Tenants: API keys mapped to tenants, per-window budgets kept in the run store, 429 before a run
// starts once a window is spent, and GET /tenants/:id/usage.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { OaoError, createMemoryStore, type AgentContext, type RunStore } from '../src/index.js';
import { createServer, type ServerOptions } from '../src/server/index.js';
import { resolveServerOptions, resolveTenantKeys } from '../src/server/serverOptions.js';
import { createSqliteStore } from '../src/store/sqlite/index.js';
import { TenantLedger } from '../src/tenants/TenantLedger.js';
import { checkTenantBudget } from '../src/tenants/tenantBudget.js';
import { checkWindow, spanAt, spanExpiresAt, spansAt } from '../src/tenants/windows.js';

/** Spends 8 tokens in one step. */
const spender = {
  name: 'spender',
  invoke: (_task: unknown, ctx: AgentContext) => {
    ctx.usage({ input: 5, output: 3 });
    return { output: 'spent' };
  },
};

/** 2026-12-01T22:00:00Z: two hours before the next UTC day. */
const LATE = Date.UTC(2026, 11, 1, 22);

const apps: FastifyInstance[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function clockAt(ms: number): SimulatedClock {
  const clock = new SimulatedClock();
  clock.set(ms);
  return clock;
}

async function serve(options: Partial<ServerOptions>): Promise<FastifyInstance> {
  const app = await createServer({ agents: { spender }, dashboard: false, ...options });
  apps.push(app);
  await app.ready();
  return app;
}

function caught(fn: () => unknown): OaoError {
  try {
    fn();
  } catch (error) {
    if (OaoError.isInstance(error)) return error;
    throw error;
  }
  throw new Error('expected a typed error');
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

describe('budget windows', () => {
  it('counts a charge in its UTC day or month, and says when that window ends', () => {
    const day = spanAt('day', LATE);
    expect(day).toEqual({ key: 'day:2026-12-01', startMs: Date.UTC(2026, 11, 1), endMs: Date.UTC(2026, 11, 2) });
    expect(spanAt('month', LATE)).toEqual({ key: 'month:2026-12', startMs: Date.UTC(2026, 11, 1), endMs: Date.UTC(2027, 0, 1) });
    expect(spanAt('day', Date.UTC(2026, 11, 2) - 1).key).toBe('day:2026-12-01');
    expect(spanAt('day', Date.UTC(2026, 11, 2)).key).toBe('day:2026-12-02');
  });

  it('keeps a rolling window as buckets that count while any of them is inside it', () => {
    const window = { rollingMs: 60_000 };
    // 60 buckets of 1 s: the window at t counts the buckets overlapping (t - 60 s, t].
    const spans = spansAt(window, 120_500);
    expect(spans[0]?.startMs).toBe(60_000);
    expect(spans.at(-1)?.startMs).toBe(120_000);
    expect(spans).toHaveLength(61);
    expect(spanExpiresAt(window, spans[0] as (typeof spans)[number])).toBe(121_000);
  });

  it('refuses unknown window kinds and bad lengths with the field named', () => {
    for (const [value, field] of [
      ['week', 'budget.window'],
      [{ rollingMs: 10 }, 'budget.window.rollingMs'],
      [{ rollingMs: 60_000, extra: 1 }, 'budget.window'],
      [null, 'budget.window'],
    ] as const) {
      const error = caught(() => checkWindow(value, 'budget.window'));
      expect([error.code, error.details?.field]).toEqual(['OAO_ERR_INVALID_ARGUMENT', field]);
    }
  });
});

describe('tenant configuration', () => {
  it('maps keys to tenants in the list and map forms, plain keys to "default"', () => {
    const listed = resolveTenantKeys(['plain', { key: 'a1', name: 'alice', tenant: 'acme', budget: { window: 'day', maxRuns: 3 } }]);
    expect(listed.keys.map((key) => [key.key, key.tenant])).toEqual([
      ['plain', 'default'],
      ['a1', 'acme'],
    ]);
    expect(listed.tenants.get('acme')).toEqual({ window: 'day', maxRuns: 3 });
    expect(listed.tenants.has('default')).toBe(true);
    const mapped = resolveTenantKeys({ k1: { tenant: 'acme', budget: { window: 'month', maxCostUsd: 5 } }, k2: { tenant: 'acme' }, k3: { tenant: 'beta' } });
    expect(mapped.keys.map((key) => key.tenant)).toEqual(['acme', 'acme', 'beta']);
    expect(mapped.tenants.get('acme')).toEqual({ window: 'month', maxCostMicros: 5_000_000 });
    expect(mapped.tenants.get('beta')).toBeUndefined();
  });

  it('refuses a key mapped to two tenants, two budgets for one tenant and bad budgets, at startup', () => {
    const cases: Array<[ServerOptions['apiKeys'], string]> = [
      [[{ key: 'k', tenant: 'acme' }, { key: 'k', tenant: 'beta' }], 'apiKeys.1.tenant'],
      [{ k1: { tenant: 'acme', budget: { window: 'day', maxRuns: 1 } }, k2: { tenant: 'acme', budget: { window: 'day', maxRuns: 2 } } }, 'apiKeys.1.budget'],
      [{ k1: { tenant: 'acme', budget: { window: 'day', maxCostUsd: -1 } } }, 'apiKeys.0.budget.maxCostUsd'],
      [{ k1: { tenant: 'acme', budget: { window: 'day', maxCostUsd: Number.POSITIVE_INFINITY } } }, 'apiKeys.0.budget.maxCostUsd'],
      [{ k1: { tenant: 'acme', budget: { window: 'fortnight' as 'day' } } }, 'apiKeys.0.budget.window'],
      [{ k1: { tenant: 'acme', budget: { maxRuns: 1 } as never } }, 'apiKeys.0.budget.window'],
      [{ k1: { tenant: 'a b' } }, 'apiKeys.0.tenant'],
      [{ k1: {} as never }, 'apiKeys.0.tenant'],
    ];
    for (const [apiKeys, field] of cases) {
      const error = caught(() => resolveServerOptions({ agents: { spender }, apiKeys }));
      expect([field, error.code, error.details?.field]).toEqual([field, 'OAO_ERR_INVALID_ARGUMENT', field]);
    }
    const admin = caught(() => resolveServerOptions({ agents: { spender }, apiKeys: ['k'], adminKeys: ['nobody'] }));
    expect([admin.code, admin.details?.field]).toEqual(['OAO_ERR_INVALID_ARGUMENT', 'adminKeys.0']);
  });
});

describe('a tenant ledger', () => {
  it('keeps spend in the store, so a new ledger on the same store starts from it', () => {
    const store = createMemoryStore();
    const now = () => LATE;
    const limits = checkTenantBudget({ window: 'day', maxTokens: 100 }, 'budget');
    const first = new TenantLedger('acme', limits, store, now, (error) => {
      throw error;
    });
    first.charge({ runs: 1, tokens: 60, costMicros: 1_500 });
    first.charge({ tokens: 30 });
    const second = new TenantLedger('acme', limits, store, now, () => undefined);
    return second.load().then(() => {
      expect(second.spent()).toEqual({ runs: 1, steps: 0, tokens: 90, toolCalls: 0, costMicros: 1_500 });
      expect(store.counters('tenant:acme', 'day:2026-12-01')).toEqual({ runs: 1, tokens: 90, costMicros: 1_500 });
    });
  });
});

describe('tenants over HTTP', () => {
  const keys = {
    'acme-key': { tenant: 'acme', name: 'acme-ci', budget: { window: 'day' as const, maxRuns: 2 } },
    'beta-key': { tenant: 'beta' },
    'ops-key': { tenant: 'ops', name: 'ops' },
  };

  it('answers 429 OAO_ERR_TENANT_BUDGET with Retry-After at the window end once the tenant used its runs, and lets the next day in', async () => {
    const clock = clockAt(LATE);
    const app = await serve({ apiKeys: keys, clock });
    for (let run = 0; run < 2; run++) {
      const answer = await app.inject({ method: 'POST', url: '/run', headers: bearer('acme-key'), payload: { agent: 'spender', task: 'go' } });
      expect(answer.statusCode).toBe(200);
    }
    const refused = await app.inject({ method: 'POST', url: '/runs', headers: bearer('acme-key'), payload: { agent: 'spender', task: 'go' } });
    expect(refused.statusCode).toBe(429);
    expect(refused.json()).toMatchObject({ error: { code: 'OAO_ERR_TENANT_BUDGET', details: { tenant: 'acme', limit: 'maxRuns', max: 2, spent: 2, scope: 'tenant' } } });
    // Two hours to the next UTC day.
    expect(refused.headers['retry-after']).toBe(String(2 * 60 * 60));
    // Another tenant is not affected.
    expect((await app.inject({ method: 'POST', url: '/run', headers: bearer('beta-key'), payload: { agent: 'spender', task: 'go' } })).statusCode).toBe(200);
    clock.increment(2 * 60 * 60 * 1000);
    expect((await app.inject({ method: 'POST', url: '/run', headers: bearer('acme-key'), payload: { agent: 'spender', task: 'go' } })).statusCode).toBe(200);
  }, 20_000);

  it('charges every job of a batch, and refuses a batch that would go over before any of it starts', async () => {
    const app = await serve({ apiKeys: keys, clock: clockAt(LATE) });
    const over = await app.inject({ method: 'POST', url: '/run-multi', headers: bearer('acme-key'), payload: { agents: { a: 'spender', b: 'spender', c: 'spender' }, task: 'go' } });
    expect(over.statusCode).toBe(429);
    const fits = await app.inject({ method: 'POST', url: '/run-multi', headers: bearer('acme-key'), payload: { agents: { a: 'spender', b: 'spender' }, task: 'go' } });
    expect(fits.statusCode).toBe(200);
    const usage = await app.inject({ method: 'GET', url: '/tenants/acme/usage', headers: bearer('acme-key') });
    expect(usage.json()).toMatchObject({ spent: { runs: 2, steps: 2, tokens: 16 } });
  }, 20_000);

  it('gives back the run of a request that starts nothing', async () => {
    const app = await serve({ apiKeys: keys, clock: clockAt(LATE) });
    const unknown = await app.inject({ method: 'POST', url: '/run', headers: bearer('acme-key'), payload: { agent: 'nobody', task: 'go' } });
    expect(unknown.statusCode).toBe(404);
    const usage = await app.inject({ method: 'GET', url: '/tenants/acme/usage', headers: bearer('acme-key') });
    expect(usage.json()).toMatchObject({ spent: { runs: 0 } });
  }, 20_000);

  it('shows a key its own tenant only, an admin key every tenant, and 404 for a tenant nobody has', async () => {
    const app = await serve({ apiKeys: keys, adminKeys: ['ops'], clock: clockAt(LATE) });
    await app.inject({ method: 'POST', url: '/run', headers: bearer('acme-key'), payload: { agent: 'spender', task: 'go' } });
    const own = await app.inject({ method: 'GET', url: '/tenants/acme/usage', headers: bearer('acme-key') });
    expect(own.statusCode).toBe(200);
    expect(own.json()).toEqual({
      tenant: 'acme',
      window: 'day',
      windowStart: '2026-12-01T00:00:00.000Z',
      windowEnd: '2026-12-02T00:00:00.000Z',
      spent: { runs: 1, steps: 1, tokens: 8, toolCalls: 0, costMicros: 0, costUsd: 0 },
      limits: { maxRuns: 2, maxSteps: null, maxTokens: null, maxToolCalls: null, maxCostUsd: null },
    });
    const other = await app.inject({ method: 'GET', url: '/tenants/acme/usage', headers: bearer('beta-key') });
    expect([other.statusCode, other.json().error.code]).toEqual([403, 'OAO_ERR_FORBIDDEN']);
    expect((await app.inject({ method: 'GET', url: '/tenants/acme/usage', headers: bearer('ops-key') })).statusCode).toBe(200);
    const missing = await app.inject({ method: 'GET', url: '/tenants/nobody/usage', headers: bearer('ops-key') });
    expect([missing.statusCode, missing.json().error.code]).toEqual([404, 'OAO_ERR_UNKNOWN_TENANT']);
  }, 20_000);

  it('keeps a tenant spent across a restart on a SQLite store, and refuses by tokens once they are spent', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'oao-tenants-'));
    dirs.push(dir);
    const path = join(dir, 'runs.db');
    const tokenKeys = { 'acme-key': { tenant: 'acme', budget: { window: { rollingMs: 60 * 60 * 1000 }, maxTokens: 10 } } };
    let store: RunStore = createSqliteStore({ path });
    let app = await serve({ apiKeys: tokenKeys, store, clock: clockAt(LATE) });
    // 8 of 10 tokens: the next run may start; it spends 8 more, and the one after is refused.
    for (let run = 0; run < 2; run++) {
      expect((await app.inject({ method: 'POST', url: '/run', headers: bearer('acme-key'), payload: { agent: 'spender', task: 'go' } })).statusCode).toBe(200);
    }
    await app.close();
    apps.splice(apps.indexOf(app), 1);
    await store.close();
    store = createSqliteStore({ path });
    app = await serve({ apiKeys: tokenKeys, store, clock: clockAt(LATE + 60_000) });
    const refused = await app.inject({ method: 'POST', url: '/run', headers: bearer('acme-key'), payload: { agent: 'spender', task: 'go' } });
    expect(refused.statusCode).toBe(429);
    expect(refused.json()).toMatchObject({ error: { details: { limit: 'maxTokens', max: 10, spent: 16 } } });
    // The spend leaves the rolling hour when its bucket does: a minute's bucket, an hour after it.
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(58 * 60);
    expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(60 * 60);
    await app.close();
    apps.splice(apps.indexOf(app), 1);
    await store.close();
  }, 30_000);
});

describe('a server without tenants', () => {
  it('leaves no unhandled rejection behind when a batch request fails', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const app = await serve({ apiKeys: [] });
      const answer = await app.inject({ method: 'POST', url: '/run-multi', payload: { agents: ['nobody'], task: 'go' } });
      expect(answer.statusCode).toBe(404);
      // Rejections nobody handles are reported after the microtasks of the turn that made them.
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  }, 20_000);
});
