import { OaoError } from '../errors.js';
import { canonicalJson } from '../report/canonicalJson.js';
import { DEFAULT_LIMITS, deepFreeze, ownRecord, policyOptionsSchema, type ApprovalPredicate, type PolicyLimits, type PolicyOptions } from './schema.js';
import { DEFAULT_RESERVE_OUTPUT_TOKENS } from './checks.js';

/**
 * The hard limits of a run: steps, tokens, tool calls, wall time, which tools may run and how often,
 * and how transient agent errors are retried. Immutable once constructed; invalid options are an
 * `OAO_ERR_INVALID_POLICY` error at construction.
 *
 * @example
 * ```ts
 * const policy = new StrictPolicy({ maxSteps: 5, tools: { deny: ['shell'] } });
 * policy.maxSteps; // 5
 * policy.maxTokens; // 4000 (default)
 * ```
 */
export class StrictPolicy {
  /** @default 10 */
  readonly maxSteps: number;
  /** @default 4000 */
  readonly maxTokens: number;
  /** @default 5 */
  readonly maxToolCalls: number;
  /** @default 30000 */
  readonly timeoutMs: number;
  /** The resolved limits, frozen and JSON-safe. */
  readonly limits: PolicyLimits;
  /**
   * `tools.approve` given as a function: which calls wait for approval besides the listed tools.
   * It is code, so it is neither in `limits` nor in the hash.
   */
  readonly approvalPredicate: ApprovalPredicate | undefined;
  #canonical: string | undefined;

  constructor(options: PolicyOptions = {}) {
    const resolved = resolvedLimits.get(options);
    if (resolved !== undefined) {
      this.limits = resolved.limits;
      this.approvalPredicate = resolved.predicate;
    } else {
      const parsed = parsePolicyOptions(options);
      this.limits = resolveLimits(DEFAULT_LIMITS, parsed);
      this.approvalPredicate = typeof parsed.tools?.approve === 'function' ? parsed.tools.approve : undefined;
    }
    this.maxSteps = this.limits.maxSteps;
    this.maxTokens = this.limits.maxTokens;
    this.maxToolCalls = this.limits.maxToolCalls;
    this.timeoutMs = this.limits.timeoutMs;
    Object.freeze(this);
  }

  /** Builds a policy from already resolved limits (used when narrowing). */
  static fromLimits(limits: PolicyLimits, predicate?: ApprovalPredicate): StrictPolicy {
    const token = {};
    resolvedLimits.set(token, { limits: deepFreeze(structuredClone(limits)), predicate });
    return new StrictPolicy(token);
  }

  /**
   * The policy that applies when `override` is laid over this one. It can only narrow: every limit
   * is the smaller of the two, allow lists intersect, deny lists and per-tool limits combine.
   * Fields the override leaves out keep this policy's value.
   */
  narrow(override: StrictPolicy | PolicyOptions | undefined): StrictPolicy {
    if (override === undefined || override === this) return this;
    let other: PolicyLimits;
    let predicate: ApprovalPredicate | undefined;
    if (override instanceof StrictPolicy) {
      other = override.limits;
      predicate = override.approvalPredicate;
    } else {
      const parsed = parsePolicyOptions(override);
      narrowedPricing(this.limits.pricing, parsed.pricing);
      other = resolveLimits(this.limits, parsed);
      predicate = typeof parsed.tools?.approve === 'function' ? parsed.tools.approve : undefined;
    }
    // Narrowing can only add approvals: a call waits when either policy says so.
    const mine = this.approvalPredicate;
    const both: ApprovalPredicate | undefined =
      mine === undefined ? predicate : predicate === undefined ? mine : (call) => mine(call) || predicate(call);
    return StrictPolicy.fromLimits(intersectLimits(this.limits, other), both);
  }

  /** Canonical JSON of the limits, computed once; part of every run's executionHash. */
  get canonical(): string {
    // The instance is frozen, so the cache lives in a private field set on first use.
    return (this.#canonical ??= canonicalJson(this.limits));
  }

  toJSON(): PolicyLimits {
    return this.limits;
  }
}

/** Lets fromLimits hand resolved limits to the constructor without a public back door. */
const resolvedLimits = new WeakMap<object, { limits: PolicyLimits; predicate: ApprovalPredicate | undefined }>();

function parsePolicyOptions(options: unknown): PolicyOptions {
  const parsed = policyOptionsSchema.safeParse(options);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  // An unknown key is reported on its parent: name the key itself, which is what was mistyped.
  const path = issue === undefined ? [] : issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0] ?? ''] : issue.path;
  const field = path.length > 0 ? path.join('.') : 'policy';
  throw new OaoError('OAO_ERR_INVALID_POLICY', `Invalid policy option "${field}": ${issue?.message ?? 'invalid value'}`, {
    details: { field, issues: parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) },
  });
}

function resolveLimits(base: PolicyLimits, options: PolicyOptions): PolicyLimits {
  return deepFreeze({
    maxSteps: options.maxSteps ?? base.maxSteps,
    maxTokens: options.maxTokens ?? base.maxTokens,
    maxToolCalls: options.maxToolCalls ?? base.maxToolCalls,
    timeoutMs: options.timeoutMs ?? base.timeoutMs,
    tools: {
      allow: options.tools?.allow ? [...new Set(options.tools.allow)].sort() : base.tools.allow,
      deny: options.tools?.deny ? [...new Set(options.tools.deny)].sort() : base.tools.deny,
      maxCalls: options.tools?.maxCalls ? ownRecord(Object.entries(options.tools.maxCalls)) : base.tools.maxCalls,
      // Left out unless some tool needs approval, so policies without approvals keep their hash.
      ...approveList(Array.isArray(options.tools?.approve) ? [...new Set(options.tools.approve as readonly string[])].sort() : base.tools.approve),
    },
    retry: {
      maxRetries: options.retry?.maxRetries ?? base.retry.maxRetries,
      initialDelayMs: options.retry?.initialDelayMs ?? base.retry.initialDelayMs,
      backoffFactor: options.retry?.backoffFactor ?? base.retry.backoffFactor,
      maxDelayMs: options.retry?.maxDelayMs ?? base.retry.maxDelayMs,
    },
    ...approvalTimeout(options.approvalTimeoutMs ?? base.approvalTimeoutMs),
    ...pauses({
      maxSteps: options.onLimit?.maxSteps ?? base.onLimit?.maxSteps,
      maxToolCalls: options.onLimit?.maxToolCalls ?? base.onLimit?.maxToolCalls,
      maxTokens: options.onLimit?.maxTokens ?? base.onLimit?.maxTokens,
    }),
    ...decisionTimeout(options.budgetDecisionTimeoutMs ?? base.budgetDecisionTimeoutMs),
    ...reserveOutput(options.reserveOutputTokens ?? base.reserveOutputTokens),
    ...maxCost(options.maxCostUsd ?? base.maxCostUsd),
    ...prices(options.pricing ?? base.pricing),
  });
}

/** Left out unless set, so policies without a cost limit keep their hash. */
function maxCost(usd: number | undefined): { maxCostUsd?: number } {
  return usd === undefined ? {} : { maxCostUsd: usd };
}

function prices(pricing: PolicyLimits['pricing'] | undefined): { pricing?: PolicyLimits['pricing'] } {
  return pricing === undefined ? {} : { pricing: ownRecord(Object.entries(pricing).map(([model, price]) => [model, { ...price }] as const)) };
}

/**
 * The price table of a policy narrowed by `override`: always the parent's. Prices are the
 * orchestrator's (or server's) to set; an override may repeat them, never change them.
 */
function narrowedPricing(parent: PolicyLimits['pricing'], override: PolicyLimits['pricing']): PolicyLimits['pricing'] {
  if (override === undefined || (parent !== undefined && canonicalJson(parent) === canonicalJson(override))) return parent;
  throw new OaoError('OAO_ERR_INVALID_POLICY', 'Invalid policy option "pricing": prices are set by the orchestrator\'s or server\'s policy, not per run or per request', {
    details: { field: 'pricing' },
  });
}

/** Left out unless set, so policies that do not set it keep their hash. */
function reserveOutput(tokens: number | undefined): { reserveOutputTokens?: number } {
  return tokens === undefined ? {} : { reserveOutputTokens: tokens };
}

function decisionTimeout(ms: number | undefined): { budgetDecisionTimeoutMs?: number } {
  return ms === undefined ? {} : { budgetDecisionTimeoutMs: ms };
}

/** The `onLimit` of resolved limits: only the limits that pause, and nothing when none does. */
function pauses(onLimit: { maxSteps?: string | undefined; maxToolCalls?: string | undefined; maxTokens?: string | undefined }): { onLimit?: PolicyLimits['onLimit'] } {
  const paused = {
    ...(onLimit.maxSteps === 'pause' ? { maxSteps: 'pause' as const } : {}),
    ...(onLimit.maxToolCalls === 'pause' ? { maxToolCalls: 'pause' as const } : {}),
    ...(onLimit.maxTokens === 'pause' ? { maxTokens: 'pause' as const } : {}),
  };
  return Object.keys(paused).length === 0 ? {} : { onLimit: paused };
}

function approveList(list: readonly string[] | undefined): { approve?: string[] } {
  return list === undefined || list.length === 0 ? {} : { approve: [...list] };
}

function approvalTimeout(ms: number | undefined): { approvalTimeoutMs?: number } {
  return ms === undefined ? {} : { approvalTimeoutMs: ms };
}

function intersectLimits(a: PolicyLimits, b: PolicyLimits): PolicyLimits {
  const maxCalls = new Map(Object.entries(a.tools.maxCalls));
  for (const [tool, limit] of Object.entries(b.tools.maxCalls)) {
    maxCalls.set(tool, Math.min(limit, maxCalls.get(tool) ?? limit));
  }
  let allow: string[] | null;
  if (a.tools.allow === null) allow = b.tools.allow;
  else if (b.tools.allow === null) allow = a.tools.allow;
  else {
    const parent = new Set(a.tools.allow);
    allow = b.tools.allow.filter((tool) => parent.has(tool));
  }
  return {
    maxSteps: Math.min(a.maxSteps, b.maxSteps),
    maxTokens: Math.min(a.maxTokens, b.maxTokens),
    maxToolCalls: Math.min(a.maxToolCalls, b.maxToolCalls),
    timeoutMs: Math.min(a.timeoutMs, b.timeoutMs),
    tools: {
      allow,
      deny: [...new Set([...a.tools.deny, ...b.tools.deny])].sort(),
      maxCalls: ownRecord(maxCalls),
      ...approveList(a.tools.approve === undefined && b.tools.approve === undefined ? undefined : [...new Set([...(a.tools.approve ?? []), ...(b.tools.approve ?? [])])].sort()),
    },
    retry: {
      maxRetries: Math.min(a.retry.maxRetries, b.retry.maxRetries),
      initialDelayMs: b.retry.initialDelayMs,
      backoffFactor: b.retry.backoffFactor,
      maxDelayMs: b.retry.maxDelayMs,
    },
    ...approvalTimeout(
      a.approvalTimeoutMs === undefined ? b.approvalTimeoutMs : b.approvalTimeoutMs === undefined ? a.approvalTimeoutMs : Math.min(a.approvalTimeoutMs, b.approvalTimeoutMs),
    ),
    // A limit pauses only when both policies say so: narrowing can turn a pause into a failure.
    ...pauses({
      maxSteps: a.onLimit?.maxSteps === 'pause' && b.onLimit?.maxSteps === 'pause' ? 'pause' : undefined,
      maxToolCalls: a.onLimit?.maxToolCalls === 'pause' && b.onLimit?.maxToolCalls === 'pause' ? 'pause' : undefined,
      maxTokens: a.onLimit?.maxTokens === 'pause' && b.onLimit?.maxTokens === 'pause' ? 'pause' : undefined,
    }),
    ...(a.budgetDecisionTimeoutMs === undefined && b.budgetDecisionTimeoutMs === undefined
      ? {}
      : { budgetDecisionTimeoutMs: Math.min(a.budgetDecisionTimeoutMs ?? Number.MAX_SAFE_INTEGER, b.budgetDecisionTimeoutMs ?? Number.MAX_SAFE_INTEGER) }),
    ...maxCost(a.maxCostUsd === undefined ? b.maxCostUsd : b.maxCostUsd === undefined ? a.maxCostUsd : Math.min(a.maxCostUsd, b.maxCostUsd)),
    ...prices(narrowedPricing(a.pricing, b.pricing)),
    // Reserving more is stricter: a narrower policy can only raise it.
    ...(a.reserveOutputTokens === undefined && b.reserveOutputTokens === undefined
      ? {}
      : { reserveOutputTokens: Math.max(a.reserveOutputTokens ?? DEFAULT_RESERVE_OUTPUT_TOKENS, b.reserveOutputTokens ?? DEFAULT_RESERVE_OUTPUT_TOKENS) }),
  };
}
