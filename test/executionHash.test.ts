import { describe, expect, it } from 'vitest';
import { Orchestrator, StrictPolicy, canonicalJson } from '../src/index.js';
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
