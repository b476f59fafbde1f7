import { invalidOption, typeOf } from '../options.js';

/**
 * The period a tenant's budget covers: the calendar day or month in UTC, or the last `rollingMs`
 * milliseconds. Each charge counts in the window in which it happens.
 */
export type BudgetWindow = 'day' | 'month' | { readonly rollingMs: number };

/** One window a charge counts in: its key in the store's counters and when it started and ends. */
export interface WindowSpan {
  /** The store's `window` argument for this span (`day:2026-12-01`, `month:2026-12`, `rolling:60000:123`). */
  readonly key: string;
  readonly startMs: number;
  /** When the span ends (exclusive): for a calendar window, when its spend stops counting. */
  readonly endMs: number;
}

/** The shortest rolling window: shorter ones would be all bucket edges. */
export const MIN_ROLLING_MS = 1_000;
/** The longest rolling window (a year). */
export const MAX_ROLLING_MS = 366 * 24 * 60 * 60 * 1_000;
/** A rolling window is kept as this many buckets of equal length (at least one second each). */
export const ROLLING_BUCKETS = 60;

/** `value` as a window, or the typed error naming `field` (an unknown kind, a bad length). */
export function checkWindow(value: unknown, field: string): BudgetWindow {
  if (value === 'day' || value === 'month') return value;
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const keys = Object.keys(value);
    const rollingMs = (value as { rollingMs?: unknown }).rollingMs;
    if (keys.length === 1 && keys[0] === 'rollingMs') {
      if (typeof rollingMs === 'number' && Number.isSafeInteger(rollingMs) && rollingMs >= MIN_ROLLING_MS && rollingMs <= MAX_ROLLING_MS) {
        return Object.freeze({ rollingMs });
      }
      throw invalidOption(
        `${field}.rollingMs`,
        `Expected ${field}.rollingMs to be an integer from ${MIN_ROLLING_MS} to ${MAX_ROLLING_MS} (milliseconds), got ${typeof rollingMs === 'number' ? rollingMs : typeOf(rollingMs)}`,
      );
    }
  }
  const shown = typeof value === 'string' ? JSON.stringify(value) : typeof value === 'object' && value !== null ? JSON.stringify(value) : typeOf(value);
  throw invalidOption(field, `Expected ${field} to be "day", "month" or { rollingMs }, got ${shown}`);
}

/** How a window is named in usage answers and errors: `day`, `month` or `rolling:<ms>`. */
export function windowName(window: BudgetWindow): string {
  return typeof window === 'string' ? window : `rolling:${window.rollingMs}`;
}

/** The length of one bucket of a rolling window. */
export function bucketMs(window: { readonly rollingMs: number }): number {
  return Math.max(MIN_ROLLING_MS, Math.ceil(window.rollingMs / ROLLING_BUCKETS));
}

/**
 * The span a charge at `nowMs` counts in: the UTC day or month, or, for a rolling window, the
 * bucket that holds `nowMs`.
 */
export function spanAt(window: BudgetWindow, nowMs: number): WindowSpan {
  const date = new Date(nowMs);
  if (window === 'day') {
    const startMs = Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate());
    return { key: `day:${date.toISOString().slice(0, 10)}`, startMs, endMs: startMs + 24 * 60 * 60 * 1_000 };
  }
  if (window === 'month') {
    const startMs = Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1);
    const endMs = Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1);
    return { key: `month:${date.toISOString().slice(0, 7)}`, startMs, endMs };
  }
  const size = bucketMs(window);
  const index = Math.floor(nowMs / size);
  return { key: `rolling:${size}:${index}`, startMs: index * size, endMs: (index + 1) * size };
}

/**
 * Every span whose spend counts at `nowMs`, oldest first: the one calendar span, or the buckets
 * of a rolling window that overlap the last `rollingMs` (the oldest bucket counts whole, so a
 * rolling window may count up to one bucket more than `rollingMs`: never less).
 */
export function spansAt(window: BudgetWindow, nowMs: number): readonly WindowSpan[] {
  if (typeof window === 'string') return [spanAt(window, nowMs)];
  const size = bucketMs(window);
  const newest = Math.floor(nowMs / size);
  // A bucket counts while any of it is inside (now - rollingMs, now].
  const oldest = Math.floor((nowMs - window.rollingMs) / size);
  const spans: WindowSpan[] = [];
  for (let index = oldest; index <= newest; index++) {
    spans.push({ key: `rolling:${size}:${index}`, startMs: index * size, endMs: (index + 1) * size });
  }
  return spans;
}

/**
 * When spend counted at `nowMs` in `span` stops counting: the end of a calendar window, or, for a
 * bucket of a rolling window, when the bucket leaves the window.
 */
export function spanExpiresAt(window: BudgetWindow, span: WindowSpan): number {
  return typeof window === 'string' ? span.endMs : span.endMs + window.rollingMs;
}
