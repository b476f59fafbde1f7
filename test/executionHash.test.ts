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
