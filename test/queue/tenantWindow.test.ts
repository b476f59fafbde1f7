// The scripts behind a tenant's window in Redis, on a private redis-server: admission, a run's
// chunk (taken again by a run whose job was handed on), expired holds, and the give-back.
import type { Redis } from 'ioredis';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ExecutionReport } from '../../src/index.js';
import { queueKeys } from '../../src/queue/redisConnection.js';
import { admitTenantRuns, giveBackTenantWindow, leaseTenantWindow, parseWindowName, tenantWindowKeys, type TenantWindowKeys } from '../../src/queue/tenantWindow.js';
import { checkTenantBudget } from '../../src/tenants/tenantBudget.js';
import type { TenantSpend } from '../../src/tenants/TenantLedger.js';
import { spanAt } from '../../src/tenants/windows.js';
import { useTestRedis } from './redisServer.js';

const redis = useTestRedis();
let client: Redis;
beforeAll(async () => {
  client = redis.client();
}, 20_000);

const NOW = Date.UTC(2026, 11, 2, 12);
const ZERO: TenantSpend = { runs: 0, steps: 0, tokens: 0, toolCalls: 0, costMicros: 0 };
let counter = 0;

function keysFor(tenant: string): TenantWindowKeys {
  return tenantWindowKeys(queueKeys(`window${++counter}`), tenant);
}

/** A report that spent `tokens` in `steps` steps, as the give-back reads it. */
function spent(steps: number, tokens: number): ExecutionReport {
  return { totalSteps: steps, tokenUsage: { total: tokens }, toolUsage: { total: 0 } } as unknown as ExecutionReport;
}

const WANT_ALL = { steps: -1, tokens: -1, toolCalls: -1, costMicros: -1 };

describe("a tenant's window in Redis", () => {
  it('admits runs up to maxRuns, seeding a span it has not seen from the store once', async () => {
    const keys = keysFor('acme');
    const limits = checkTenantBudget({ window: 'day', maxRuns: 5, maxTokens: 100 }, 'budget');
    let seeds = 0;
    const seed = () => {
      seeds += 1;
      return { ...ZERO, runs: 3, tokens: 40 };
    };
    expect(await admitTenantRuns(client, keys, limits, 2, NOW, seed)).toBeUndefined();
    expect(await admitTenantRuns(client, keys, limits, 1, NOW, seed)).toEqual({ field: 'runs', spent: 5 });
    expect(seeds).toBe(2);
    const span = await client.hgetall(keys.span(spanAt('day', NOW).key));
    // The second seed was not added: a seeded span is Redis's from then on.
    expect(span).toMatchObject({ runs: '5', tokens: '40', seeded: '1' });
    expect(await client.pttl(keys.span(spanAt('day', NOW).key))).toBeGreaterThan(0);
  });

  it("takes a run's chunk of what is left, the same chunk again for the same run, and charges its spend once", async () => {
    const keys = keysFor('acme');
    const limits = checkTenantBudget({ window: 'day', maxTokens: 100 }, 'budget');
    const windows = new Map<string, string>();
    expect(await admitTenantRuns(client, keys, limits, 2, NOW, () => ZERO)).toBeUndefined();
    const first = await leaseTenantWindow(client, keys, 'acme', 'run-1', { ...WANT_ALL, tokens: 60 }, NOW, windows);
    const second = await leaseTenantWindow(client, keys, 'acme', 'run-2', { ...WANT_ALL, tokens: 60 }, NOW, windows);
    expect(first?.account.tokensLeft()).toBe(60);
    // Only 40 are left once run-1 holds 60.
    expect(second?.account.tokensLeft()).toBe(40);
    const again = await leaseTenantWindow(client, keys, 'acme', 'run-1', { ...WANT_ALL, tokens: 60 }, NOW, windows);
    expect(again?.account.tokensLeft()).toBe(60);
    expect(await client.hget(keys.record, 'held:tokens')).toBe('100');

    expect(await giveBackTenantWindow(client, keys, 'day', 'run-1', spent(3, 55), NOW)).toBe(true);
    // Given back once only: a second give-back (a retried job) charges nothing.
    expect(await giveBackTenantWindow(client, keys, 'day', 'run-1', spent(3, 55), NOW)).toBe(false);
    expect(await client.hget(keys.span(spanAt('day', NOW).key), 'tokens')).toBe('55');
    expect(await client.hget(keys.record, 'held:tokens')).toBe('40');
    // A run that takes now finds what run-1 left: 100 - 55 spent - 40 held.
    const third = await leaseTenantWindow(client, keys, 'acme', 'run-3', WANT_ALL, NOW, windows);
    expect(third?.account.tokensLeft()).toBe(5);
  });

  it('gives back a chunk of nothing: a run that found the window spent', async () => {
    const keys = keysFor('acme');
    const limits = checkTenantBudget({ window: 'day', maxTokens: 10, maxSteps: 5 }, 'budget');
    expect(await admitTenantRuns(client, keys, limits, 1, NOW, () => ZERO)).toBeUndefined();
    await leaseTenantWindow(client, keys, 'acme', 'all', WANT_ALL, NOW, new Map());
    const empty = await leaseTenantWindow(client, keys, 'acme', 'none-left', WANT_ALL, NOW, new Map());
    expect(empty?.account.tokensLeft()).toBe(0);
    expect(empty?.account.checkStep()).toMatchObject({ rule: 'max_steps', scope: 'tenant' });
    await expect(giveBackTenantWindow(client, keys, 'day', 'none-left', spent(0, 0), NOW)).resolves.toBe(true);
    expect(await client.hexists(keys.record, 'run:none-left')).toBe(0);
  });

  it('releases the hold of a run whose worker stopped taking it once the hold expires', async () => {
    const keys = keysFor('acme');
    const limits = checkTenantBudget({ window: 'day', maxTokens: 100 }, 'budget');
    expect(await admitTenantRuns(client, keys, limits, 2, NOW, () => ZERO)).toBeUndefined();
    await leaseTenantWindow(client, keys, 'acme', 'lost', WANT_ALL, NOW, new Map());
    expect((await leaseTenantWindow(client, keys, 'acme', 'late', { ...WANT_ALL, tokens: 10 }, NOW, new Map()))?.account.tokensLeft()).toBe(0);
    // The hold's expiry passes (as Redis's clock sees it).
    await client.zadd(keys.holds, 0, 'lost');
    expect((await leaseTenantWindow(client, keys, 'acme', 'later', { ...WANT_ALL, tokens: 10 }, NOW, new Map()))?.account.tokensLeft()).toBe(10);
    expect(await client.hexists(keys.record, 'run:lost')).toBe(0);
    expect(await client.hget(keys.record, 'held:tokens')).toBe('10');
  });

  it('gives no account without a record, or when the budget limits only how many runs start', async () => {
    const none = keysFor('nobody');
    expect(await leaseTenantWindow(client, none, 'nobody', 'r', WANT_ALL, NOW, new Map())).toBeUndefined();
    const keys = keysFor('acme');
    expect(await admitTenantRuns(client, keys, checkTenantBudget({ window: 'day', maxRuns: 3 }, 'budget'), 1, NOW, () => ZERO)).toBeUndefined();
    expect(await leaseTenantWindow(client, keys, 'acme', 'r', WANT_ALL, NOW, new Map())).toBeUndefined();
  });

  it('follows a window a server changed: the cached one is recomputed', async () => {
    const keys = keysFor('acme');
    const windows = new Map<string, string>([['acme', 'day']]);
    expect(await admitTenantRuns(client, keys, checkTenantBudget({ window: { rollingMs: 60_000 }, maxTokens: 50 }, 'budget'), 1, NOW, () => ZERO)).toBeUndefined();
    const lease = await leaseTenantWindow(client, keys, 'acme', 'r', WANT_ALL, NOW, windows);
    expect(lease?.window).toEqual({ rollingMs: 60_000 });
    expect(lease?.account.tokensLeft()).toBe(50);
    expect(windows.get('acme')).toBe('rolling:60000');
  });

  it('reads window names back, and nothing else', () => {
    expect(parseWindowName('day')).toBe('day');
    expect(parseWindowName('month')).toBe('month');
    expect(parseWindowName('rolling:60000')).toEqual({ rollingMs: 60_000 });
    expect(parseWindowName('rolling:5')).toBeUndefined();
    expect(parseWindowName('week')).toBeUndefined();
  });
});
