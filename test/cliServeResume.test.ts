// `oao serve` takes up the runs a killed server left live: real processes, kill -9, SQLite and PostgreSQL.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { postJson, startOao } from './oaoProcess.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson, type ExecutionReport } from '../src/index.js';
import { runStateSchema } from '../src/server/index.js';
import { repositoryRoot } from './cliIo.js';
import { countedCalls, stepTokens } from './fixtures/resumeAgent.js';
import { openEventStream, readEventStream, type SseEventMessage } from './sseMessages.js';
import { createTestDatabase } from './store/pgTestDb.js';

const moduleFile = join(repositoryRoot, 'test/fixtures/serveResumeAgents.ts');
const LEASE_TTL_MS = '300';

let dir: string;
const children = new Set<ChildProcess>();
const cleanups: (() => Promise<void>)[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'oao-serve-resume-'));
});

afterEach(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children.clear();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** `oao serve` as a process of its own, from src/ through tsx. */
function serve(store: string, role: 'doomed' | 'heir', countFile: string, extra: readonly string[] = []) {
  const argv = ['serve', moduleFile, '--port', '0', '--store', store, '--lease-ttl-ms', LEASE_TTL_MS, '--no-dashboard', ...extra];
  return startOao(argv, { env: { OAO_TEST_SERVE_ROLE: role, OAO_TEST_COUNT_FILE: countFile }, children });
}

const post = postJson;

async function runState(base: string, id: string) {
  return runStateSchema.parse(await (await fetch(`${base}/runs/${id}`)).json());
}

/** Polls until `check` holds; bounded by the test's own timeout. */
async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((resolve) => setTimeout(resolve, 50));
}

/** Reads a run's event stream until `last` holds for a message; the messages up to it. Each one sent is stored. */
async function readUntil(url: string, last: (message: SseEventMessage) => boolean): Promise<SseEventMessage[]> {
  const stream = await openEventStream(url);
  const seen: SseEventMessage[] = [];
  try {
    for (let message = await stream.next(); message !== null; message = await stream.next()) {
      seen.push(message);
      if (last(message)) return seen;
    }
    throw new Error(`the stream of ${url} ended before the awaited event: ${seen.map((m) => m.event).join(', ')}`);
  } finally {
    stream.close();
  }
}

const TOTAL = {
  input: [1, 2, 3].reduce((sum, step) => sum + stepTokens(step).input, 0),
  output: [1, 2, 3].reduce((sum, step) => sum + stepTokens(step).output, 0),
};

/**
 * A server runs the counting agent to step 3, where it hangs after the step's tool call returned
 * and its usage was charged, and a `retired` agent's run; it is killed with SIGKILL. A second
 * server on the same store, without the hang and without `retired`, resumes the first run to its
 * end and ends the second FAILED.
 */
async function killAndServeAgain(store: string, label: string): Promise<void> {
  const countFile = join(dir, `${label}-count.txt`);
  const first = serve(store, 'doomed', countFile);
  const base = await first.listening;
  expect((await post(base, '/runs', { agent: 'counter', task: { n: 1 }, executionId: 'crash-1' })).status).toBe(202);
  expect((await post(base, '/runs', { agent: 'retired', task: 'wait', executionId: 'orphan-1' })).status).toBe(202);
  // A stream sends an event once the store holds it: step 3's usage is durable when it arrives.
  const seen = await readUntil(`${base}/runs/crash-1/events`, (m) => m.data.type === 'TOKEN_USAGE' && m.data.payload.step === 3);
  await readUntil(`${base}/runs/orphan-1/events`, (m) => m.event === 'TOOL_RESULT');
  expect(countedCalls(countFile)).toEqual(['t1', 't2', 't3']);

  first.child.kill('SIGKILL');
  expect((await first.finished).signal).toBe('SIGKILL');

  const second = serve(store, 'heir', countFile);
  const again = await second.listening;
  await until(async () => (await runState(again, 'crash-1')).status === 'SUCCESS');
  const report = (await runState(again, 'crash-1')).report as ExecutionReport;
  expect(report).toMatchObject({ status: 'SUCCESS', totalSteps: 3, toolUsage: { total: 3, byTool: { count: 3 } } });
  // Nothing charged twice: the three steps' tokens, once each.
  expect(report.tokenUsage).toEqual({ ...TOTAL, total: TOTAL.input + TOTAL.output });
  expect(report.finalOutput).toMatchObject({ step: 3 });
  // Every tool body ran once per call id, over both processes.
  expect(countedCalls(countFile)).toEqual(['t1', 't2', 't3']);
  // The dead process's lease expired unrenewed: the time nobody held the run is not live time.
  expect(report.wallTimeMs! - report.executionTimeMs).toBeGreaterThanOrEqual(Number(LEASE_TTL_MS));

  // The client that followed the first server resumes after the last event it saw, on the second.
  const lastSeen = seen.at(-1) as SseEventMessage;
  const rest = await readEventStream(`${again}/runs/crash-1/events`, { 'last-event-id': lastSeen.id });
  expect(rest.messages[0]?.data.seq).toBe(lastSeen.data.seq + 1);
  expect(rest.messages.map((m) => m.event)).toContain('EXECUTION_RESUMED');
  expect(rest.messages.filter((m) => m.event === 'EXECUTION_RESUMED')).toHaveLength(1);
  expect(rest.messages.at(-1)?.event).toBe('EXECUTION_COMPLETE');
  const all = await readEventStream(`${again}/runs/crash-1/events`);
  expect(all.messages.map((m) => Number(m.id))).toEqual(all.messages.map((_, index) => index));
  expect([...seen, ...rest.messages].map((m) => canonicalJson(m.data))).toEqual(all.messages.map((m) => canonicalJson(m.data)));

  // The run of an agent this server does not have: ended, and saying why.
  await until(async () => (await runState(again, 'orphan-1')).status === 'FAILED');
  const orphan = (await runState(again, 'orphan-1')).report as ExecutionReport;
  expect(orphan.termination.reason).toBe('error');
  expect(orphan.error?.code).toBe('OAO_ERR_INTERRUPTED');
  expect(orphan.error?.message).toContain('no agent named "retired" is registered here');
  expect(orphan.toolUsage.total).toBe(1);

  second.child.kill('SIGTERM');
  const stopped = await second.finished;
  expect(stopped.code, stopped.stderr).toBe(0);
}

describe('oao serve after kill -9 resumes the runs the dead server left live', () => {
  it('SQLite', { timeout: 90_000 }, async () => {
    await killAndServeAgain(`sqlite:${join(dir, 'sqlite', 'runs.db')}`, 'sqlite');
  });

  it('PostgreSQL', { timeout: 90_000 }, async () => {
    const database = await createTestDatabase('serve_resume');
    cleanups.push(() => database.drop());
    await killAndServeAgain(database.connectionString, 'postgres');
  });

  it('--no-resume leaves them interrupted', { timeout: 90_000 }, async () => {
    const store = `sqlite:${join(dir, 'no-resume', 'runs.db')}`;
    const countFile = join(dir, 'no-resume-count.txt');
    const first = serve(store, 'doomed', countFile);
    const base = await first.listening;
    expect((await post(base, '/runs', { agent: 'counter', task: { n: 1 }, executionId: 'left-1' })).status).toBe(202);
    await readUntil(`${base}/runs/left-1/events`, (m) => m.data.type === 'TOKEN_USAGE' && m.data.payload.step === 3);
    first.child.kill('SIGKILL');
    await first.finished;

    const second = serve(store, 'heir', countFile, ['--no-resume']);
    const again = await second.listening;
    await until(async () => (await runState(again, 'left-1')).status !== 'running');
    expect((await runState(again, 'left-1')).status).toBe('interrupted');
    // And it stays so for several sweep intervals (a sweeping server looks every lease TTL).
    const watchedFrom = performance.now();
    let status = 'interrupted';
    while (status === 'interrupted' && performance.now() - watchedFrom < 4 * Number(LEASE_TTL_MS)) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      status = (await runState(again, 'left-1')).status;
    }
    expect(status).toBe('interrupted');
    second.child.kill('SIGTERM');
    await second.finished;

    // A server that sweeps takes it up: the one resume in its log is that server's.
    const third = serve(store, 'heir', countFile);
    const last = await third.listening;
    await until(async () => (await runState(last, 'left-1')).status === 'SUCCESS');
    const resumes = (await readEventStream(`${last}/runs/left-1/events`)).messages.filter((m) => m.data.type === 'EXECUTION_RESUMED');
    expect(resumes).toHaveLength(1);
    expect(resumes[0]?.data.type === 'EXECUTION_RESUMED' && resumes[0].data.payload.owner).toContain(`:${String(third.child.pid)}:`);
    expect(countedCalls(countFile)).toEqual(['t1', 't2', 't3']);
  });
});
