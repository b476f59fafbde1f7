import { OaoError } from '../errors.js';
import { parseTimeBound, TIME_BOUND_FORMS } from '../log/parseTimeBound.js';

/**
 * Reads a `--since` value into milliseconds since the epoch, as {@link parseTimeBound} reads it:
 * an ISO 8601 time or a duration back from `now` (`30m`, `12h`, `7d`). Anything else is
 * `OAO_ERR_CLI_USAGE` naming both forms.
 */
export function parseSince(value: string, now: number): number {
  const time = parseTimeBound(value, now);
  if (time !== undefined) return time;
  throw new OaoError('OAO_ERR_CLI_USAGE', `--since must be ${TIME_BOUND_FORMS}, got ${JSON.stringify(value)}`, {
    details: { field: '--since', value },
  });
}
