import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Orchestrator, jsonValueSchema } from '../src/index.js';
import { storedCompleteEventSchema } from '../src/events/schema.js';
import { isJsonValue } from '../src/report/schema.js';
import { createMemoryStore } from '../src/store/createMemoryStore.js';
import { decodeRow, encodeEvent } from '../src/store/logRows.js';

/**
 * Stores check a report's output with isJsonValue as they read a log back, instead of
 * jsonValueSchema: both must accept exactly the same values.
 */

const oddValues: fc.Arbitrary<unknown> = fc.anything({
  withBigInt: true,
  withBoxedValues: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withNullPrototype: true,
  withObjectString: true,
  withSparseArray: true,
  withTypedArray: true,
  withUnicodeString: true,
  maxDepth: 4,
});

/** An array with a hole at index 1. */
const holed: unknown[] = [1];
holed[2] = 2;

describe('isJsonValue', () => {
  it('accepts exactly what jsonValueSchema accepts, for any value', () => {
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), oddValues, fc.constantFrom<unknown>(Number.NaN, Infinity, -Infinity, -0, undefined, holed, Symbol('s'), () => 1)), (value) => {
        expect(isJsonValue(value)).toBe(jsonValueSchema.safeParse(value).success);
      }),
      { numRuns: 2_000 },
    );
  });

  it('agrees on the values JSON.parse makes, including numbers it cannot hold', () => {
    for (const text of ['1e400', '[1, -1e999]', '{"a": {"b": [1e308, 2e308]}}', '{"constructor": 1, "__proto__": {"x": 1}}', '[[[[]]]]', '""']) {
      const value: unknown = JSON.parse(text);
      expect(isJsonValue(value), text).toBe(jsonValueSchema.safeParse(value).success);
    }
  });

  it('refuses objects that are not plain and symbol keys, and copes with any depth', () => {
    class Point {
      x = 1;
    }
    expect(isJsonValue(new Point())).toBe(false);
    expect(isJsonValue({ [Symbol('s')]: 1 })).toBe(false);
    expect(isJsonValue(Object.create(null) as object)).toBe(true);
    let deep: unknown = 'leaf';
    for (let i = 0; i < 200_000; i += 1) deep = [deep];
    expect(isJsonValue(deep)).toBe(true);
  });
});

describe("a stored report's output, read back", () => {
  async function completeEvent(finalOutput: unknown) {
    const store = createMemoryStore();
    const report = await new Orchestrator({ store }).run({ agent: { name: 'out', invoke: () => ({ output: finalOutput }) }, task: 't' });
    const events = store.events(report.executionId);
    return { event: events.at(-1)!, executionId: report.executionId };
  }

  it('decodes a large structured output as the full schema would', async () => {
    const output = Array.from({ length: 200 }, (_, i) => ({ id: i, name: `item ${i}`, tags: ['a', 'b'], score: i / 3, ok: true, none: null }));
    const { event, executionId } = await completeEvent(output);
    const decoded = decodeRow(executionId, event.seq, event.seq, 1, encodeEvent(event));
    expect(decoded).toEqual(event);
    expect(storedCompleteEventSchema.safeParse(JSON.parse(encodeEvent(event))).success).toBe(true);
  });

  it('is OAO_ERR_LOG_CORRUPT when a stored output holds a number JSON cannot carry', async () => {
    const { event, executionId } = await completeEvent({ score: 1 });
    const damaged = encodeEvent(event).replace('"finalOutput":{"score":1}', '"finalOutput":{"score":1e400}');
    expect(damaged).toContain('1e400');
    expect(() => decodeRow(executionId, event.seq, event.seq, 1, damaged)).toThrow(
      expect.objectContaining({ code: 'OAO_ERR_LOG_CORRUPT', details: { executionId, seq: event.seq }, message: expect.stringMatching(/payload\.report\.finalOutput/) }),
    );
  });
});
