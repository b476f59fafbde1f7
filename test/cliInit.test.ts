import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ExitCode } from '../src/cli/exitCodes.js';
import { runCli } from '../src/cli/program.js';
import { STARTER_MODULE } from '../src/cli/starterModule.js';
import { captureIo, serveIo } from './cliIo.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'oao-init-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('oao init', () => {
  it('writes a plain JavaScript starter module that oao run runs', async () => {
    const init = captureIo({ cwd: dir });
    expect(await runCli(['init'], init.io)).toBe(ExitCode.OK);
    expect(init.out()).toContain('Wrote agents.mjs');
    expect(init.out()).toContain('npx oao run agents.mjs --agent researcher --task "agent governance"');
    const written = await readFile(join(dir, 'agents.mjs'), 'utf8');
    expect(written).toBe(STARTER_MODULE);
    // No import at all: it runs wherever the package is installed, with no TypeScript loader.
    expect(written).not.toMatch(/^\s*import\s/m);

    const researcher = captureIo({ cwd: dir });
    expect(await runCli(['run', 'agents.mjs', '--agent', 'researcher', '--task', 'agent governance', '--json'], researcher.io)).toBe(ExitCode.OK);
    expect(JSON.parse(researcher.out())).toMatchObject({ status: 'SUCCESS', totalSteps: 2, toolUsage: { byTool: { search: 2 } } });

    const greeter = captureIo({ cwd: dir });
    expect(await runCli(['run', 'agents.mjs', '--agent', 'greeter', '--task', 'Ada'], greeter.io)).toBe(ExitCode.OK);
    expect(greeter.out()).toContain('output: Hello, Ada!');
  });

  it('writes a module whose policy governs the run', async () => {
    await runCli(['init'], captureIo({ cwd: dir }).io);
    const denied = captureIo({ cwd: dir });
    // The starter policy allows 4 tool calls; the flag narrows that to 1, so the second search is refused.
    expect(await runCli(['run', 'agents.mjs', '--agent', 'researcher', '--task', 'x', '--max-tool-calls', '1', '--json'], denied.io)).toBe(ExitCode.RUN_FAILED);
    expect(JSON.parse(denied.out())).toMatchObject({ status: 'FAILED', termination: { reason: 'policy_violation', rule: 'max_tool_calls' } });
  });

  it('writes a module that oao serve serves', async () => {
    await runCli(['init', 'team.mjs'], captureIo({ cwd: dir }).io);
    const cli = serveIo({ cwd: dir });
    const exit = runCli(['serve', 'team.mjs', '--port', '0', '--no-dashboard'], cli.io);
    const base = await cli.listening;
    expect(cli.out()).toContain('agents: greeter, researcher');
    const response = await fetch(`${base}/run`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ agent: 'researcher', task: 'served' }),
    });
    expect(await response.json()).toMatchObject({ status: 'SUCCESS', totalSteps: 2 });
    cli.stop();
    expect(await exit).toBe(ExitCode.OK);
  });

  it('never overwrites a file: exits 2 and leaves it as it was', async () => {
    await writeFile(join(dir, 'agents.mjs'), 'export const agents = { mine: () => "kept" };\n');
    const t = captureIo({ cwd: dir });
    expect(await runCli(['init'], t.io)).toBe(ExitCode.USAGE);
    expect(t.err()).toContain('agents.mjs already exists and oao init never overwrites a file');
    expect(t.err()).toContain('[OAO_ERR_CLI_USAGE]');
    expect(await readFile(join(dir, 'agents.mjs'), 'utf8')).toBe('export const agents = { mine: () => "kept" };\n');
  });

  it('refuses a name that is not .mjs, since the module uses import/export', async () => {
    const t = captureIo({ cwd: dir });
    expect(await runCli(['init', 'agents.js'], t.io)).toBe(ExitCode.USAGE);
    expect(t.err()).toMatch(/give it a \.mjs name/);
  });
});
