import { OaoError } from '../errors.js';
import type { PolicyLimits } from './schema.js';

/** Limits `raise()` may increase. */
export interface BudgetRaise {
  readonly maxSteps?: number;
  readonly maxToolCalls?: number;
  readonly maxTokens?: number;
}

const RAISABLE = ['maxSteps', 'maxToolCalls', 'maxTokens'] as const;

/**
 * Checks a raise of a paused run's limits: only maxSteps, maxToolCalls and maxTokens, each an
 * integer above the run's current limit and, unless `ceiling` is null, at most the ceiling (the
 * orchestrator's or server's own policy). Returns the new values; every refusal is
 * `OAO_ERR_INVALID_ARGUMENT` naming the field.
 */
export function checkRaise(limits: unknown, current: PolicyLimits, ceiling: PolicyLimits | null): { maxSteps?: number; maxToolCalls?: number; maxTokens?: number } {
  if (typeof limits !== 'object' || limits === null || Array.isArray(limits)) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Expected the limits to raise as an object such as { maxSteps: 20 }', { details: { field: 'limits' } });
  }
  const raised: { maxSteps?: number; maxToolCalls?: number; maxTokens?: number } = {};
  for (const key of Object.keys(limits)) {
    if (!(RAISABLE as readonly string[]).includes(key)) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `"${key}" cannot be raised: only maxSteps, maxToolCalls and maxTokens`, { details: { field: `limits.${key}` } });
    }
    const name = key as (typeof RAISABLE)[number];
    const value = (limits as Record<string, unknown>)[name];
    const now = current[name];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= now) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `"${name}" must be an integer above the current ${now}`, { details: { field: `limits.${name}`, current: now } });
    }
    if (ceiling !== null && value > ceiling[name]) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `"${name}" cannot go above ${ceiling[name]}, the ceiling set by the orchestrator's policy`, {
        details: { field: `limits.${name}`, ceiling: ceiling[name] },
      });
    }
    raised[name] = value;
  }
  if (Object.keys(raised).length === 0) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Name at least one limit to raise, such as { maxSteps: 20 }', { details: { field: 'limits' } });
  }
  return raised;
}
