import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Orchestrator, StrictPolicy, canonicalJson } from '../src/index.js';
import { sameCanonicalJson } from '../src/report/canonicalJson.js';
import { DummyAgent } from './helpers.js';

class OtherAgent {
  invoke(task: string) {
    return task;
  }
}

describe('executionHash', () => {
  const orch = new Orchestrator({ policy: new StrictPolicy({ maxSteps: 5 }) });
  const hashOf = (request: Parameters<Orchestrator['runSync']>[0]) => orch.runSync(request).executionHash;
  const tools = { search: () => 1, calc: () => 2 };

  it('is the same for the same task, policy, agent identity and tools', () => {
    const a = hashOf({ agent: new DummyAgent(), task: { b: 1, a: [1, 2] }, tools });
    const b = hashOf({ agent: new DummyAgent(), task: { a: [1, 2], b: 1 }, tools: { calc: () => 0, search: () => 0 } });
    const viaOtherOrchestrator = new Orchestrator({ policy: { maxSteps: 5 } }).runSync({
      agent: new DummyAgent(),
      task: { a: [1, 2], b: 1 },
      tools,
    }).executionHash;
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(b).toBe(a);
    expect(viaOtherOrchestrator).toBe(a);
  });

  it('changes when any one of them changes', () => {
    const base = hashOf({ agent: new DummyAgent(), task: 'x', tools });
    const variants = [
      hashOf({ agent: new DummyAgent(), task: 'y', tools }),
      hashOf({ agent: new OtherAgent(), task: 'x', tools }),
      hashOf({ agent: { name: 'renamed', invoke: () => 'x' }, task: 'x', tools }),
      hashOf({ agent: new DummyAgent(), task: 'x', tools: { search: () => 1 } }),
      hashOf({ agent: new DummyAgent(), task: 'x', tools, policy: { maxSteps: 4 } }),
      hashOf({ agent: new DummyAgent(), task: 'x', tools, policy: { tools: { deny: ['calc'] } } }),
      hashOf({ agent: new DummyAgent(), task: 'x' }),
    ];
    expect(new Set([base, ...variants]).size).toBe(variants.length + 1);
  });
});

describe('the canonical policy', () => {
  const tools = { search: () => 1, calc: () => 2, mail: () => 3 };
  const ordered = { allow: ['calc', 'mail', 'search'], deny: ['rm', 'shell'], maxCalls: { calc: 1, search: 2 } };
  const shuffled = { allow: ['search', 'calc', 'mail', 'calc'], deny: ['shell', 'rm', 'shell'], maxCalls: { search: 2, calc: 1 } };

  it('does not depend on the order of allow, deny and maxCalls, nor on repeated names', () => {
    const a = new StrictPolicy({ maxSteps: 4, tools: ordered });
    const b = new StrictPolicy({ tools: shuffled, maxSteps: 4 });
    expect(b.limits.tools.allow).toEqual(['calc', 'mail', 'search']);
    expect(b.limits.tools.deny).toEqual(['rm', 'shell']);
    expect(b.limits).toEqual(a.limits);
    expect(b.canonical).toBe(a.canonical);
  });

  it('gives the same executionHash for the same policy written in another order', () => {
    const hash = (toolRules: typeof ordered, request?: typeof ordered) =>
      new Orchestrator({ policy: { maxSteps: 4, tools: toolRules } }).runSync({
        agent: new DummyAgent(),
        task: 'x',
        tools,
        ...(request === undefined ? {} : { policy: { tools: request } }),
      }).executionHash;
    const base = hash(ordered);
    expect(hash(shuffled)).toBe(base);
    // A run's own policy narrows the orchestrator's; the same narrowing in another order is the same run.
    const narrowed = hash(ordered, { allow: ['search', 'calc'], deny: ['mail', 'rm'], maxCalls: { search: 1, calc: 1 } });
    expect(hash(shuffled, { allow: ['calc', 'search'], deny: ['rm', 'mail'], maxCalls: { calc: 1, search: 1 } })).toBe(narrowed);
    expect(narrowed).not.toBe(base);
  });

  it('narrowing in another order gives the same canonical policy', () => {
    const parent = new StrictPolicy({ tools: ordered });
    const a = parent.narrow({ tools: { allow: ['search', 'mail'], deny: ['zip', 'calc'], maxCalls: { mail: 1, search: 1 } } });
    const b = parent.narrow({ tools: { allow: ['mail', 'search'], deny: ['calc', 'zip'], maxCalls: { search: 1, mail: 1 } } });
    expect(a.limits.tools).toEqual({ allow: ['mail', 'search'], deny: ['calc', 'rm', 'shell', 'zip'], maxCalls: { calc: 1, mail: 1, search: 1 } });
    expect(b.canonical).toBe(a.canonical);
  });
});

describe('canonicalJson', () => {
  it('sorts keys at every level and keeps arrays in order', () => {
    expect(canonicalJson({ b: { d: 1, c: [3, { z: 1, y: 2 }] }, a: null })).toBe('{"a":null,"b":{"c":[3,{"y":2,"z":1}],"d":1}}');
  });
  it('throws on cycles', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.me = cyclic;
    expect(() => canonicalJson(cyclic)).toThrow(TypeError);
  });
});

describe('sameCanonicalJson', { timeout: 30_000 }, () => {
  /** The same value with every object's keys in reverse order. */
  function reordered(value: unknown): unknown {
    if (Array.isArray(value)) return value.map(reordered);
    if (typeof value !== 'object' || value === null) return value;
    return Object.fromEntries(Object.entries(value).reverse().map(([key, inner]) => [key, reordered(inner)]));
  }

  it('agrees with comparing canonical JSON texts, for any values and any key order', () => {
    const values = fc.oneof(fc.anything({ withNullPrototype: true, withBoxedValues: true, withDate: true, withMap: true, withSparseArray: true }), fc.jsonValue());
    fc.assert(
      fc.property(values, values, (a, b) => {
        for (const [x, y] of [[a, b], [a, reordered(a)], [a, a], [reordered(b), b]] as const) {
          let expected: boolean | undefined;
          try {
            expected = canonicalJson(x) === canonicalJson(y);
          } catch {
            continue; // a value JSON cannot write at all (a BigInt): canonicalJson throws, as JSON.stringify does
          }
          expect(sameCanonicalJson(x, y)).toBe(expected);
        }
      }),
      { numRuns: 2_000 },
    );
  });

  it('treats the numbers and values JSON writes alike as equal, and different ones as different', () => {
    expect(sameCanonicalJson({ a: 0, b: undefined }, { a: -0 })).toBe(true);
    expect(sameCanonicalJson([Number.NaN], [null])).toBe(true);
    expect(sameCanonicalJson({ at: new Date(0) }, { at: '1970-01-01T00:00:00.000Z' })).toBe(true);
    expect(sameCanonicalJson({ at: new Date(0) }, { at: new Date(1) })).toBe(false);
    expect(sameCanonicalJson({ a: [1, 2] }, { a: [2, 1] })).toBe(false);
    expect(sameCanonicalJson({ a: 1 }, { a: '1' })).toBe(false);
  });
});
