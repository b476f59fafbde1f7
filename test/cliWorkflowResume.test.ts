import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../src/cli/exitCodes.js';
import { runCli } from '../src/cli/program.js';
import { canonicalJson, type WorkflowResult } from '../src/index.js';
import { createSqliteStore } from '../src/store/sqlite/index.js';
import { captureIo } from './cliIo.js';

const MODULE = 'test/fixtures/workflowModule.ts';
const T = 30_000;
const dir = mkdtempSync(join(tmpdir(), 'oao-cli-workflow-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('oao workflow --store, --run-id and --resume', () => {
  it('records a workflow run in the store under its id, and --resume of a finished one prints its stored result', async () => {
    const store = `sqlite:${join(dir, 'runs.db')}`;
    const first = captureIo();
    expect(await runCli(['workflow', MODULE, 'greet', '--input', '{"name":"Ada"}', '--store', store, '--run-id', 'wf-cli', '--json'], first.io)).toBe(ExitCode.OK);
    const result = JSON.parse(first.out()) as WorkflowResult;
    expect(result.workflowRunId).toBe('wf-cli');
    const reader = createSqliteStore({ path: join(dir, 'runs.db') });
    try {
      expect(reader.workflowEvents!('wf-cli').at(-1)?.type).toBe('WORKFLOW_COMPLETE');
      expect(reader.get('wf-cli:hello')?.status).toBe('SUCCESS');
    } finally {
      reader.close();
    }
    const again = captureIo();
    expect(await runCli(['workflow', MODULE, 'greet', '--resume', 'wf-cli', '--store', store, '--json'], again.io)).toBe(ExitCode.OK);
    expect(canonicalJson(JSON.parse(again.out()) as never)).toBe(canonicalJson(result as never));
  }, T);

  it('answers --resume without a durable store, or with --input, as a usage error (exit 2)', async () => {
    const noStore = captureIo();
    expect(await runCli(['workflow', MODULE, 'greet', '--resume', 'wf-cli'], noStore.io)).toBe(ExitCode.USAGE);
    expect(noStore.err()).toContain('--resume reads the workflow run from the store');
    const withInput = captureIo();
    expect(await runCli(['workflow', MODULE, 'greet', '--resume', 'wf-cli', '--store', `sqlite:${join(dir, 'runs.db')}`, '--input', '1'], withInput.io)).toBe(ExitCode.USAGE);
    const unknown = captureIo();
    expect(await runCli(['workflow', MODULE, 'greet', '--resume', 'never', '--store', `sqlite:${join(dir, 'runs.db')}`], unknown.io)).not.toBe(ExitCode.OK);
    expect(unknown.err()).toContain('OAO_ERR_RUN_NOT_FOUND');
  }, T);
});
