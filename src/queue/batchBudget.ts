import type { Redis } from 'ioredis';
import { OaoError, type PolicyViolation } from '../errors.js';
import type { PolicyLimits } from '../policy/schema.js';
import { usdToMicros } from '../policy/pricing.js';
import type { ExecutionReport } from '../report/schema.js';
import { SharedBudget, type SharedBudgetLimits } from '../runtime/SharedBudget.js';

/**
 * The limits of a queued batch's shared budget record: what is left of each, in a Redis hash.
 * `costMicros` is the batch's `maxCostUsd` in integer micro-dollars.
 */
export type BatchBudgetField = 'steps' | 'tokens' | 'toolCalls' | 'costMicros';

/** What one run of a queued batch took from the batch's record: the run's own shared budget. */
export type BudgetChunk = Readonly<Partial<Record<BatchBudgetField, number>>>;

/** How long a batch's record lives after it is created or a run last took a chunk of it. */
export const DEFAULT_BATCH_TTL_MS = 86_400_000;

const FIELDS: readonly BatchBudgetField[] = ['steps', 'tokens', 'toolCalls', 'costMicros'];

/**
 * Takes a run's chunk of a batch's record, atomically. For each limit the batch has: take the
 * run's own limit for it (`-1`: all that is left), at most what is left. When any limit has
 * nothing left, nothing is taken and the run is refused. The chunk is written into the record
 * under the run's id, so a run taking again (its job handed to another worker) gets the same chunk
 * and nothing more. Every take renews the record's time to live (its `ttlMs` field).
 *
 * KEYS[1] the record; ARGV: run id, time to live in ms when the record has none, then field and wanted amount pairs.
 * Returns nil without a record, else `refused` or `taken` followed by `field=amount` items.
 */
const TAKE_CHUNK = `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('PEXPIRE', KEYS[1], tonumber(redis.call('HGET', KEYS[1], 'ttlMs')) or tonumber(ARGV[2]))
local held = redis.call('HGET', KEYS[1], 'run:' .. ARGV[1])
if held then return 'taken,' .. held end
local taken = {}
local refused = false
for i = 3, #ARGV, 2 do
  local field = ARGV[i]
  local left = tonumber(redis.call('HGET', KEYS[1], field))
  if left then
    if left < 0 then left = 0 end
    local want = tonumber(ARGV[i + 1])
    local take = left
    if want >= 0 and want < left then take = want end
    if take <= 0 then refused = true end
    taken[#taken + 1] = {field, take}
  end
end
local items = {}
for _, pair in ipairs(taken) do
  if not refused and pair[2] > 0 then redis.call('HINCRBY', KEYS[1], pair[1], string.format('%.0f', -pair[2])) end
  items[#items + 1] = pair[1] .. '=' .. string.format('%.0f', pair[2])
end
local chunk = table.concat(items, ',')
if refused then return 'refused,' .. chunk end
redis.call('HSET', KEYS[1], 'run:' .. ARGV[1], chunk)
return 'taken,' .. chunk
`;

/**
 * Gives back what a run did not spend of its chunk, once: the chunk minus the spend (a spend past
 * the chunk, usage reported after the fact, is charged), and the run's entry is removed. Nothing
 * happens when the run holds no chunk (given back already, or the record expired).
 *
 * KEYS[1] the record; ARGV: run id, then field and spent amount pairs. Returns 1 when given back.
 */
const GIVE_BACK = `
local held = redis.call('HGET', KEYS[1], 'run:' .. ARGV[1])
if not held then return 0 end
redis.call('HDEL', KEYS[1], 'run:' .. ARGV[1])
local spent = {}
for i = 2, #ARGV, 2 do spent[ARGV[i]] = tonumber(ARGV[i + 1]) end
for field, take in string.gmatch(held, '([%a]+)=(%d+)') do
  local back = tonumber(take) - (spent[field] or 0)
  if back ~= 0 then redis.call('HINCRBY', KEYS[1], field, string.format('%.0f', back)) end
end
return 1
`;

/** Checks a queued batch's budget and turns it into the record's fields (a typed error naming the limit). */
export function budgetFields(budget: unknown): Record<BatchBudgetField, number | undefined> {
  if (typeof budget !== 'object' || budget === null || Array.isArray(budget)) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Expected "budget" to be an object of limits (maxSteps, maxTokens, maxToolCalls, maxCostUsd)', { details: { field: 'budget' } });
  }
  const limits = budget as SharedBudgetLimits & Record<string, unknown>;
  for (const key of Object.keys(limits)) {
    if (key === 'timeoutMs') {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'A queued batch\'s budget has no "timeoutMs": its runs run on workers that share no clock (give each run a policy timeoutMs)', {
        details: { field: 'budget.timeoutMs' },
      });
    }
    if (key !== 'maxSteps' && key !== 'maxTokens' && key !== 'maxToolCalls' && key !== 'maxCostUsd') {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Unknown budget limit "${key}"`, { details: { field: `budget.${key}` } });
    }
  }
  // The same checks as an in-process batch's shared budget.
  const checked = new SharedBudget(limits);
  return { steps: checked.limits.maxSteps, tokens: checked.limits.maxTokens, toolCalls: checked.limits.maxToolCalls, costMicros: checked.maxCostMicros };
}

/** Creates a batch's record with every limit the budget has; it expires `ttlMs` after its last take. */
export async function createBatchBudget(client: Redis, key: string, fields: Record<BatchBudgetField, number | undefined>, ttlMs: number): Promise<void> {
  const values: string[] = [];
  for (const field of FIELDS) {
    const value = fields[field];
    if (value !== undefined) values.push(field, String(value));
  }
  // A record with no limit still marks the batch as known (a take of it gives an empty chunk).
  // Every take renews the record for ttlMs, so a run starting late in a long batch still finds it.
  values.push('ttlMs', String(ttlMs));
  await client.multi().del(key).hset(key, ...values).pexpire(key, ttlMs).exec();
}

/** The run's own limits, as wanted amounts of each field (-1: the run has none, so all that is left). */
export function wantedOf(limits: PolicyLimits): Record<BatchBudgetField, number> {
  const cost = limits.maxCostUsd === undefined ? undefined : usdToMicros(limits.maxCostUsd);
  return { steps: limits.maxSteps, tokens: limits.maxTokens, toolCalls: limits.maxToolCalls, costMicros: cost ?? -1 };
}

/** The outcome of a take: the chunk to run with, or why the run must not start. */
export type TakenChunk = { readonly chunk: BudgetChunk } | { readonly refused: PolicyViolation };

/** Takes the run's chunk of the batch's record (see TAKE_CHUNK). */
export async function takeChunk(client: Redis, key: string, executionId: string, wanted: Record<BatchBudgetField, number>, ttlMs: number): Promise<TakenChunk> {
  const args: (string | number)[] = [executionId, ttlMs];
  for (const field of FIELDS) args.push(field, wanted[field]);
  const answer = (await client.eval(TAKE_CHUNK, 1, key, ...args)) as string | null;
  if (answer === null) {
    return { refused: violation('max_steps', 'The batch\'s shared budget is gone (its record expired or was never created): no run of it starts', 0, 1) };
  }
  const [outcome, ...items] = answer.split(',');
  const chunk: Partial<Record<BatchBudgetField, number>> = {};
  for (const item of items) {
    const [field, amount] = item.split('=');
    if (field !== undefined && amount !== undefined && (FIELDS as readonly string[]).includes(field)) chunk[field as BatchBudgetField] = Number(amount);
  }
  if (outcome === 'taken') return { chunk };
  const spent = FIELDS.find((field) => chunk[field] === 0) ?? 'steps';
  const rule = RULES[spent];
  return { refused: violation(rule, `Not started: nothing is left of the batch's shared ${LIMIT_NAMES[spent]}`, 0, 1) };
}

/** Gives back the chunk minus what the run spent, by its report (see GIVE_BACK). */
export async function giveBack(client: Redis, key: string, executionId: string, report: ExecutionReport | undefined): Promise<void> {
  const args: (string | number)[] = [executionId];
  if (report !== undefined) {
    args.push('steps', report.totalSteps, 'tokens', report.tokenUsage.total, 'toolCalls', report.toolUsage.total, 'costMicros', report.cost?.micros ?? 0);
  }
  await client.eval(GIVE_BACK, 1, key, ...args);
}

/** The in-process budget a run of a queued batch runs under: its chunk. */
export function chunkBudget(chunk: BudgetChunk): SharedBudget {
  return new SharedBudget({
    ...(chunk.steps === undefined ? {} : { maxSteps: chunk.steps }),
    ...(chunk.tokens === undefined ? {} : { maxTokens: chunk.tokens }),
    ...(chunk.toolCalls === undefined ? {} : { maxToolCalls: chunk.toolCalls }),
    ...(chunk.costMicros === undefined ? {} : { maxCostUsd: chunk.costMicros / 1_000_000 }),
  });
}

/**
 * The budget of a run the batch refused: its first step is refused with the violation, so the run
 * ends FAILED `policy_violation` (scope `shared`) before its agent is called.
 */
export function refusingBudget(refused: PolicyViolation): SharedBudget {
  const budget = new SharedBudget({});
  budget.checkStep = () => refused;
  return budget;
}

const RULES = { steps: 'max_steps', tokens: 'max_tokens', toolCalls: 'max_tool_calls', costMicros: 'max_cost' } as const satisfies Record<BatchBudgetField, PolicyViolation['rule']>;
const LIMIT_NAMES: Record<BatchBudgetField, string> = { steps: 'maxSteps', tokens: 'maxTokens', toolCalls: 'maxToolCalls', costMicros: 'maxCostUsd' };

function violation(rule: PolicyViolation['rule'], message: string, limit: number, attempted: number): PolicyViolation {
  return { rule, message, limit, attempted, scope: 'shared' };
}
