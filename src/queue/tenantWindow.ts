import type { Redis } from 'ioredis';
import { OaoError } from '../errors.js';
import type { ExecutionReport } from '../report/schema.js';
import type { TenantBudgetLimits } from '../tenants/tenantBudget.js';
import type { TenantSpend } from '../tenants/TenantLedger.js';
import { TenantLevel, type TenantAccount, type TenantWindow } from '../tenants/TenantLevel.js';
import { MAX_ROLLING_MS, MIN_ROLLING_MS, spanAt, spanExpiresAt, spansAt, windowName, type BudgetWindow, type WindowSpan } from '../tenants/windows.js';
import type { BatchBudgetField } from './batchBudget.js';

/**
 * A tenant's budget window shared by every server and worker of a queue, in Redis (see
 * docs/budgets.md, "Tenants on a queue"):
 *
 * - the tenant's record (a hash): its window and limits, written by the servers that admit its
 *   runs; what its running runs hold of each limit (`held:<field>`) and the chunk each holds
 *   (`run:<id>`);
 * - one hash per span of the window (a UTC day or month, or a bucket of a rolling window): what
 *   the tenant spent in it, seeded once from the run store's counters;
 * - a sorted set of the holds, scored by when each expires.
 *
 * A server admits a run atomically against the spans (`maxRuns`, and whether anything is left);
 * a worker then takes the run's chunk of what is left (its own limit of each, at most what is left
 * and not held by the tenant's other runs) and checks the run against it in-run, synchronously;
 * when the run ends its spend is charged to the span that holds now and the rest of the chunk is
 * released, in one script. The tenant's runs on all workers together never spend more than its
 * limit plus what the run store held that Redis had not seen.
 */

/** The limits a run spends against (`runs` is counted at admission only). */
const SPEND_FIELDS: readonly BatchBudgetField[] = ['steps', 'tokens', 'toolCalls', 'costMicros'];
const SPAN_FIELDS = ['runs', 'steps', 'tokens', 'toolCalls', 'costMicros'] as const;

/** How long a run's hold of its tenant's window lasts after it was last taken: a run that never ends gives it back then. */
export const DEFAULT_TENANT_HOLD_TTL_MS = 86_400_000;
/** How long a span's hash outlives the moment its spend stops counting. */
const SPAN_GRACE_MS = 3_600_000;

/**
 * Admits runs of a tenant, atomically: writes the tenant's window and limits into its record,
 * seeds each span Redis has not seen from the run store's counters (once), then refuses when
 * `maxRuns` would be passed or another limit is spent, or counts the runs.
 *
 * KEYS[1] the record; KEYS[2..] the spans that count now, oldest first (the last is the span now).
 * ARGV: window name, runs, the number n of limits, n pairs of field and limit, then per span its
 * expiry (unix ms) and its seed (runs, steps, tokens, toolCalls, costMicros).
 * Returns { 'admitted' } or { 'refused', field, spent }.
 */
const ADMIT = `
local names = {'runs', 'steps', 'tokens', 'toolCalls', 'costMicros'}
redis.call('HSET', KEYS[1], 'window', ARGV[1])
for _, name in ipairs(names) do redis.call('HDEL', KEYS[1], 'max:' .. name) end
local n = tonumber(ARGV[3])
local maxes = {}
for i = 1, n do
  local field = ARGV[2 + 2 * i]
  redis.call('HSET', KEYS[1], 'max:' .. field, ARGV[3 + 2 * i])
  maxes[field] = tonumber(ARGV[3 + 2 * i])
end
local base = 4 + 2 * n
local sum = {runs = 0, steps = 0, tokens = 0, toolCalls = 0, costMicros = 0}
for s = 2, #KEYS do
  local o = base + (s - 2) * 6
  if redis.call('HEXISTS', KEYS[s], 'seeded') == 0 then
    for k, name in ipairs(names) do
      local seed = tonumber(ARGV[o + k])
      if seed ~= 0 then redis.call('HINCRBY', KEYS[s], name, string.format('%.0f', seed)) end
    end
    redis.call('HSET', KEYS[s], 'seeded', '1')
    redis.call('PEXPIREAT', KEYS[s], ARGV[o])
  end
  for _, name in ipairs(names) do sum[name] = sum[name] + (tonumber(redis.call('HGET', KEYS[s], name)) or 0) end
end
local runs = tonumber(ARGV[2])
if maxes.runs and sum.runs + runs > maxes.runs then return {'refused', 'runs', string.format('%.0f', sum.runs)} end
for k = 2, #names do
  local name = names[k]
  if maxes[name] and sum[name] >= maxes[name] then return {'refused', name, string.format('%.0f', sum[name])} end
end
if runs ~= 0 then redis.call('HINCRBY', KEYS[#KEYS], 'runs', runs) end
return {'admitted'}
`;

/**
 * Takes back runs admitted by a request that started none. KEYS[1] the span now; ARGV: runs, its expiry.
 */
const REFUND = `
redis.call('HINCRBY', KEYS[1], 'runs', -tonumber(ARGV[1]))
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
`;

/**
 * Takes a run's chunk of its tenant's window (the same chunk again when the run holds one: its job
 * was handed to another worker, or it waited for a decision). Expired holds are released first.
 * For each limit the tenant has: the run's own limit (-1: none, so all that is left), at most what
 * is left, never below 0. The hold expires `ttl` after this take (Redis's clock).
 *
 * KEYS[1] the record, KEYS[2] the holds, KEYS[3..] the spans that count now.
 * ARGV: window name, run id, hold time to live in ms, then field and wanted amount pairs.
 * Returns { 'none' } (no budget on what a run spends), { 'window', name } (the record has another
 * window: compute the spans again) or { 'taken', window, 'field=max,...', 'field=take,...' }.
 */
const TAKE = `
local window = redis.call('HGET', KEYS[1], 'window')
if not window then return {'none'} end
if window ~= ARGV[1] then return {'window', window} end
local time = redis.call('TIME')
local nowMs = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', nowMs)) do
  local held = redis.call('HGET', KEYS[1], 'run:' .. id)
  if held then
    for field, take in string.gmatch(held, '(%a+)=(%d+)') do
      if tonumber(take) > 0 then redis.call('HINCRBY', KEYS[1], 'held:' .. field, '-' .. take) end
    end
    redis.call('HDEL', KEYS[1], 'run:' .. id)
  end
  redis.call('ZREM', KEYS[2], id)
end
local limited = {}
local maxes = {}
for i = 4, #ARGV, 2 do
  local max = redis.call('HGET', KEYS[1], 'max:' .. ARGV[i])
  if max then
    limited[#limited + 1] = {ARGV[i], tonumber(max), tonumber(ARGV[i + 1])}
    maxes[#maxes + 1] = ARGV[i] .. '=' .. max
  end
end
if #limited == 0 then return {'none'} end
local expires = nowMs + tonumber(ARGV[3])
local held = redis.call('HGET', KEYS[1], 'run:' .. ARGV[2])
if held then
  redis.call('ZADD', KEYS[2], expires, ARGV[2])
  return {'taken', window, table.concat(maxes, ','), held}
end
local items = {}
for _, entry in ipairs(limited) do
  local field, max, want = entry[1], entry[2], entry[3]
  local spent = 0
  for s = 3, #KEYS do spent = spent + (tonumber(redis.call('HGET', KEYS[s], field)) or 0) end
  local left = max - spent - (tonumber(redis.call('HGET', KEYS[1], 'held:' .. field)) or 0)
  if left < 0 then left = 0 end
  local take = left
  if want >= 0 and want < left then take = want end
  if take > 0 then redis.call('HINCRBY', KEYS[1], 'held:' .. field, string.format('%.0f', take)) end
  items[#items + 1] = field .. '=' .. string.format('%.0f', take)
end
local chunk = table.concat(items, ',')
redis.call('HSET', KEYS[1], 'run:' .. ARGV[2], chunk)
redis.call('ZADD', KEYS[2], expires, ARGV[2])
return {'taken', window, table.concat(maxes, ','), chunk}
`;

/**
 * A run has ended: its spend is charged to the span that holds now and its chunk is released, once
 * (nothing happens when the run holds none: given back already, or the hold expired).
 *
 * KEYS[1] the record, KEYS[2] the holds, KEYS[3] the span now. ARGV: run id, the span's expiry
 * (unix ms), then field and spent amount pairs. Returns 1 when given back.
 */
const GIVE_BACK = `
local held = redis.call('HGET', KEYS[1], 'run:' .. ARGV[1])
if not held then return 0 end
redis.call('HDEL', KEYS[1], 'run:' .. ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
for field, take in string.gmatch(held, '(%a+)=(%d+)') do
  if tonumber(take) > 0 then redis.call('HINCRBY', KEYS[1], 'held:' .. field, '-' .. take) end
end
for i = 3, #ARGV, 2 do
  local spent = tonumber(ARGV[i + 1])
  if spent ~= 0 then redis.call('HINCRBY', KEYS[3], ARGV[i], string.format('%.0f', spent)) end
end
redis.call('PEXPIREAT', KEYS[3], ARGV[2])
return 1
`;

/** The Redis keys of one tenant's window (see `queueKeys`). */
export interface TenantWindowKeys {
  readonly record: string;
  readonly holds: string;
  span(span: string): string;
}

/** Where a tenant's window is in Redis, for the keys of a queue. */
export function tenantWindowKeys(keys: { tenantBudget(t: string): string; tenantHolds(t: string): string; tenantSpan(t: string, s: string): string }, tenant: string): TenantWindowKeys {
  return { record: keys.tenantBudget(tenant), holds: keys.tenantHolds(tenant), span: (span) => keys.tenantSpan(tenant, span) };
}

/** Why a tenant's runs may not start now, as Redis counted it. */
export interface TenantWindowRefusal {
  readonly field: (typeof SPAN_FIELDS)[number];
  readonly spent: number;
}

/** When a span's hash may go: a while after its spend stops counting. */
function spanExpiry(window: BudgetWindow, span: WindowSpan): number {
  return spanExpiresAt(window, span) + SPAN_GRACE_MS;
}

/**
 * Admits `runs` runs of a tenant whose budget is `limits` against its window in Redis (see ADMIT):
 * undefined when admitted (the runs are counted), or what refused them. `seed(span)` is what the
 * run store's counters hold for a span, for a span Redis has not seen.
 */
export async function admitTenantRuns(
  client: Redis,
  keys: TenantWindowKeys,
  limits: TenantBudgetLimits,
  runs: number,
  nowMs: number,
  seed: (span: WindowSpan) => TenantSpend,
): Promise<TenantWindowRefusal | undefined> {
  const spans = spansAt(limits.window, nowMs);
  const pairs: (string | number)[] = [];
  const maxes: Record<(typeof SPAN_FIELDS)[number], number | undefined> = {
    runs: limits.maxRuns,
    steps: limits.maxSteps,
    tokens: limits.maxTokens,
    toolCalls: limits.maxToolCalls,
    costMicros: limits.maxCostMicros,
  };
  for (const field of SPAN_FIELDS) {
    const max = maxes[field];
    if (max !== undefined) pairs.push(field, max);
  }
  const args: (string | number)[] = [windowName(limits.window), runs, pairs.length / 2, ...pairs];
  for (const span of spans) {
    const seeded = seed(span);
    args.push(spanExpiry(limits.window, span), seeded.runs, seeded.steps, seeded.tokens, seeded.toolCalls, seeded.costMicros);
  }
  const answer = (await client.eval(ADMIT, 1 + spans.length, keys.record, ...spans.map((span) => keys.span(span.key)), ...args)) as string[];
  if (answer[0] === 'admitted') return undefined;
  return { field: answer[1] as TenantWindowRefusal['field'], spent: Number(answer[2]) };
}

/** Takes back `runs` admitted runs that never started (see REFUND). */
export async function refundTenantRuns(client: Redis, keys: TenantWindowKeys, window: BudgetWindow, runs: number, nowMs: number): Promise<void> {
  const span = spanAt(window, nowMs);
  await client.eval(REFUND, 1, keys.span(span.key), runs, spanExpiry(window, span));
}

/** `day`, `month` or `rolling:<ms>` back to a window; undefined for anything else. */
export function parseWindowName(name: string): BudgetWindow | undefined {
  if (name === 'day' || name === 'month') return name;
  const match = /^rolling:(\d{1,12})$/.exec(name);
  if (match === null) return undefined;
  const rollingMs = Number(match[1]);
  return rollingMs >= MIN_ROLLING_MS && rollingMs <= MAX_ROLLING_MS ? { rollingMs } : undefined;
}

function parseAmounts(text: string): Partial<Record<BatchBudgetField, number>> {
  const amounts: Partial<Record<BatchBudgetField, number>> = {};
  for (const item of text.split(',')) {
    const [field, amount] = item.split('=');
    if (field !== undefined && amount !== undefined && (SPEND_FIELDS as readonly string[]).includes(field)) amounts[field as BatchBudgetField] = Number(amount);
  }
  return amounts;
}

/**
 * A worker's lease of its tenant's window for one run: the tenant's limits, and what the window
 * held (spent or held by the tenant's other runs) when the run took its chunk. Checks count the
 * run's spend on top, so the run can spend its chunk and no more. Charging is the worker's: it
 * gives the run's spend back to Redis when the run ends.
 */
class LeasedTenantWindow implements TenantWindow {
  readonly tenant: string;
  readonly limits: TenantBudgetLimits;
  readonly leased = true;
  readonly #spent: TenantSpend;

  constructor(tenant: string, limits: TenantBudgetLimits, chunk: Partial<Record<BatchBudgetField, number>>) {
    this.tenant = tenant;
    this.limits = limits;
    const outside = (max: number | undefined, taken: number | undefined) => (max === undefined ? 0 : Math.max(0, max - (taken ?? 0)));
    this.#spent = Object.freeze({
      runs: 0,
      steps: outside(limits.maxSteps, chunk.steps),
      tokens: outside(limits.maxTokens, chunk.tokens),
      toolCalls: outside(limits.maxToolCalls, chunk.toolCalls),
      costMicros: outside(limits.maxCostMicros, chunk.costMicros),
    });
  }

  spent(): TenantSpend {
    return this.#spent;
  }

  charge(): void {
    // The worker charges the span that holds when the run ends (see giveBackTenantWindow).
  }
}

/**
 * Takes the run's chunk of its tenant's window and returns the account the run is checked
 * against (and the window, to give the spend back to), or undefined when the tenant has no budget on what a run spends (no server wrote one).
 * `windows` caches each tenant's window name between runs.
 */
export async function leaseTenantWindow(
  client: Redis,
  keys: TenantWindowKeys,
  tenant: string,
  executionId: string,
  wanted: Record<BatchBudgetField, number>,
  nowMs: number,
  windows: Map<string, string>,
  holdTtlMs = DEFAULT_TENANT_HOLD_TTL_MS,
): Promise<{ readonly account: TenantAccount; readonly window: BudgetWindow } | undefined> {
  let name = windows.get(tenant) ?? (await client.hget(keys.record, 'window'));
  for (let attempt = 0; attempt < 3; attempt++) {
    if (name === null) return undefined;
    const window = parseWindowName(name);
    if (window === undefined) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `The budget record of tenant "${tenant}" in Redis has an unknown window "${name.slice(0, 60)}"`, { details: { tenant } });
    }
    const spans = spansAt(window, nowMs);
    const args: (string | number)[] = [name, executionId, holdTtlMs];
    for (const field of SPEND_FIELDS) args.push(field, wanted[field]);
    const answer = (await client.eval(TAKE, 2 + spans.length, keys.record, keys.holds, ...spans.map((span) => keys.span(span.key)), ...args)) as string[];
    if (answer[0] === 'none') {
      windows.delete(tenant);
      return undefined;
    }
    if (answer[0] === 'window') {
      // A server changed the tenant's window: compute its spans again.
      name = answer[1] ?? null;
      windows.delete(tenant);
      continue;
    }
    windows.set(tenant, name);
    const maxes = parseAmounts(answer[2] ?? '');
    const limits: TenantBudgetLimits = Object.freeze({
      window,
      ...(maxes.steps === undefined ? {} : { maxSteps: maxes.steps }),
      ...(maxes.tokens === undefined ? {} : { maxTokens: maxes.tokens }),
      ...(maxes.toolCalls === undefined ? {} : { maxToolCalls: maxes.toolCalls }),
      ...(maxes.costMicros === undefined ? {} : { maxCostMicros: maxes.costMicros }),
    });
    return { account: new TenantLevel(new LeasedTenantWindow(tenant, limits, parseAmounts(answer[3] ?? ''))).open(), window };
  }
  throw new OaoError('OAO_ERR_QUEUE_UNAVAILABLE', `The window of tenant "${tenant}" kept changing while run "${executionId}" took its chunk`, { details: { tenant, executionId } });
}

/** The window a tenant's record in Redis has; undefined without a record (or with a window this version does not know). */
export async function tenantWindowOf(client: Redis, keys: TenantWindowKeys): Promise<BudgetWindow | undefined> {
  const name = await client.hget(keys.record, 'window');
  return name === null ? undefined : parseWindowName(name);
}

/** Charges a finished run's spend (its report's) to its tenant's window and releases its chunk (see GIVE_BACK). */
export async function giveBackTenantWindow(client: Redis, keys: TenantWindowKeys, window: BudgetWindow, executionId: string, report: ExecutionReport, nowMs: number): Promise<boolean> {
  const span = spanAt(window, nowMs);
  const answer = await client.eval(
    GIVE_BACK,
    3,
    keys.record,
    keys.holds,
    keys.span(span.key),
    executionId,
    spanExpiry(window, span),
    'steps',
    report.totalSteps,
    'tokens',
    report.tokenUsage.total,
    'toolCalls',
    report.toolUsage.total,
    'costMicros',
    report.cost?.micros ?? 0,
  );
  return answer === 1;
}

/** What a server with tenant budgets does with a queue's Redis: admits its tenants' runs there. */
export interface QueueTenantWindows {
  admit(tenant: string, limits: TenantBudgetLimits, runs: number, nowMs: number, seed: (span: WindowSpan) => TenantSpend): Promise<TenantWindowRefusal | undefined>;
  refund(tenant: string, window: BudgetWindow, runs: number, nowMs: number): Promise<void>;
}

const queueWindows = new WeakMap<object, QueueTenantWindows>();

/** Registers the tenant windows of a queue made by `createQueue` (kept off its public interface). */
export function registerTenantWindows(queue: object, windows: QueueTenantWindows): void {
  queueWindows.set(queue, windows);
}

/** The tenant windows of a queue made by `createQueue`; undefined for any other object. */
export function tenantWindowsOf(queue: object): QueueTenantWindows | undefined {
  return queueWindows.get(queue);
}
