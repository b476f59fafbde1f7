// `oao serve --store`: real `oao` processes on a SQLite file, killed with SIGKILL and restarted.
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { postJson, startOao } from './oaoProcess.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../src/cli/exitCodes.js';
import { runCli } from '../src/cli/program.js';
import type { ExecutionReport } from '../src/index.js';
import { repositoryRoot, serveIo } from './cliIo.js';

const hidePackages = join(repositoryRoot, 'test/fixtures/hidePackages.ts');

let dir: string;
let moduleFile: string;
const children = new Set<ChildProcess>();

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'oao-serve-store-'));
  moduleFile = join(dir, 'agents.mjs');
  writeFileSync(
    moduleFile,
    [
      'export const agents = {',
      '  echo: (task) => ({ output: `echo: ${task}` }),',
      '  broken: () => { throw new Error("the agent broke"); },',
      '  // Works until its run is stopped: live whenever the process dies.',
      '  hang: (_task, ctx) => new Promise((_resolve, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason))),',
      '};',
      '',
    ].join('\n'),
  );
});

afterEach(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children.clear();
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Starts `oao <argv>` as its own process, from src/ through tsx, as the README's last CLI line does. */
function oao(argv: readonly string[], env: Record<string, string> = {}, preload: readonly string[] = []) {
  return startOao(argv, { env, preload, children });
}

const post = postJson;

/** Asks again until `check` holds (a state another process reaches on its own time), failing after `ms`. */
async function eventually<T>(what: string, ms: number, attempt: () => Promise<T>, check: (value: T) => boolean): Promise<T> {
  const deadline = performance.now() + ms;
  let last: T = await attempt();
  while (!check(last)) {
    if (performance.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms; last: ${JSON.stringify(last)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    last = await attempt();
  }
  return last;
}

interface Listed {
  readonly runs: readonly { executionId: string; agent: string; status: string; termination: { reason: string } | null }[];
}

describe('oao serve --store sqlite:<path>, killed with SIGKILL and started again', () => {
  it('keeps every finished run, report and event, and lists the run that was live as interrupted', { timeout: 90_000 }, async () => {
    const store = `sqlite:${join(dir, 'killed', 'runs.db')}`;
    const first = oao(['serve', moduleFile, '--port', '0', '--store', store, '--lease-ttl-ms', '500', '--no-dashboard']);
    const base = await first.listening;
    expect(first.output()).toContain(`store ${store}`);

    const echo = (await (await post(base, '/run', { agent: 'echo', task: 'before the crash' })).json()) as ExecutionReport;
    expect(echo.status).toBe('SUCCESS');
    const broken = (await (await post(base, '/run', { agent: 'broken', task: 'x' })).json()) as ExecutionReport;
    expect(broken.status).toBe('FAILED');
    const started = await post(base, '/runs', { agent: 'hang', task: 'live when killed' });
    expect(started.status).toBe(202);
    const { executionId: liveId } = (await started.json()) as { executionId: string };
    // Its step has started (STEP_START is stored) before the process dies.
    await eventually('the hanging step to start', 10_000, async () => ((await (await fetch(`${base}/runs/${liveId}`)).json()) as { state: string }).state, (state) => state === 'EXECUTE');

    first.child.kill('SIGKILL');
    expect((await first.finished).signal).toBe('SIGKILL');

    // Another process reads the file: finished runs as they ended, the live one interrupted once its lease ran out.
    const listed = await eventually(
      'the killed run to list as interrupted',
      15_000,
      async () => {
        const runs = oao(['runs', '--store', store, '--json']);
        const result = await runs.finished;
        expect(result.code, result.stderr).toBe(ExitCode.OK);
        return JSON.parse(result.stdout) as Listed;
      },
      (page) => page.runs.some((run) => run.executionId === liveId && run.status === 'interrupted'),
    );
    expect(listed.runs.map((run) => [run.agent, run.status])).toEqual([
      ['hang', 'interrupted'],
      ['broken', 'FAILED'],
      ['echo', 'SUCCESS'],
    ]);

    const replayed = oao(['replay', echo.executionId, '--store', store, '--json']);
    const replay = await replayed.finished;
    expect(replay.code, replay.stderr).toBe(ExitCode.OK);
    expect(JSON.parse(replay.stdout)).toEqual(echo);

    // The same file, served again: the runs of the killed process are all there. (--no-resume: the
    // live run stays interrupted here; test/cliServeResume.test.ts has a server take it up.)
    const second = oao(['serve', moduleFile, '--port', '0', '--store', store, '--no-dashboard', '--no-resume']);
    const again = await second.listening;
    const overHttp = oao(['runs', '--server', again, '--json']);
    const page = await overHttp.finished;
    expect(page.code, page.stderr).toBe(ExitCode.OK);
    expect((JSON.parse(page.stdout) as Listed).runs.map((run) => [run.executionId, run.status])).toEqual([
      [liveId, 'interrupted'],
      [broken.executionId, 'FAILED'],
      [echo.executionId, 'SUCCESS'],
    ]);
    const show = oao(['runs', 'show', broken.executionId, '--server', again]);
    const shown = await show.finished;
    expect(shown.code).toBe(ExitCode.RUN_FAILED);
    expect(shown.stdout).toContain('the agent broke');
    const stored = (await (await fetch(`${again}/runs/${echo.executionId}`)).json()) as { report: ExecutionReport };
    expect(stored.report).toEqual(echo);
    const events = await (await fetch(`${again}/runs/${echo.executionId}/events`)).text();
    const types = [...events.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]);
    expect(types[0]).toBe('EXECUTION_START');
    expect(types.at(-1)).toBe('EXECUTION_COMPLETE');

    // Runs of the new process are recorded beside the old ones.
    const after = (await (await post(again, '/run', { agent: 'echo', task: 'after the restart' })).json()) as ExecutionReport;
    second.child.kill('SIGTERM');
    const stopped = await second.finished;
    expect(stopped.code, stopped.stderr).toBe(ExitCode.OK);
    expect(stopped.stdout).toContain('OAO server stopped');
    const last = await oao(['runs', '--store', store, '--agent', 'echo', '--json']).finished;
    expect((JSON.parse(last.stdout) as Listed).runs.map((run) => run.executionId)).toEqual([after.executionId, echo.executionId]);
  });
});

describe('oao serve without --store', () => {
  it('keeps runs in .oao/runs.db under the working directory, creating the directory', { timeout: 30_000 }, async () => {
    const cwd = mkdtempSync(join(dir, 'default-'));
    const cli = serveIo({ cwd });
    const exit = runCli(['serve', moduleFile, '--port', '0', '--no-dashboard'], cli.io);
    const base = await cli.listening;
    expect(cli.out()).toContain('store sqlite:.oao/runs.db');
    expect(cli.err()).toBe('');
    expect(existsSync(join(cwd, '.oao', 'runs.db'))).toBe(true);
    const report = (await (await post(base, '/run', { agent: 'echo', task: 'kept' })).json()) as ExecutionReport;
    cli.stop();
    expect(await exit).toBe(ExitCode.OK);

    const out: string[] = [];
    const code = await runCli(['runs', '--store', 'sqlite:.oao/runs.db', '--json'], { stdout: (t) => out.push(t), stderr: (t) => out.push(t), env: {}, isTTY: false, cwd });
    expect(code, out.join('')).toBe(ExitCode.OK);
    expect((JSON.parse(out.join('')) as Listed).runs.map((run) => run.executionId)).toEqual([report.executionId]);
  });

  it('--store memory keeps them in memory, creates no file and says nothing about it', { timeout: 30_000 }, async () => {
    const cwd = mkdtempSync(join(dir, 'memory-'));
    const cli = serveIo({ cwd });
    const exit = runCli(['serve', moduleFile, '--port', '0', '--no-dashboard', '--store', 'memory'], cli.io);
    const base = await cli.listening;
    expect(cli.out()).toContain('store memory');
    expect(cli.err()).toBe('');
    expect((await post(base, '/run', { agent: 'echo', task: 'in memory' })).status).toBe(200);
    cli.stop();
    expect(await exit).toBe(ExitCode.OK);
    expect(existsSync(join(cwd, '.oao'))).toBe(false);
  });
});

describe('without the optional store packages', () => {
  const hidden = (names: string) => ({ OAO_HIDE_PACKAGES: names });

  it('oao serve without better-sqlite3 serves from memory and says so in one notice line', { timeout: 30_000 }, async () => {
    const served = oao(['serve', moduleFile, '--port', '0', '--no-dashboard'], hidden('better-sqlite3'), [hidePackages]);
    const base = await served.listening;
    expect((await post(base, '/run', { agent: 'echo', task: 'x' })).status).toBe(200);
    served.child.kill('SIGTERM');
    const result = await served.finished;
    expect(result.code).toBe(ExitCode.OK);
    expect(result.stderr).toBe(
      'notice: runs are kept in memory and lost when the server stops: better-sqlite3 is not installed ' +
        '(npm install better-sqlite3 to keep them in .oao/runs.db; --store memory says this is intended)\n',
    );
    expect(result.stdout).toContain('store memory');
  });

  it('an explicit sqlite: or postgres: store names the npm install line and exits 5', { timeout: 60_000 }, async () => {
    const cases = [
      { argv: ['serve', moduleFile, '--port', '0', '--store', `sqlite:${join(dir, 'never.db')}`], install: 'npm install better-sqlite3' },
      { argv: ['run', moduleFile, '--agent', 'echo', '--task', 'x', '--store', `sqlite:${join(dir, 'never.db')}`], install: 'npm install better-sqlite3' },
      { argv: ['runs', '--store', 'postgres://postgres@127.0.0.1:5432/never'], install: 'npm install pg' },
      { argv: ['replay', 'some-id', '--store', 'postgresql://postgres@127.0.0.1:5432/never', '--json'], install: 'npm install pg' },
    ];
    const results = await Promise.all(cases.map(({ argv }) => oao(argv, hidden('better-sqlite3,pg'), [hidePackages]).finished));
    results.forEach((result, index) => {
      const { argv, install } = cases[index] as (typeof cases)[number];
      expect(result.code, `${argv.join(' ')}\n${result.stderr}`).toBe(ExitCode.COULD_NOT_START);
      expect(result.stdout).toBe('');
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).toContain(`needs a package that is not installed: ${install}`);
      expect(result.stderr).toContain('OAO_ERR_MISSING_PACKAGE');
    });
    expect(existsSync(join(dir, 'never.db'))).toBe(false);
  });
});
