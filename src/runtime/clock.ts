/**
 * The time source of a run: its timestamps, its deadline and its retry backoff. XState's
 * `SimulatedClock` satisfies it, so tests can move time without sleeping.
 */
export interface Clock {
  now(): number;
  setTimeout(fn: (...args: any[]) => void, timeout: number): any;
  clearTimeout(id: any): void;
}

const origin = performance.timeOrigin;

/** Wall-clock milliseconds since the epoch, with sub-millisecond precision; real timers. */
export const systemClock: Clock = {
  now: () => origin + performance.now(),
  setTimeout: (fn, timeout) => setTimeout(fn, timeout),
  clearTimeout: (id) => clearTimeout(id as NodeJS.Timeout),
};
