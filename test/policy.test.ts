import { describe, expect, it } from 'vitest';
import { OaoError, StrictPolicy } from '../src/index.js';

describe('StrictPolicy', () => {
  it('has the seed defaults', () => {
    const policy = new StrictPolicy();
    expect(policy.maxSteps).toBe(10);
    expect(policy.maxTokens).toBe(4000);
    expect(policy.maxToolCalls).toBe(5);
    expect(policy.timeoutMs).toBe(30_000);
    expect(policy.limits.tools).toEqual({ allow: null, deny: [], maxCalls: {} });
    expect(policy.limits.retry.maxRetries).toBe(0);
  });

  it('is frozen once constructed', () => {
    const policy = new StrictPolicy({ maxSteps: 3, tools: { allow: ['a'] } });
    expect(Object.isFrozen(policy)).toBe(true);
    expect(Object.isFrozen(policy.limits.tools.allow)).toBe(true);
    expect(() => {
      (policy as { maxSteps: number }).maxSteps = 100;
    }).toThrow(TypeError);
    expect(() => {
      (policy.limits.tools.allow as string[]).push('b');
    }).toThrow(TypeError);
    expect(policy.maxSteps).toBe(3);
  });

  it.each([
    [{ maxSteps: -1 }, 'maxSteps'],
    [{ maxSteps: 0 }, 'maxSteps'],
    [{ maxSteps: 1.5 }, 'maxSteps'],
    [{ maxTokens: '100' }, 'maxTokens'],
    [{ maxToolCalls: Number.NaN }, 'maxToolCalls'],
    [{ timeoutMs: 0 }, 'timeoutMs'],
    [{ timeoutMs: 3_000_000_000 }, 'timeoutMs'],
    [{ tools: { allow: 'search' } }, 'tools.allow'],
    [{ tools: { maxCalls: { search: -2 } } }, 'tools.maxCalls.search'],
    [{ retry: { maxRetries: 1.2 } }, 'retry.maxRetries'],
    [{ maxStep: 3 }, 'maxStep'],
    [{ tools: { alow: ['x'] } }, 'tools.alow'],
  ])('rejects %j with a typed error naming %s', (options, field) => {
    let error: unknown;
    try {
      new StrictPolicy(options as never);
    } catch (e) {
      error = e;
    }
    expect(OaoError.isInstance(error)).toBe(true);
    expect((error as OaoError).code).toBe('OAO_ERR_INVALID_POLICY');
    expect((error as OaoError).status).toBe(400);
    expect((error as OaoError).details?.field).toBe(field);
    expect((error as OaoError).message).toContain(field);
  });

  it('allows reaching zero-valued budgets', () => {
    const policy = new StrictPolicy({ maxTokens: 0, maxToolCalls: 0 });
    expect(policy.maxTokens).toBe(0);
    expect(policy.maxToolCalls).toBe(0);
  });

  describe('narrow', () => {
    const parent = new StrictPolicy({
      maxSteps: 5,
      maxTokens: 1000,
      timeoutMs: 10_000,
      tools: { allow: ['search', 'calc', 'mail'], deny: ['shell'], maxCalls: { search: 2 } },
    });

    it('keeps the parent where the override says nothing', () => {
      const child = parent.narrow({ maxSteps: 3 });
      expect(child.maxSteps).toBe(3);
      expect(child.maxTokens).toBe(1000);
      expect(child.timeoutMs).toBe(10_000);
      expect(child.limits.tools).toEqual(parent.limits.tools);
    });

    it('can never widen a limit', () => {
      const child = parent.narrow({ maxSteps: 50, maxTokens: 1_000_000, timeoutMs: 60_000, maxToolCalls: 99 });
      expect(child.maxSteps).toBe(5);
      expect(child.maxTokens).toBe(1000);
      expect(child.timeoutMs).toBe(10_000);
      expect(child.maxToolCalls).toBe(5);
    });

    it('intersects allow lists and combines deny lists and per-tool limits', () => {
      const child = parent.narrow({
        tools: { allow: ['search', 'browser'], deny: ['mail'], maxCalls: { search: 5, calc: 1 } },
      });
      expect(child.limits.tools.allow).toEqual(['search']);
      expect(child.limits.tools.deny).toEqual(['mail', 'shell']);
      expect(child.limits.tools.maxCalls).toEqual({ search: 2, calc: 1 });
    });

    it('takes a StrictPolicy as well as options, and validates options', () => {
      expect(parent.narrow(new StrictPolicy({ maxSteps: 2 })).maxSteps).toBe(2);
      expect(() => parent.narrow({ maxSteps: -3 })).toThrow(/maxSteps/);
      expect(parent.narrow(undefined)).toBe(parent);
    });
  });
});
