import { describe, expect, it } from 'vitest';
import { ExitCode } from '../src/cli/exitCodes.js';
import { loadAgentModule } from '../src/cli/loadModule.js';
import { runCli } from '../src/cli/program.js';
import type { WorkflowResult } from '../src/index.js';
import { captureIo } from './cliIo.js';

const MODULE = 'test/fixtures/workflowModule.ts';
const T = 30_000;

describe('oao workflow <module> <name>', () => {
  it('runs a workflow of the module and prints the node table', async () => {
    const { io, out } = captureIo();
    const code = await runCli(['workflow', MODULE, 'greet', '--input', '{"name":"Ada"}'], io);
    expect(code).toBe(ExitCode.OK);
    const text = out();
    expect(text).toMatch(/^node\s+status\s+runs\s+tokens\s+reason$/m);
    expect(text).toMatch(/^hello\s+SUCCESS\s+1\s+10$/m);
    expect(text).toMatch(/^shout\s+SUCCESS\s+1\s+10$/m);
    expect(text).toMatch(/^each\s+SUCCESS\s+3\s+30$/m);
    expect(text).toContain('workflow greet: SUCCESS · 3 succeeded · 0 failed · 0 skipped · 50 tokens');
  }, T);

  it('prints JSON with --json, exits 1 when a node failed, and names why dependents were skipped', async () => {
    const { io, out } = captureIo();
    const code = await runCli(['workflow', MODULE, 'fragile', '--json'], io);
    expect(code).toBe(ExitCode.RUN_FAILED);
    const result = JSON.parse(out()) as WorkflowResult;
    expect(result.nodes.second).toMatchObject({ status: 'SKIPPED', reason: { kind: 'dependency_failed', node: 'first' } });
    expect(result.nodes.other?.status).toBe('SUCCESS');
    const table = captureIo();
    expect(await runCli(['workflow', MODULE, 'fragile'], table.io)).toBe(ExitCode.RUN_FAILED);
    expect(table.out()).toMatch(/^second\s+SKIPPED\s+0\s+0\s+dependency_failed \(first\)$/m);
  }, T);

  it('answers an unknown workflow and bad input as usage errors (exit 2)', async () => {
    const unknown = captureIo();
    expect(await runCli(['workflow', MODULE, 'nope'], unknown.io)).toBe(ExitCode.USAGE);
    expect(unknown.err()).toContain('OAO_ERR_UNKNOWN_WORKFLOW');
    expect(unknown.err()).toContain('greet, fragile');
    const badJson = captureIo();
    expect(await runCli(['workflow', MODULE, 'greet', '--input', '{nope'], badJson.io)).toBe(ExitCode.USAGE);
    expect(badJson.err()).toContain('--input must be JSON');
  }, T);

  it('loads the workflows export next to the agents', async () => {
    const mod = await loadAgentModule(MODULE);
    expect(Object.keys(mod.agents)).toEqual(['echo']);
    expect(Object.keys(mod.workflows)).toEqual(['greet', 'fragile']);
  }, T);
});
