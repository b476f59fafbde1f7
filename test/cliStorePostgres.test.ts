// `--store postgres://...` on `oao run`, `oao runs` and `oao replay`, on a database of this test's own.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../src/cli/exitCodes.js';
import { runCli } from '../src/cli/program.js';
import type { ExecutionReport } from '../src/index.js';
import { captureIo, repositoryRoot } from './cliIo.js';
import { createTestDatabase, freePort, type TestDatabase } from './store/pgTestDb.js';

const exec = promisify(execFile);
const examples = join(repositoryRoot, 'examples/agents.ts');

let database: TestDatabase;

async function cli(argv: readonly string[]) {
  const t = captureIo();
  const code = await runCli(argv, t.io);
  return { code, out: t.out(), err: t.err() };
}

/** `oao <argv>` as a process of its own; it must end by itself (an open pool would keep it alive). */
async function oaoProcess(argv: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, ['--conditions=oao-source', '--import', 'tsx', 'src/cli/oao.ts', ...argv], {
      cwd: repositoryRoot,
      timeout: 30_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; killed?: boolean; stdout: string; stderr: string };
    if (failed.killed === true) throw new Error(`oao ${argv.join(' ')} did not exit within 30 s:\n${failed.stdout}\n${failed.stderr}`);
    return { code: failed.code ?? -1, stdout: failed.stdout, stderr: failed.stderr };
  }
}

beforeAll(async () => {
  database = await createTestDatabase('cli_store');
}, 30_000);

afterAll(async () => {
  await database?.drop();
}, 30_000);

describe('oao with --store postgres://', () => {
  let researcher: ExecutionReport;

  beforeAll(async () => {
    const run = await oaoProcess(['run', examples, '--agent', 'researcher', '--task', 'in postgres', '--store', database.connectionString, '--json']);
    expect(run.code, run.stderr).toBe(ExitCode.OK);
    researcher = JSON.parse(run.stdout) as ExecutionReport;
  }, 60_000);

  it('records runs of one and of several agents, and exits when they are done', { timeout: 60_000 }, async () => {
    const batch = await oaoProcess(['run', examples, '--agent', 'echo', '--agent', 'runaway', '--task', 'batch', '--store', database.connectionString]);
    expect(batch.code, batch.stderr).toBe(ExitCode.RUN_FAILED);
    expect(batch.stdout).toContain(`recorded in ${database.connectionString}`);

    const { code, out } = await cli(['runs', '--store', database.connectionString, '--json']);
    expect(code).toBe(ExitCode.OK);
    const page = JSON.parse(out) as { runs: { executionId: string; agent: string; status: string; termination: { reason: string } | null }[] };
    expect(page.runs.map((run) => run.agent).sort()).toEqual(['echo', 'researcher', 'runaway']);
    expect(page.runs.find((run) => run.agent === 'runaway')).toMatchObject({ status: 'FAILED', termination: { reason: 'policy_violation' } });
    const failed = await cli(['runs', '--store', database.connectionString, '--status', 'FAILED', '--since', '1h']);
    expect(failed.out.trim().split('\n')).toHaveLength(2);
    expect(failed.out).toContain('runaway');
  });

  it('shows and replays a stored run byte for byte', { timeout: 30_000 }, async () => {
    const shown = await cli(['runs', 'show', researcher.executionId, '--store', database.connectionString, '--json']);
    expect(shown.code, shown.err).toBe(ExitCode.OK);
    expect((JSON.parse(shown.out) as { report: ExecutionReport }).report).toEqual(researcher);

    const replayed = await cli(['replay', researcher.executionId, '--store', database.connectionString, '--json']);
    expect(replayed.code, replayed.err).toBe(ExitCode.OK);
    expect(replayed.out).toBe(`${JSON.stringify(researcher, null, 2)}\n`);

    const verified = await cli(['replay', researcher.executionId, '--store', database.connectionString, '--verify', examples]);
    expect(verified.code, verified.err).toBe(ExitCode.OK);

    const unknown = await cli(['replay', 'no-such-run', '--store', database.connectionString]);
    expect(unknown.code).toBe(ExitCode.USAGE);
    expect(unknown.err).toContain('[OAO_ERR_RUN_NOT_FOUND]');
  });

  it('a password in the URL is never printed', { timeout: 30_000 }, async () => {
    const url = new URL(database.connectionString);
    url.password = 'not-needed-with-trust';
    const { code, out } = await cli(['run', examples, '--agent', 'echo', '--task', 'x', '--store', url.href]);
    expect(code).toBe(ExitCode.OK);
    expect(out).toContain(`recorded in ${url.href.replace('not-needed-with-trust', '***')}`);
    expect(out).not.toContain('not-needed-with-trust');
  });

  it('a server that cannot be reached is exit 3 with OAO_ERR_STORE_UNAVAILABLE, in one line', { timeout: 30_000 }, async () => {
    const port = await freePort();
    const { code, out, err } = await cli(['runs', '--store', `postgres://postgres@127.0.0.1:${port}/nothing`]);
    expect(code).toBe(ExitCode.UNREACHABLE);
    expect(out).toBe('');
    expect(err.trim().split('\n')).toHaveLength(1);
    expect(err).toContain('[OAO_ERR_STORE_UNAVAILABLE]');
  });
});
