import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { randomRunId } from '../src/runtime/runId.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Heap bytes per id while `count` ids made by `make` are held. */
function heldBytesPerId(make: () => string, count: number): number {
  const held = new Array<string>(count);
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < count; i++) held[i] = make();
  gc();
  const after = process.memoryUsage().heapUsed;
  expect(new Set(held).size).toBe(count);
  return (after - before) / count;
}

describe('randomRunId', { timeout: 30_000 }, () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('makes random version 7 UUIDs', () => {
    const ids = Array.from({ length: 1_000 }, randomRunId);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('starts an id with the time it was made, so ids made later sort later', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const made: { at: number; id: string }[] = [];
    for (const at of [Date.UTC(2026, 11, 2, 6, 0, 0, 0), Date.UTC(2026, 11, 2, 6, 0, 0, 1), Date.UTC(2027, 0, 1), Date.UTC(2031, 5, 15, 12)]) {
      vi.setSystemTime(at);
      for (let i = 0; i < 50; i++) made.push({ at, id: randomRunId() });
    }
    for (const { at, id } of made) expect(Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16)).toBe(at);
    // Ids of different milliseconds are in the order they were made; within one they are random.
    const sorted = [...made].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    expect(sorted.map((entry) => entry.at)).toEqual(made.map((entry) => entry.at));
  });

  it('keeps an id as one flat string: a held id costs the heap a few dozen bytes, not a rope of pieces', () => {
    // A 36-character one-byte string is about 56 bytes; the rope randomUUID() returns is about 490.
    expect(heldBytesPerId(randomRunId, 20_000)).toBeLessThan(150);
  });
});
