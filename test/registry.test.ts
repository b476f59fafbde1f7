import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { OaoError, PolicyViolationError, RUNTIME_VERSION, errorRegistry } from '../src/index.js';

describe('error registry', () => {
  it('documents every code in docs/errors.md with its HTTP status', async () => {
    const doc = await readFile(new URL('../docs/errors.md', import.meta.url), 'utf8');
    for (const [code, entry] of Object.entries(errorRegistry)) {
      const row = doc.split('\n').find((line) => line.includes(`\`${code}\``));
      expect(row, code).toBeDefined();
      expect(row).toContain(String(entry.status));
    }
  });

  it('codes are unique, prefixed and stable in shape', () => {
    for (const code of Object.keys(errorRegistry)) expect(code).toMatch(/^OAO_ERR_[A-Z_]+$/);
  });

  it('isInstance recognises OAO errors, including subclasses, and nothing else', () => {
    const violation = new PolicyViolationError({ rule: 'max_steps', message: 'm', limit: 1, attempted: 2 });
    expect(OaoError.isInstance(violation)).toBe(true);
    expect(OaoError.isInstance(new Error('x'))).toBe(false);
    expect(OaoError.isInstance({ code: 'OAO_ERR_TIMEOUT' })).toBe(false);
    expect(violation.toJSON()).toEqual({
      name: 'PolicyViolationError',
      code: 'OAO_ERR_POLICY_VIOLATION',
      message: 'm',
      details: { rule: 'max_steps', limit: 1, attempted: 2 },
    });
  });
});

describe('runtime version', () => {
  it('equals the package version', async () => {
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(RUNTIME_VERSION).toBe(pkg.version);
  });
});
