// A tool call waits for a person while `oao serve` is killed with SIGKILL: real processes, one SQLite store.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { postJson, startOao } from './oaoProcess.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ExecutionReport } from '../src/index.js';
import { runStateSchema } from '../src/server/index.js';
import { repositoryRoot } from './cliIo.js';
import { countedCalls } from './fixtures/resumeAgent.js';
import { readEventStream } from './sseMessages.js';

const moduleFile = join(repositoryRoot, 'test/fixtures/serveApprovalAgents.ts');
const LEASE_TTL_MS = '300';

let dir: string;
const children = new Set<ChildProcess>();

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'oao-serve-approvals-'));
});

afterEach(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children.clear();
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** `oao serve` as a process of its own, from src/ through tsx. */
function serve(store: string, countFile: string, extra: readonly string[] = []) {
  const argv = ['serve', moduleFile, '--port', '0', '--store', store, '--lease-ttl-ms', LEASE_TTL_MS, '--no-dashboard', ...extra];
  return startOao(argv, { env: { OAO_TEST_COUNT_FILE: countFile }, children });
}

const post = postJson;

async function runState(base: string, id: string) {
  return runStateSchema.parse(await (await fetch(`${base}/runs/${id}`)).json());
}

async function pendingCalls(base: string): Promise<{ executionId: string; callId: string; tool: string; args: unknown }[]> {
  return ((await (await fetch(`${base}/approvals`)).json()) as { approvals: { executionId: string; callId: string; tool: string; args: unknown }[] }).approvals;
}

/** Polls until `check` holds; bounded by the test's own timeout. */
async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((resolve) => setTimeout(resolve, 50));
}

/** A server runs `mailer` until its sendEmail call waits for approval; then it is killed with SIGKILL. */
async function waitThenKill(store: string, countFile: string, executionId: string): Promise<void> {
  const first = serve(store, countFile);
  const base = await first.listening;
  expect((await post(base, '/runs', { agent: 'mailer', task: { to: 'ceo@example.com' }, executionId })).status).toBe(202);
  await until(async () => (await pendingCalls(base)).some((call) => call.executionId === executionId));
  expect((await runState(base, executionId)).state).toBe('EXECUTE');
  first.child.kill('SIGKILL');
  expect((await first.finished).signal).toBe('SIGKILL');
  expect(countedCalls(countFile)).toEqual([]);
}

describe('a tool call waiting for approval outlives its server (SQLite, kill -9)', () => {
  it('the next server resumes the run waiting again; the approval posted to it ends the run SUCCESS, the tool body ran once', { timeout: 90_000 }, async () => {
    const store = `sqlite:${join(dir, 'restart', 'runs.db')}`;
    const countFile = join(dir, 'restart-count.txt');
    await waitThenKill(store, countFile, 'mail-1');

    const second = serve(store, countFile);
    const base = await second.listening;
    // Resumed by the crash-recovery sweep once the dead server's lease has expired: it waits again.
    await until(async () => (await pendingCalls(base)).some((call) => call.executionId === 'mail-1'));
    expect(await pendingCalls(base)).toEqual([expect.objectContaining({ executionId: 'mail-1', callId: 't1', tool: 'sendEmail', args: { to: 'ceo@example.com', body: 'hello' } })]);
    expect((await runState(base, 'mail-1')).status).toBe('running');
    expect(countedCalls(countFile)).toEqual([]);

    const answer = await post(base, '/runs/mail-1/approvals/t1', { decision: 'approve', by: 'alice', reason: 'after the restart' });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toMatchObject({ decision: 'approved', by: 'alice', applied: 'live' });
    await until(async () => (await runState(base, 'mail-1')).status !== 'running');
    const report = (await runState(base, 'mail-1')).report as ExecutionReport;
    expect(report.status).toBe('SUCCESS');
    expect(report.approvals).toEqual([expect.objectContaining({ callId: 't1', decision: 'approved', by: 'alice', reason: 'after the restart' })]);
    expect(countedCalls(countFile)).toEqual(['t1']);
    expect(report.finalOutput).toMatchObject({ sentSoFar: 1 });

    // One request, one decision, one resume, one tool call in the whole log.
    const { messages } = await readEventStream(`${base}/runs/mail-1/events`);
    const count = (type: string) => messages.filter((m) => m.event === type).length;
    expect([count('APPROVAL_REQUESTED'), count('APPROVAL_GRANTED'), count('EXECUTION_RESUMED'), count('TOOL_RESULT')]).toEqual([1, 1, 1, 2]);
    expect((await post(base, '/runs/mail-1/approvals/t1', { decision: 'deny' })).status).toBe(409);

    second.child.kill('SIGTERM');
    const stopped = await second.finished;
    expect(stopped.code, stopped.stderr).toBe(0);
  });

  it('an approval given while no server runs it (--no-resume) is logged; the next server that takes the run up goes on from it without asking again', { timeout: 90_000 }, async () => {
    const store = `sqlite:${join(dir, 'logged', 'runs.db')}`;
    const countFile = join(dir, 'logged-count.txt');
    await waitThenKill(store, countFile, 'mail-2');

    const bystander = serve(store, countFile, ['--no-resume']);
    const base = await bystander.listening;
    await until(async () => (await runState(base, 'mail-2')).status === 'interrupted');
    expect(await pendingCalls(base)).toEqual([]);
    const answer = await post(base, '/runs/mail-2/approvals/t1', { decision: 'approve', by: 'bob', args: { to: 'team@example.com', body: 'hello all' } });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toMatchObject({ decision: 'approved', applied: 'logged' });
    expect((await runState(base, 'mail-2')).status).toBe('interrupted');
    expect(countedCalls(countFile)).toEqual([]);
    bystander.child.kill('SIGTERM');
    await bystander.finished;

    const heir = serve(store, countFile);
    const again = await heir.listening;
    await until(async () => (await runState(again, 'mail-2')).status === 'SUCCESS');
    const report = (await runState(again, 'mail-2')).report as ExecutionReport;
    expect(report.approvals).toEqual([expect.objectContaining({ decision: 'approved', by: 'bob', args: { to: 'team@example.com', body: 'hello all' } })]);
    expect(report.finalOutput).toMatchObject({ sent: { to: 'team@example.com' } });
    expect(countedCalls(countFile)).toEqual(['t1']);
    const { messages } = await readEventStream(`${again}/runs/mail-2/events`);
    expect(messages.filter((m) => m.event === 'APPROVAL_REQUESTED')).toHaveLength(1);
    heir.child.kill('SIGTERM');
    await heir.finished;
  });
});
