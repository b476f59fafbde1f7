import { z } from 'zod';
import type { PolicyViolation } from '../errors.js';

/**
 * Money, in integer micro-dollars. Prices are given in USD per million tokens (decimals allowed)
 * and turned into integer micro-dollars per million tokens once; a cost is then an integer
 * division rounded up, so sums of many calls never drift the way sums of floats do.
 */

/** A model's prices, in USD per million tokens. */
export interface ModelPrice {
  readonly inputPerMTok: number;
  readonly outputPerMTok: number;
  /**
   * Accepted and recorded; OAO's usage records carry no cached-token count, so every input token
   * is charged at `inputPerMTok` (the higher price, never an undercharge).
   */
  readonly cachedInputPerMTok?: number;
}

/**
 * A price table: model name (as the adapter or `beginModelCall` reports it) to its prices. The
 * entry `default` prices every model the table does not name.
 */
export type Pricing = Readonly<Record<string, ModelPrice>>;

/** The price table entry that prices models the table does not name. */
export const DEFAULT_PRICE_KEY = 'default';

/** One price, as integer micro-dollars per million tokens. */
export interface PriceMicros {
  readonly inputPerMTok: number;
  readonly outputPerMTok: number;
}

const MICROS_PER_USD = 1_000_000;
const TOKENS_PER_MTOK = 1_000_000;

/** A USD amount as integer micro-dollars (rounded to the nearest), or undefined when it is not a safe integer. */
export function usdToMicros(usd: number): number | undefined {
  if (typeof usd !== 'number' || !Number.isFinite(usd) || usd < 0) return undefined;
  const micros = Math.round(usd * MICROS_PER_USD);
  return Number.isSafeInteger(micros) ? micros : undefined;
}

/** Integer micro-dollars as USD, for display (the integer is the exact value). */
export function microsToUsd(micros: number): number {
  return micros / MICROS_PER_USD;
}

const usdAmount = (what: string) =>
  z.number({ error: `Expected ${what} to be a number of US dollars` }).superRefine((value, ctx) => {
    if (!Number.isFinite(value) || value < 0) {
      ctx.addIssue({ code: 'custom', message: `Expected ${what} to be a finite, non-negative number of US dollars, got ${String(value)}` });
    } else if (usdToMicros(value) === undefined) {
      ctx.addIssue({ code: 'custom', message: `${what} ${String(value)} is too large to count in micro-dollars` });
    }
  });

/** `maxCostUsd`: a finite, non-negative USD amount. */
export const maxCostUsdSchema = usdAmount('maxCostUsd');

const modelPriceSchema = z.strictObject({
  inputPerMTok: usdAmount('a price per million tokens'),
  outputPerMTok: usdAmount('a price per million tokens'),
  cachedInputPerMTok: usdAmount('a price per million tokens').optional(),
});

/**
 * A price table. Not `z.record`: it drops an own `__proto__` key, and a model may be named after
 * any `Object.prototype` member. Every own key is kept as data.
 */
export const pricingSchema = z.custom<Pricing>().transform((value, ctx) => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    ctx.addIssue({ code: 'custom', message: `Expected an object of model names to prices, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}` });
    return z.NEVER;
  }
  const entries: [string, ModelPrice][] = [];
  for (const key of Object.keys(value)) {
    if (key.length === 0) {
      ctx.addIssue({ code: 'custom', path: [key], message: 'A model name must not be empty' });
      continue;
    }
    const parsed = modelPriceSchema.safeParse((value as Record<string, unknown>)[key]);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const path = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0] ?? ''] : issue.path;
        ctx.addIssue({ code: 'custom', path: [key, ...path.map(String)], message: issue.code === 'unrecognized_keys' ? `Unknown price field "${issue.keys[0] ?? ''}": a price has inputPerMTok, outputPerMTok and cachedInputPerMTok` : issue.message });
      }
      continue;
    }
    const price = parsed.data;
    entries.push([key, price.cachedInputPerMTok === undefined ? { inputPerMTok: price.inputPerMTok, outputPerMTok: price.outputPerMTok } : price]);
  }
  return Object.fromEntries(entries);
});

/** The JSON form of a price table in resolved limits (already checked). */
export const pricingLimitsSchema = z.record(
  z.string(),
  z.object({ inputPerMTok: z.number().nonnegative(), outputPerMTok: z.number().nonnegative(), cachedInputPerMTok: z.number().nonnegative().optional() }),
);

/**
 * The price of `model` in `pricing`, in micro-dollars per million tokens: its own entry, else the
 * `default` entry, else undefined (unpriced). A call without a model name takes the default.
 */
export function priceOf(pricing: Pricing | undefined, model: string | null): PriceMicros | undefined {
  if (pricing === undefined) return undefined;
  const key = model !== null && Object.hasOwn(pricing, model) ? model : Object.hasOwn(pricing, DEFAULT_PRICE_KEY) ? DEFAULT_PRICE_KEY : undefined;
  if (key === undefined) return undefined;
  // Resolved limits are frozen: each table's prices are converted once.
  let table = converted.get(pricing);
  if (table === undefined) converted.set(pricing, (table = new Map()));
  let price = table.get(key);
  if (price === undefined) {
    const entry = pricing[key] as ModelPrice;
    // Checked when the policy was built: both are safe integers.
    price = Object.freeze({ inputPerMTok: usdToMicros(entry.inputPerMTok) as number, outputPerMTok: usdToMicros(entry.outputPerMTok) as number });
    table.set(key, price);
  }
  return price;
}

const converted = new WeakMap<Pricing, Map<string, PriceMicros>>();

/**
 * The cost of `input` and `output` tokens at `price`, in integer micro-dollars, rounded up once
 * for the whole call: ceil((input × inputPerMTok + output × outputPerMTok) / 1e6). Exact for any
 * token counts (BigInt once the products leave the safe integers); a cost past the safe integers
 * is `Number.MAX_SAFE_INTEGER + 1`, which every budget refuses.
 */
export function costMicros(price: PriceMicros, input: number, output: number): number {
  const numerator = input * price.inputPerMTok + output * price.outputPerMTok;
  if (Number.isSafeInteger(numerator + TOKENS_PER_MTOK)) return Math.floor((numerator + TOKENS_PER_MTOK - 1) / TOKENS_PER_MTOK);
  const big = BigInt(input) * BigInt(price.inputPerMTok) + BigInt(output) * BigInt(price.outputPerMTok);
  const mtok = BigInt(TOKENS_PER_MTOK);
  const cost = (big + mtok - 1n) / mtok;
  return cost > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER + 1 : Number(cost);
}

/** Which budget a cost decision is about: a run's own, a batch's shared one (and later a tenant's). */
export type CostScope = NonNullable<PolicyViolation['scope']>;

function formatUsd(micros: number): string {
  const usd = microsToUsd(micros);
  return `$${usd.toFixed(6).replace(/0{1,4}$/, '')}`;
}

const scopeName: Readonly<Record<CostScope, string>> = { run: 'maxCostUsd', shared: "the batch's shared maxCostUsd", tenant: "the tenant's maxCostUsd for its window" };

/**
 * Would a model call whose worst case costs `reservation` micro-dollars fit under `maxMicros`, with
 * `committed` micro-dollars spent or held by running calls already? Reaching the limit is allowed.
 * `limit` and `attempted` of the violation are micro-dollars.
 */
export function checkCostReservation(scope: CostScope, maxMicros: number, committed: number, reservation: number): PolicyViolation | null {
  const attempted = committed + reservation;
  if (attempted <= maxMicros) return null;
  return withScope(scope, {
    rule: 'max_cost',
    message: `Model call refused: it may cost up to ${formatUsd(reservation)}, but ${formatUsd(Math.max(0, maxMicros - committed))} of ${scopeName[scope]} (${formatUsd(maxMicros)}) is left`,
    limit: maxMicros,
    attempted: Math.min(attempted, Number.MAX_SAFE_INTEGER),
  });
}

/** Is spend of `spent` micro-dollars past `maxMicros`? (Spend charged after the fact.) */
export function checkCostSpent(scope: CostScope, maxMicros: number, spent: number): PolicyViolation | null {
  if (spent <= maxMicros) return null;
  return withScope(scope, {
    rule: 'max_cost',
    message: `Cost ${formatUsd(spent)} exceeds ${scopeName[scope]} (${formatUsd(maxMicros)})`,
    limit: maxMicros,
    attempted: Math.min(spent, Number.MAX_SAFE_INTEGER),
  });
}

function withScope(scope: CostScope, violation: PolicyViolation): PolicyViolation {
  return scope === 'run' ? violation : { ...violation, scope };
}
