// oao serve --api-keys-file: tenants and their budgets from a JSON file, and --admin-key.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ExitCode } from '../src/cli/exitCodes.js';
import { runCli } from '../src/cli/program.js';
import { serveIo } from './cliIo.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function keysFile(contents: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'oao-keys-'));
  dirs.push(dir);
  const path = join(dir, 'keys.json');
  writeFileSync(path, contents);
  return path;
}

async function post(url: string, key: string, body: unknown): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

describe('oao serve --api-keys-file', () => {
  it('serves tenants with their budgets from the file, plain --api-key keys as the default tenant, and --admin-key', { timeout: 30_000 }, async () => {
    const file = keysFile(
      JSON.stringify({
        'acme-key': { tenant: 'acme', name: 'acme-ci', budget: { window: 'day', maxRuns: 1 } },
        'ops-key': { tenant: 'ops', name: 'ops' },
      }),
    );
    const cli = serveIo();
    const exited = runCli(['serve', 'examples/agents.ts', '--store', 'memory', '--port', '0', '--no-dashboard', '--api-keys-file', file, '--api-key', 'plain-key', '--admin-key', 'ops'], cli.io);
    try {
      const url = await cli.listening;
      expect((await post(`${url}/run`, 'acme-key', { agent: 'echo', task: 'hi' })).status).toBe(200);
      const refused = await post(`${url}/run`, 'acme-key', { agent: 'echo', task: 'hi' });
      expect(refused.status).toBe(429);
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('OAO_ERR_TENANT_BUDGET');
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
      // The plain key belongs to the tenant "default", which has no budget.
      expect((await post(`${url}/run`, 'plain-key', { agent: 'echo', task: 'hi' })).status).toBe(200);
      const usage = await fetch(`${url}/tenants/acme/usage`, { headers: { authorization: 'Bearer ops-key' } });
      expect(usage.status).toBe(200);
      expect(((await usage.json()) as { spent: { runs: number } }).spent.runs).toBe(1);
      const forbidden = await fetch(`${url}/tenants/acme/usage`, { headers: { authorization: 'Bearer plain-key' } });
      expect(forbidden.status).toBe(403);
    } finally {
      cli.stop();
      expect(await exited).toBe(ExitCode.OK);
    }
  });

  it('refuses a file that is not JSON with exit 2, and a key mapped to two tenants with the field named', { timeout: 30_000 }, async () => {
    const broken = serveIo({ untilStopped: () => Promise.reject(new Error('oao serve started, but it should not have')) });
    const notJson = keysFile('{ "acme-key": ');
    expect(await runCli(['serve', 'examples/agents.ts', '--store', 'memory', '--port', '0', '--api-keys-file', notJson], broken.io)).toBe(ExitCode.USAGE);
    expect(broken.err()).toContain('--api-keys-file');
    expect(broken.err()).toContain('not JSON');

    const twice = serveIo({ untilStopped: () => Promise.reject(new Error('oao serve started, but it should not have')) });
    const conflicting = keysFile(JSON.stringify([{ key: 'k', tenant: 'acme' }, { key: 'k', tenant: 'beta' }]));
    const code = await runCli(['serve', 'examples/agents.ts', '--store', 'memory', '--port', '0', '--api-keys-file', conflicting], twice.io);
    expect(code).not.toBe(ExitCode.OK);
    expect(twice.err()).toContain('apiKeys.1 is mapped to two tenants');
    expect(twice.err()).toContain('OAO_ERR_INVALID_ARGUMENT');
  });
});
