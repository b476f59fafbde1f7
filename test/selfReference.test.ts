import { describe, expect, it } from 'vitest';
import { Orchestrator } from 'open-agent-orchestrator';
import * as source from '../src/index.js';

describe('package self-reference', () => {
  it('resolves the package name to the same module as src/index.ts', () => {
    expect(Orchestrator).toBe(source.Orchestrator);
  });
});
