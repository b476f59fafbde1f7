const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;

/** ISO 8601 as people write it: a date, or a date and time with an optional zone. */
const ISO_8601 = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i;

/** The two forms a time bound takes, for error messages. */
export const TIME_BOUND_FORMS = 'an ISO 8601 time (2026-11-30 or 2026-11-30T08:00:00Z) or a duration back from now (30m, 12h, 7d)';

/**
 * Reads a bound of a time filter (`--since`, a what-if request's `since` and `until`) into
 * milliseconds since the epoch: an ISO 8601 time (`2026-11-30`, `2026-11-30T08:00:00Z`; a date
 * alone is midnight UTC, a time without a zone is local time, as `Date` reads them) or a duration
 * back from `now` (`30s`, `30m`, `12h`, `7d`, `2w`). Pure: `undefined` for anything else, so that
 * each caller raises the error of its own surface.
 */
export function parseTimeBound(value: string, now: number): number | undefined {
  const text = value.trim();
  const duration = /^(\d{1,9})([smhdw])$/.exec(text);
  if (duration !== null) {
    return now - Number(duration[1]) * UNIT_MS[duration[2] as keyof typeof UNIT_MS];
  }
  if (ISO_8601.test(text)) {
    const time = Date.parse(text);
    if (Number.isFinite(time)) return time;
  }
  return undefined;
}
