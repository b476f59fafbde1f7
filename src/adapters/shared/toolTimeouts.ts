import type { ToolCallContext } from '../../agent.js';
import { OaoError } from '../../errors.js';
import { systemClock, type Clock } from '../../runtime/clock.js';

/** setTimeout cannot wait longer than this. */
const MAX_TIMEOUT_MS = 2_147_483_647;

/** A time limit for every tool call (ms), or one per tool name (tools left out have none). */
export type ToolTimeouts = number | Readonly<Record<string, number>>;

/** The per-tool time limits an adapter applies to its tools' bodies. */
export interface ToolTimeoutOptions {
  /**
   * How long one call of a tool may run, in milliseconds: one number for every tool, or
   * `{ search: 5_000 }` per tool name. A call past its limit has its signal aborted and rejects
   * with `OAO_ERR_TOOL_TIMEOUT` (a tool failure the model sees, not the end of the run).
   * @default no limit (the run's own `timeoutMs` still holds)
   */
  readonly toolTimeoutMs?: ToolTimeouts;
  /** The time source of the tool timers (XState's `SimulatedClock` in tests). @default the system clock */
  readonly clock?: Clock;
}

/** Resolved time limits: the limit of a tool, or undefined when it has none. */
export interface ToolTimer {
  /** The time source of the timers. */
  readonly clock: Clock;
  /** Whether any tool has a limit. */
  readonly limited: boolean;
  limitOf(tool: string): number | undefined;
  /**
   * Runs a tool body under its tool's limit. `body` receives the signal to pass on: the call's
   * own signal, also aborted (with `OAO_ERR_TOOL_TIMEOUT`) when the limit passes.
   */
  run(tool: string, call: ToolCallContext, body: (signal: AbortSignal) => unknown): Promise<unknown>;
}

function checkLimit(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_TIMEOUT_MS) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected ${field} to be a whole number of milliseconds from 1 to ${MAX_TIMEOUT_MS}, got ${String(value)}`, {
      details: { field },
    });
  }
  return value;
}

/** Validates `toolTimeoutMs` and `clock` eagerly, and returns the timer that applies them. */
export function toolTimer(options: ToolTimeoutOptions): ToolTimer {
  const { toolTimeoutMs, clock = systemClock } = options;
  if (typeof clock !== 'object' || clock === null || typeof clock.setTimeout !== 'function' || typeof clock.clearTimeout !== 'function') {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Expected clock to have setTimeout() and clearTimeout()', { details: { field: 'clock' } });
  }
  let limitOf: (tool: string) => number | undefined;
  if (toolTimeoutMs === undefined) limitOf = () => undefined;
  else if (typeof toolTimeoutMs === 'number') {
    const limit = checkLimit(toolTimeoutMs, 'toolTimeoutMs');
    limitOf = () => limit;
  } else if (typeof toolTimeoutMs === 'object' && toolTimeoutMs !== null && !Array.isArray(toolTimeoutMs)) {
    const limits = new Map<string, number>();
    for (const [tool, value] of Object.entries(toolTimeoutMs)) limits.set(tool, checkLimit(value, `toolTimeoutMs.${tool}`));
    limitOf = (tool) => limits.get(tool);
  } else {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected toolTimeoutMs to be a number or an object of numbers by tool name, got ${typeof toolTimeoutMs}`, {
      details: { field: 'toolTimeoutMs' },
    });
  }
  return {
    clock,
    limited: toolTimeoutMs !== undefined,
    limitOf,
    run(tool, call, body) {
      const limit = limitOf(tool);
      if (limit === undefined) {
        try {
          return Promise.resolve(body(call.signal));
        } catch (error) {
          return Promise.reject(error);
        }
      }
      return withLimit(tool, limit, clock, call.signal, body);
    },
  };
}

function withLimit(tool: string, limit: number, clock: Clock, signal: AbortSignal, body: (signal: AbortSignal) => unknown): Promise<unknown> {
  const controller = new AbortController();
  const combined = AbortSignal.any([signal, controller.signal]);
  return new Promise<unknown>((resolve, reject) => {
    const timer: unknown = clock.setTimeout(() => {
      const error = new OaoError('OAO_ERR_TOOL_TIMEOUT', `Tool "${tool}" did not finish within ${limit} ms`, {
        details: { tool, timeoutMs: limit },
      });
      controller.abort(error);
      reject(error);
    }, limit);
    let result: Promise<unknown>;
    try {
      result = Promise.resolve(body(combined));
    } catch (error) {
      result = Promise.reject(error);
    }
    result.then(
      (value) => {
        clock.clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clock.clearTimeout(timer);
        reject(error);
      },
    );
  });
}
