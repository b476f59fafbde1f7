import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
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
  it('makes random version 4 UUIDs', () => {
    const ids = Array.from({ length: 1_000 }, randomRunId);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('keeps an id as one flat string: a held id costs the heap a few dozen bytes, not a rope of pieces', () => {
    // A 36-character one-byte string is about 56 bytes; the rope randomUUID() returns is about 490.
    expect(heldBytesPerId(randomRunId, 20_000)).toBeLessThan(150);
  });
});
