// `--store` on `oao run`, `oao runs` and `oao replay`, against real SQLite files in temp dirs.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../src/cli/exitCodes.js';
import { describeStore, parseStoreUrl } from '../src/cli/openStore.js';
import { parseSince } from '../src/cli/parseSince.js';
import { runCli } from '../src/cli/program.js';
import { SimulatedClock } from 'xstate';
import { OaoError, Orchestrator, type ExecutionReport } from '../src/index.js';
import { createSqliteStore } from '../src/store/sqlite/index.js';
import { captureIo, repositoryRoot } from './cliIo.js';
import { DummyAgent } from './helpers.js';
import { FAKE_EPOCH, fakeRun } from './store/fakeLog.js';

let dir: string;
let db: string;
const examples = join(repositoryRoot, 'examples/agents.ts');

async function cli(argv: readonly string[]) {
  const t = captureIo({ cwd: dir });
  const code = await runCli(argv, t.io);
  return { code, out: t.out(), err: t.err() };
}

/** A simulated clock standing at `at`. */
function fixedClock(at: number): SimulatedClock {
  const clock = new SimulatedClock();
  clock.set(at);
  return clock;
}

function usageError(thrower: () => unknown): OaoError {
  try {
    thrower();
  } catch (error) {
    expect(OaoError.isInstance(error)).toBe(true);
    return error as OaoError;
  }
  throw new Error('expected a typed error');
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'oao-cli-store-'));
  db = 'sqlite:data/runs.db';
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('--store <url>', () => {
  it('accepts memory, sqlite:<path> and postgres:// or postgresql:// connection strings', () => {
    expect(parseStoreUrl('memory')).toEqual({ kind: 'memory' });
    expect(parseStoreUrl('sqlite:.oao/runs.db')).toEqual({ kind: 'sqlite', path: '.oao/runs.db' });
    expect(parseStoreUrl('sqlite:/var/lib/oao/runs.db')).toEqual({ kind: 'sqlite', path: '/var/lib/oao/runs.db' });
    expect(parseStoreUrl('postgres://u@db:5432/app')).toEqual({ kind: 'postgres', connectionString: 'postgres://u@db:5432/app' });
    expect(parseStoreUrl('postgresql://u@db/app')).toEqual({ kind: 'postgres', connectionString: 'postgresql://u@db/app' });
  });

  it('refuses anything else with OAO_ERR_CLI_USAGE naming the accepted forms', () => {
    for (const bad of ['', 'Memory', 'sqlite:', 'sqlite:   ', 'sqlite://runs.db', 'mysql://u@db/app', 'postgres:app', 'postgres://[bad', 'runs.db']) {
      const error = usageError(() => parseStoreUrl(bad));
      expect(error.code, bad).toBe('OAO_ERR_CLI_USAGE');
      expect(error.message, bad).toContain('memory, sqlite:<path> (relative to the working directory) or postgres://user@host:5432/database');
      expect(error.details).toMatchObject({ field: '--store', value: bad });
    }
  });

  it('never prints a PostgreSQL password', () => {
    expect(describeStore(parseStoreUrl('postgres://oao:s3cret@db:5432/app'))).toBe('postgres://oao:***@db:5432/app');
    expect(describeStore(parseStoreUrl('postgres://oao@db:5432/app'))).toBe('postgres://oao@db:5432/app');
  });

  it('a bad URL is exit 2 in one line on every command that takes --store, before anything runs', async () => {
    for (const argv of [
      ['run', examples, '--agent', 'echo', '--task', 'x', '--store', 'mysql://db/app'],
      ['serve', examples, '--port', '0', '--store', 'mysql://db/app'],
      ['runs', '--store', 'mysql://db/app'],
      ['runs', 'show', 'some-id', '--store', 'mysql://db/app'],
      ['replay', 'some-id', '--store', 'mysql://db/app'],
      ['what-if', '--policy', 'policy.json', '--store', 'mysql://db/app'],
    ]) {
      const { code, out, err } = await cli(argv);
      expect(code, argv.join(' ')).toBe(ExitCode.USAGE);
      expect(out, argv.join(' ')).toBe('');
      expect(err.trim().split('\n'), argv.join(' ')).toHaveLength(1);
      expect(err).toContain('--store is not a store this command knows: expected memory, sqlite:<path>');
      expect(err).toContain('[OAO_ERR_CLI_USAGE]');
    }
  });
});

describe('--since', () => {
  const now = Date.UTC(2026, 5, 15, 12);

  it('takes a duration back from now or an ISO 8601 time', () => {
    expect(parseSince('30s', now)).toBe(now - 30_000);
    expect(parseSince('30m', now)).toBe(now - 30 * 60_000);
    expect(parseSince('12h', now)).toBe(now - 12 * 3_600_000);
    expect(parseSince('7d', now)).toBe(now - 7 * 86_400_000);
    expect(parseSince('2w', now)).toBe(now - 14 * 86_400_000);
    expect(parseSince('2026-06-01', now)).toBe(Date.UTC(2026, 5, 1));
    expect(parseSince('2026-06-01T08:30:00Z', now)).toBe(Date.UTC(2026, 5, 1, 8, 30));
    expect(parseSince('2026-06-01T08:30:00.250+02:00', now)).toBe(Date.UTC(2026, 5, 1, 6, 30, 0, 250));
  });

  it('refuses anything else, naming both forms', () => {
    for (const bad of ['', 'yesterday', '7', '7 days', '-7d', '1y', '2026-13-01', '06/01/2026', 'now']) {
      const error = usageError(() => parseSince(bad, now));
      expect(error.code, bad).toBe('OAO_ERR_CLI_USAGE');
      expect(error.message).toContain('ISO 8601 time');
      expect(error.message).toContain('30m, 12h, 7d');
    }
  });
});

describe('oao run --store, then oao runs --store and oao replay', () => {
  let succeeded: ExecutionReport;
  let failed: ExecutionReport;

  beforeAll(async () => {
    const one = await cli(['run', examples, '--agent', 'researcher', '--task', 'stored', '--store', db, '--json']);
    expect(one.code, one.err).toBe(ExitCode.OK);
    succeeded = JSON.parse(one.out) as ExecutionReport;
    const two = await cli(['run', examples, '--agent', 'runaway', '--agent', 'echo', '--task', 'batch', '--store', db]);
    expect(two.code, two.err).toBe(ExitCode.RUN_FAILED);
    expect(two.out).toContain('recorded in sqlite:data/runs.db');
    const reports = await cli(['runs', '--store', db, '--agent', 'runaway', '--json']);
    const id = (JSON.parse(reports.out) as { runs: { executionId: string }[] }).runs[0]?.executionId as string;
    const shown = await cli(['runs', 'show', id, '--store', db, '--json']);
    failed = (JSON.parse(shown.out) as { report: ExecutionReport }).report;
  });

  it('records every run: one agent, and several in parallel', async () => {
    const { code, out } = await cli(['runs', '--store', db, '--json']);
    expect(code).toBe(ExitCode.OK);
    const page = JSON.parse(out) as { runs: { executionId: string; agent: string; status: string; batchId: null; termination: { reason: string } }[]; nextCursor: null };
    expect(page.runs.map((r) => r.agent).sort()).toEqual(['echo', 'researcher', 'runaway']);
    expect(page.runs.find((r) => r.agent === 'researcher')).toMatchObject({
      executionId: succeeded.executionId,
      status: 'SUCCESS',
      startedAt: succeeded.startedAt,
      finishedAt: succeeded.finishedAt,
      batchId: null,
      termination: { reason: 'completed' },
    });
    expect(page.runs.find((r) => r.agent === 'runaway')).toMatchObject({ status: 'FAILED', termination: { reason: 'policy_violation', rule: 'max_steps' } });
    expect(page.nextCursor).toBeNull();
  });

  it('lists as the server does: a table, newest first, filtered by --agent, --status and --since', async () => {
    const table = await cli(['runs', '--store', db]);
    expect(table.code).toBe(ExitCode.OK);
    const lines = table.out.trim().split('\n');
    expect(lines[0]).toMatch(/^id\s+agent\s+status\s+reason\s+started$/);
    expect(lines).toHaveLength(4);
    expect(lines.at(-1)).toContain(succeeded.executionId); // the oldest last

    const failedOnly = await cli(['runs', '--store', db, '--status', 'FAILED', '--json']);
    expect((JSON.parse(failedOnly.out) as { runs: { agent: string }[] }).runs.map((r) => r.agent)).toEqual(['runaway']);
    const echoOnly = await cli(['runs', '--store', db, '--agent', 'echo', '--json']);
    expect((JSON.parse(echoOnly.out) as { runs: { agent: string }[] }).runs.map((r) => r.agent)).toEqual(['echo']);
    const recent = await cli(['runs', '--store', db, '--since', '1h', '--json']);
    expect((JSON.parse(recent.out) as { runs: unknown[] }).runs).toHaveLength(3);
    const future = await cli(['runs', '--store', db, '--since', new Date(Date.now() + 3_600_000).toISOString()]);
    expect(future.out).toBe('No runs.\n');
    const none = await cli(['runs', '--store', db, '--status', 'interrupted']);
    expect(none.out).toBe('No runs.\n');
  });

  it('says when more runs match than --limit shows', async () => {
    const { out } = await cli(['runs', '--store', db, '--limit', '2']);
    expect(out.trim().split('\n')).toHaveLength(4);
    expect(out).toContain('2 runs shown and more match; use --limit for more');
  });

  it('oao runs show --store prints the stored report and exits 1 for a FAILED run', async () => {
    const ok = await cli(['runs', 'show', succeeded.executionId, '--store', db]);
    expect(ok.code).toBe(ExitCode.OK);
    expect(ok.out).toContain('researcher  SUCCESS  completed');
    expect(ok.out).toContain(`id ${succeeded.executionId}`);

    const before = await cli(['runs', '--store', db, 'show', succeeded.executionId]);
    expect(before.code, before.err).toBe(ExitCode.OK);
    expect(before.out).toBe(ok.out);

    const bad = await cli(['runs', 'show', failed.executionId, '--store', db]);
    expect(bad.code).toBe(ExitCode.RUN_FAILED);
    expect(bad.out).toContain('runaway  FAILED  policy_violation (max_steps)');

    const json = await cli(['runs', 'show', succeeded.executionId, '--store', db, '--json']);
    expect(json.code).toBe(ExitCode.OK);
    const run = JSON.parse(json.out) as Record<string, unknown>;
    expect(run).toMatchObject({
      executionId: succeeded.executionId,
      agent: 'researcher',
      status: 'SUCCESS',
      state: 'TERMINATE',
      counters: { steps: 2, tokens: 120, toolCalls: 2 },
      effectivePolicy: { maxSteps: 4, maxTokens: 2000, maxToolCalls: 4, timeoutMs: 10000 },
    });
    expect(run.report).toEqual(succeeded);
  });

  it('oao runs show --store of an unknown id is exit 2 with OAO_ERR_RUN_NOT_FOUND', async () => {
    const { code, err } = await cli(['runs', 'show', 'no-such-run', '--store', db, '--json']);
    expect(code).toBe(ExitCode.USAGE);
    expect(JSON.parse(err)).toEqual({
      error: { code: 'OAO_ERR_RUN_NOT_FOUND', message: 'No run "no-such-run" in sqlite:data/runs.db', exitCode: ExitCode.USAGE, details: { executionId: 'no-such-run' } },
    });
  });

  it('oao replay rebuilds the report byte for byte, and exits 0 whatever the run ended with', async () => {
    const json = await cli(['replay', succeeded.executionId, '--store', db, '--json']);
    expect(json.code, json.err).toBe(ExitCode.OK);
    expect(json.out).toBe(`${JSON.stringify(succeeded, null, 2)}\n`);

    const text = await cli(['replay', failed.executionId, '--store', db]);
    expect(text.code, text.err).toBe(ExitCode.OK);
    expect(text.out).toContain('runaway  FAILED  policy_violation (max_steps)');
    expect(text.out).toMatch(/replayed \d+ events: rebuilt from the log with zero agent, tool and model calls; it matches the recorded report/);
  });

  it('oao replay of an unknown id is exit 2', async () => {
    const { code, err } = await cli(['replay', 'no-such-run', '--store', db]);
    expect(code).toBe(ExitCode.USAGE);
    expect(err).toBe('error: No run "no-such-run" in sqlite:data/runs.db [OAO_ERR_RUN_NOT_FOUND]\n');
  });

  it('--server and --store together are bad usage', async () => {
    const { code, err } = await cli(['runs', '--server', 'http://127.0.0.1:3000', '--store', db]);
    expect(code).toBe(ExitCode.USAGE);
    expect(err).toContain('Pass --server <url> or --store <url>, not both');
  });
});

describe('oao replay --verify', () => {
  const store = 'sqlite:verify.db';
  let id: string;

  /** A module of one agent `echo` whose output is `prefix` and the task, with a `search` tool. */
  function writeModule(file: string, prefix: string): string {
    const path = join(dir, file);
    writeFileSync(
      path,
      [
        'export const agents = {',
        '  echo: { name: "echo", async invoke(task, ctx) { const hits = await ctx.callTool("search", { q: task }); return { output: `' + prefix + '${task} (${hits})` }; } },',
        '};',
        'export const tools = { search: () => { throw new Error("a tool body ran during replay"); } };',
        '',
      ].join('\n'),
    );
    return path;
  }

  beforeAll(async () => {
    const recorded = join(dir, 'recorded.mjs');
    writeFileSync(
      recorded,
      [
        'export const agents = {',
        '  echo: { name: "echo", async invoke(task, ctx) { const hits = await ctx.callTool("search", { q: task }); return { output: `said: ${task} (${hits})` }; } },',
        '};',
        'export const tools = { search: ({ q }) => `3 hits for ${q}` };',
        '',
      ].join('\n'),
    );
    const run = await cli(['run', recorded, '--task', 'verify me', '--store', store, '--json']);
    expect(run.code, run.err).toBe(ExitCode.OK);
    id = (JSON.parse(run.out) as ExecutionReport).executionId;
  });

  it('re-runs the same code with every tool result from the log (no tool body runs) and exits 0', async () => {
    const same = writeModule('same.mjs', 'said: ');
    const { code, out, err } = await cli(['replay', id, '--store', store, '--verify', same]);
    expect(code, err).toBe(ExitCode.OK);
    expect(out).toContain('output: said: verify me (3 hits for verify me)');
    expect(out).toMatch(/re-ran the agent's current code with every tool and model result served from the log; all \d+ events match/);
  });

  it('changed code diverges: exit 1 with OAO_ERR_REPLAY_DIVERGED naming the event', async () => {
    const changed = writeModule('changed.mjs', 'SAID: ');
    const text = await cli(['replay', id, '--store', store, '--verify', changed]);
    expect(text.code).toBe(ExitCode.RUN_FAILED);
    expect(text.err.trim().split('\n')).toHaveLength(1);
    expect(text.err).toMatch(/diverged at event \d+: expected STEP_COMPLETE, got STEP_COMPLETE \[OAO_ERR_REPLAY_DIVERGED\]/);

    const json = await cli(['replay', id, '--store', store, '--verify', changed, '--json']);
    expect(json.code).toBe(ExitCode.RUN_FAILED);
    expect(json.out).toBe('');
    const { error } = JSON.parse(json.err) as { error: { code: string; details: { seq: number; expected: { payload: { output: string } }; actual: { payload: { output: string } } } } };
    expect(error.code).toBe('OAO_ERR_REPLAY_DIVERGED');
    expect(error.details.expected.payload.output).toBe('said: verify me (3 hits for verify me)');
    expect(error.details.actual.payload.output).toBe('SAID: verify me (3 hits for verify me)');
  });

  it('picks the agent named like the recorded one, or --agent; an unknown one is exit 2', async () => {
    const renamed = join(dir, 'renamed.mjs');
    writeFileSync(renamed, 'export const agents = { other: (task) => ({ output: task }) };\n');
    const missing = await cli(['replay', id, '--store', store, '--verify', renamed]);
    expect(missing.code).toBe(ExitCode.USAGE);
    expect(missing.err).toContain('No agent "echo" in');
    expect(missing.err).toContain('choose another with --agent <name>');
    expect(missing.err).toContain('it exports: other [OAO_ERR_UNKNOWN_AGENT]');
    const chosen = await cli(['replay', id, '--store', store, '--verify', renamed, '--agent', 'other']);
    expect(chosen.code).toBe(ExitCode.RUN_FAILED);
    expect(chosen.err).toContain('[OAO_ERR_REPLAY_DIVERGED]');
    const noVerify = await cli(['replay', id, '--store', store, '--agent', 'echo']);
    expect(noVerify.code).toBe(ExitCode.USAGE);
    expect(noVerify.err).toContain('--agent chooses the agent to re-run with --verify <module>');
  });
});

describe('stored logs that are not whole', () => {
  const store = 'sqlite:damaged.db';
  const file = () => join(dir, 'damaged.db');

  beforeAll(() => {
    const writer = createSqliteStore({ path: file(), now: () => FAKE_EPOCH });
    // Recorded by the runtime, so each log folds to its own report; `died` is a log cut short.
    const orch = new Orchestrator({ store: writer, clock: fixedClock(FAKE_EPOCH) });
    orch.runSync({ agent: new DummyAgent(), task: 'whole', executionId: 'whole' });
    const damaged = new Orchestrator({ store: writer, clock: fixedClock(FAKE_EPOCH + 1) });
    damaged.runSync({ agent: new DummyAgent(), task: 'damaged', executionId: 'damaged' });
    // A run whose process died: leased until FAKE_EPOCH + 1000 (long past), never ended.
    writer.acquireLease('died', 'a-dead-worker', 1_000);
    writer.append('died', fakeRun('died', { status: 'running', startedAt: FAKE_EPOCH + 2 }));
    writer.close();
    const raw = new Database(file());
    raw.prepare('UPDATE events SET body = ? WHERE execution_id = ? AND seq = ?').run('{"not":"an event"', 'damaged', 4);
    raw.close();
  });

  it('a damaged log: replay exits 1 with OAO_ERR_LOG_CORRUPT naming the run and seq', async () => {
    const whole = await cli(['replay', 'whole', '--store', store]);
    expect(whole.code, whole.err).toBe(ExitCode.OK);
    const { code, out, err } = await cli(['replay', 'damaged', '--store', store, '--json']);
    expect(code).toBe(ExitCode.RUN_FAILED);
    expect(out).toBe('');
    expect(JSON.parse(err)).toMatchObject({ error: { code: 'OAO_ERR_LOG_CORRUPT', exitCode: ExitCode.RUN_FAILED, details: { executionId: 'damaged', seq: 4 } } });
    const shown = await cli(['runs', 'show', 'damaged', '--store', store]);
    expect(shown.code).toBe(ExitCode.RUN_FAILED);
    expect(shown.err).toContain('[OAO_ERR_LOG_CORRUPT]');
  });

  it('a run whose process died lists as interrupted, shows where it stood, and cannot be replayed (exit 2)', async () => {
    const listed = await cli(['runs', '--store', store, '--status', 'interrupted', '--json']);
    expect((JSON.parse(listed.out) as { runs: unknown[] }).runs).toEqual([
      { executionId: 'died', agent: 'fake-agent', status: 'interrupted', startedAt: new Date(FAKE_EPOCH + 2).toISOString(), finishedAt: null, batchId: null, termination: null },
    ]);
    const shown = await cli(['runs', 'show', 'died', '--store', store]);
    expect(shown.code).toBe(ExitCode.OK);
    expect(shown.out).toBe('fake-agent  interrupted  state EXECUTE · steps 1 · tokens 0 · tool calls 0\n');
    const replayed = await cli(['replay', 'died', '--store', store]);
    expect(replayed.code).toBe(ExitCode.USAGE);
    expect(replayed.err).toContain('before EXECUTION_COMPLETE: the run has not finished');
  });

  it('--since an ISO time keeps the runs that started at or after it', async () => {
    const { out } = await cli(['runs', '--store', store, '--since', new Date(FAKE_EPOCH + 1).toISOString(), '--json']);
    expect((JSON.parse(out) as { runs: { executionId: string }[] }).runs.map((r) => r.executionId)).toEqual(['died', 'damaged']);
    const all = await cli(['runs', '--store', store, '--since', new Date(FAKE_EPOCH).toISOString(), '--json']);
    expect((JSON.parse(all.out) as { runs: unknown[] }).runs).toHaveLength(3);
  });
});

describe('a store that cannot be opened', () => {
  it('a SQLite path with no store yet: reading commands exit 2 and create nothing', async () => {
    for (const argv of [
      ['runs', '--store', 'sqlite:missing/runs.db'],
      ['runs', 'show', 'x', '--store', 'sqlite:missing/runs.db'],
      ['replay', 'x', '--store', 'sqlite:missing/runs.db'],
    ]) {
      const { code, err } = await cli(argv);
      expect(code, argv.join(' ')).toBe(ExitCode.USAGE);
      expect(err).toContain(`No SQLite store at ${join(dir, 'missing/runs.db')}: nothing was recorded there`);
    }
    expect(() => createSqliteStore({ path: join(dir, 'missing/runs.db'), readonly: true })).toThrow();
  });

  it('a file where the directory should be: exit 5 with OAO_ERR_STORE, and no run starts', async () => {
    writeFileSync(join(dir, 'a-file'), '');
    const { code, out, err } = await cli(['run', examples, '--agent', 'echo', '--task', 'x', '--store', 'sqlite:a-file/runs.db']);
    expect(code).toBe(ExitCode.COULD_NOT_START);
    expect(out).toBe('');
    expect(err.trim().split('\n')).toHaveLength(1);
    expect(err).toContain('[OAO_ERR_STORE]');
  });

  it('a file that is not a database: exit 5', async () => {
    writeFileSync(join(dir, 'not-a-db'), 'hello, this is text and no SQLite file at all'.repeat(200));
    const { code, err } = await cli(['runs', '--store', 'sqlite:not-a-db', '--json']);
    expect(code).toBe(ExitCode.COULD_NOT_START);
    expect(JSON.parse(err)).toMatchObject({ error: { exitCode: ExitCode.COULD_NOT_START } });
  });
});

describe('oao what-if', () => {
  const store = 'sqlite:what-if.db';
  const ids: Record<string, string> = {};

  function policyFile(name: string, content: string): string {
    writeFileSync(join(dir, name), content);
    return name;
  }

  beforeAll(async () => {
    for (const agent of ['researcher', 'runaway', 'echo']) {
      const run = await cli(['run', examples, '--agent', agent, '--task', 'evaluate me', '--store', store, '--json']);
      ids[agent] = (JSON.parse(run.out) as ExecutionReport).executionId;
    }
  });

  interface Verdicts {
    runs: { executionId: string; agentName: string; same: boolean | null; wouldStop: { seq: number; rule: string } | null; saved: Record<string, number>; reason?: string }[];
    totals: { runs: number; same: number; changed: number; unknown: number; saved: Record<string, number> };
  }

  it('says which runs a stricter policy would have stopped, where, and what that saves', async () => {
    const policy = policyFile('one-step.json', '{ "maxSteps": 1 }');
    const json = await cli(['what-if', '--policy', policy, '--store', store, '--json']);
    expect(json.code, json.err).toBe(ExitCode.OK);
    const result = JSON.parse(json.out) as Verdicts;
    const byAgent = Object.fromEntries(result.runs.map((run) => [run.agentName, run]));
    expect(byAgent.echo).toMatchObject({ executionId: ids.echo, same: true, wouldStop: null, saved: { steps: 0, tokens: 0, toolCalls: 0 } });
    expect(byAgent.researcher).toMatchObject({ executionId: ids.researcher, same: false, wouldStop: { rule: 'max_steps' }, saved: { steps: 1, tokens: 60, toolCalls: 1 } });
    expect(byAgent.runaway).toMatchObject({ same: false, wouldStop: { rule: 'max_steps' }, saved: { steps: 3, tokens: 0, toolCalls: 0 } });
    expect(result.totals).toEqual({ runs: 3, same: 1, changed: 2, unknown: 0, saved: { steps: 4, tokens: 60, toolCalls: 1 } });

    const text = await cli(['what-if', '--policy', policy, '--store', store]);
    expect(text.code).toBe(ExitCode.OK);
    const lines = text.out.trim().split('\n');
    expect(lines[0]).toMatch(/^id\s+agent\s+same\s+would stop at\s+saved steps\s+tokens\s+tool calls$/);
    const researcher = lines.find((line) => line.startsWith(ids.researcher as string));
    expect(researcher).toMatch(new RegExp(`researcher\\s+no\\s+seq ${byAgent.researcher?.wouldStop?.seq} max_steps\\s+1\\s+60\\s+1$`));
    expect(lines.find((line) => line.startsWith(ids.echo as string))).toMatch(/echo\s+yes\s+-\s+0\s+0\s+0$/);
    expect(lines.at(-1)).toBe('3 runs: 1 the same, 2 changed, 0 unknown · stopping them would have saved 4 steps, 60 tokens, 1 tool calls');
  });

  it('filters by --agent and --since', async () => {
    const policy = policyFile('one-step.json', '{ "maxSteps": 1 }');
    const one = await cli(['what-if', '--policy', policy, '--store', store, '--agent', 'runaway', '--json']);
    expect((JSON.parse(one.out) as Verdicts).runs.map((run) => run.executionId)).toEqual([ids.runaway]);
    const later = await cli(['what-if', '--policy', policy, '--store', store, '--since', new Date(Date.now() + 60_000).toISOString()]);
    expect(later.out).toBe('No runs to evaluate.\n');
    const recent = await cli(['what-if', '--policy', policy, '--store', store, '--since', '1d', '--json']);
    expect((JSON.parse(recent.out) as Verdicts).totals.runs).toBe(3);
  });

  it('a wider policy cannot know how a run stopped by a limit would have gone on: same is unknown, with the reason', async () => {
    const policy = policyFile('wide.json', '{ "maxSteps": 10, "maxTokens": 4000, "maxToolCalls": 5, "timeoutMs": 30000 }');
    const json = await cli(['what-if', '--policy', policy, '--store', store, '--agent', 'runaway', '--json']);
    const [runaway] = (JSON.parse(json.out) as Verdicts).runs;
    expect(runaway).toMatchObject({ same: null, wouldStop: null });
    expect(runaway?.reason).toContain('the new policy would have let it go on');
    const text = await cli(['what-if', '--policy', policy, '--store', store, '--agent', 'runaway']);
    expect(text.out).toMatch(/runaway\s+\?\s+-/);
    expect(text.out).toContain(`? ${ids.runaway}: The recorded run was stopped by max_steps`);
  });

  it('a bad policy file is exit 2 naming the file and the field', async () => {
    const cases: [string, string, string][] = [
      [policyFile('typo.json', '{ "maxStep": 1 }'), 'typo.json: Invalid policy option "maxStep"', 'OAO_ERR_INVALID_POLICY'],
      [policyFile('negative.json', '{ "maxTokens": -5 }'), 'negative.json: Invalid policy option "maxTokens"', 'OAO_ERR_INVALID_POLICY'],
      [policyFile('nested.json', '{ "tools": { "deny": "search" } }'), 'nested.json: Invalid policy option "tools.deny"', 'OAO_ERR_INVALID_POLICY'],
      [policyFile('list.json', '[1, 2]'), 'list.json: Invalid policy option', 'OAO_ERR_INVALID_POLICY'],
      [policyFile('broken.json', '{ "maxSteps": 1, }'), 'The policy file broken.json is not JSON', 'OAO_ERR_CLI_USAGE'],
      ['absent.json', `No policy file at ${join(dir, 'absent.json')}`, 'OAO_ERR_CLI_USAGE'],
    ];
    for (const [file, message, code] of cases) {
      const text = await cli(['what-if', '--policy', file, '--store', store]);
      expect(text.code, file).toBe(ExitCode.USAGE);
      expect(text.out, file).toBe('');
      expect(text.err.trim().split('\n'), file).toHaveLength(1);
      expect(text.err, file).toContain(message);
      expect(text.err, file).toContain(`[${code}]`);
    }
    const json = await cli(['what-if', '--policy', 'typo.json', '--store', store, '--json']);
    expect(JSON.parse(json.err)).toMatchObject({ error: { code: 'OAO_ERR_INVALID_POLICY', exitCode: ExitCode.USAGE, details: { field: 'maxStep' } } });
    const missing = await cli(['what-if', '--store', store]);
    expect(missing.code).toBe(ExitCode.USAGE);
    expect(missing.err).toContain("required option '--policy <file>' not specified");
  });
});
