import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { canonicalJson, type ExecutionReport } from '../src/index.js';
import { errorBodySchema, runStateSchema } from '../src/server/index.js';
import { openEventStream, readEventStream } from './sseMessages.js';
import { createTestDatabase } from './store/pgTestDb.js';

/**
 * The server on a durable store survives its process: a server is started on SQLite (or
 * PostgreSQL) in a child process, runs one run to its end and leaves another live, and is killed
 * with SIGKILL. A new process on the same store serves the finished run's report and events,
 * resumes an event stream exactly after the Last-Event-ID it is given, lists the killed live run
 * as interrupted once its lease has expired, and runs new runs. (The servers here do not take up
 * interrupted runs: test/serverResume.test.ts and test/cliServeResume.test.ts cover that.)
 */

const LEASE_TTL_MS = 400;
const children: ChildProcess[] = [];
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
  }
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface ServerProcess {
  readonly url: string;
  readonly child: ChildProcess;
}

async function startServerProcess(store: string): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--conditions=oao-source', '--import', 'tsx', 'test/fixtures/durableServerChild.ts', store, String(LEASE_TTL_MS), 'no-resume'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const url = await new Promise<string>((resolve, reject) => {
    lines.once('line', (line) => resolve((JSON.parse(line) as { url: string }).url));
    child.once('exit', (code) => reject(new Error(`the server process exited early (${String(code)}):\n${stderr}`)));
  });
  return { url, child };
}

async function kill(server: ServerProcess): Promise<void> {
  const exited = new Promise((resolve) => server.child.once('exit', resolve));
  server.child.kill('SIGKILL');
  await exited;
}

async function post(url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

async function get(url: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(url);
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

/** Polls until `check` holds; bounded by the test's own timeout, not by a wall-clock assertion. */
async function waitFor(check: () => Promise<boolean>): Promise<void> {
  for (;;) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function survivesSigkill(store: string): Promise<void> {
  const first = await startServerProcess(store);

  // One run to its end, and its events as a client saw them.
  const finished = await post(`${first.url}/run`, { agent: 'echo', task: 'keep me', executionId: 'finished-1' });
  expect(finished.status).toBe(200);
  const report = finished.json as unknown as ExecutionReport;
  expect(report.status).toBe('SUCCESS');
  const before = await readEventStream(`${first.url}/runs/finished-1/events`);
  expect(before.messages.at(-1)?.event).toBe('EXECUTION_COMPLETE');

  // One run left live, followed by a client until the process dies.
  expect((await post(`${first.url}/runs`, { agent: 'held', task: 'outlive me', executionId: 'live-1' })).status).toBe(202);
  await waitFor(async () => ((await get(`${first.url}/runs/live-1`)).json.counters as { toolCalls: number }).toolCalls === 1);
  const follower = await openEventStream(`${first.url}/runs/live-1/events`);
  const seen = [];
  for (let message = await follower.next(); message !== null; message = await follower.next()) {
    seen.push(message);
    if (message.event === 'TOOL_RESULT') break;
  }
  await kill(first);
  follower.close();
  expect(seen.at(-1)?.event).toBe('TOOL_RESULT');

  const second = await startServerProcess(store);

  // The finished run: the same report, the same events.
  const state = runStateSchema.parse((await get(`${second.url}/runs/finished-1`)).json);
  expect(state).toMatchObject({ status: 'SUCCESS', agent: 'echo', events: before.messages.length, state: 'TERMINATE' });
  expect(canonicalJson(state.report)).toBe(canonicalJson(report));
  expect(state.effectivePolicy).toEqual((before.messages[0]?.data as { payload: { policy: unknown } }).payload.policy);
  const all = await readEventStream(`${second.url}/runs/finished-1/events`);
  expect(all.messages.map((message) => canonicalJson(message.data))).toEqual(before.messages.map((message) => canonicalJson(message.data)));

  // Last-Event-ID resumes exactly after the given event, across the restart.
  const resumed = await readEventStream(`${second.url}/runs/finished-1/events`, { 'last-event-id': '4' });
  expect(resumed.messages.map((message) => message.id)).toEqual(before.messages.slice(5).map((message) => message.id));
  expect(resumed.messages[0]?.id).toBe('5');
  expect(resumed.messages.at(-1)?.event).toBe('EXECUTION_COMPLETE');

  // The killed live run. A client resuming after the tool call gets the rest of its stored log
  // (followed in the store while the run may still be leased), then the stream ends once the run
  // is known to be interrupted (its lease expired with its process).
  const toolCall = seen.at(-2);
  expect(toolCall?.event).toBe('TOOL_CALL');
  const rest = await readEventStream(`${second.url}/runs/live-1/events`, { 'last-event-id': toolCall?.id ?? '' });
  expect(rest.status).toBe(200);
  expect(rest.messages[0]?.data).toEqual(seen.at(-1)?.data);
  await waitFor(async () => (await get(`${second.url}/runs/live-1`)).json.status === 'interrupted');
  // Every event the client saw live was in the log: the stream sends an event once it is stored.
  const stored = (await readEventStream(`${second.url}/runs/live-1/events`)).messages;
  expect(stored.slice(0, seen.length).map((message) => canonicalJson(message.data))).toEqual(seen.map((message) => canonicalJson(message.data)));
  expect(stored.map((message) => Number(message.id))).toEqual(stored.map((_, index) => index));
  expect(rest.messages.map((message) => message.id)).toEqual(stored.slice(Number(toolCall?.id) + 1).map((message) => message.id));
  expect(stored.some((message) => message.event === 'EXECUTION_COMPLETE')).toBe(false);
  const interrupted = runStateSchema.parse((await get(`${second.url}/runs/live-1`)).json);
  expect(interrupted).toMatchObject({ status: 'interrupted', agent: 'held', report: null, termination: null, events: stored.length });
  expect(interrupted.counters.toolCalls).toBe(1);
  // Past its last event nothing more will come: 204 tells a client not to reconnect.
  expect((await readEventStream(`${second.url}/runs/live-1/events`, { 'last-event-id': String(stored.length - 1) })).status).toBe(204);
  const cancel = await post(`${second.url}/runs/live-1/cancel`, {});
  expect(cancel).toMatchObject({ status: 200, json: { cancelled: false, status: 'interrupted' } });
  // Its id stays taken.
  const reused = await post(`${second.url}/runs`, { agent: 'echo', task: 'x', executionId: 'live-1' });
  expect(reused.status).toBe(400);
  expect(errorBodySchema.parse(reused.json).error.details?.field).toBe('body.executionId');

  // The list: every run of both processes, with the right status; filters work on the store.
  const listed = (await get(`${second.url}/runs`)).json as { runs: { executionId: string; status: string }[]; total: number };
  expect(listed.runs.map((run) => [run.executionId, run.status])).toEqual([
    ['live-1', 'interrupted'],
    ['finished-1', 'SUCCESS'],
  ]);
  expect(((await get(`${second.url}/runs?status=interrupted`)).json as { total: number }).total).toBe(1);

  // New runs work.
  const fresh = await post(`${second.url}/run`, { agent: 'echo', task: 'after the crash' });
  expect(fresh).toMatchObject({ status: 200, json: { status: 'SUCCESS', finalOutput: 'echo: after the crash' } });
  expect(((await get(`${second.url}/runs?agent=echo`)).json as { total: number }).total).toBe(2);
  await kill(second);
}

describe('a server killed with SIGKILL, and a new one on the same store', () => {
  it('SQLite: serves the finished run, resumes streams, lists the live run as interrupted, runs new runs', { timeout: 60_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'oao-server-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await survivesSigkill(`sqlite:${join(dir, 'runs.db')}`);
  });

  it('PostgreSQL: the same, on a database of its own', { timeout: 60_000 }, async () => {
    const database = await createTestDatabase('server_restart');
    cleanups.push(() => database.drop());
    await survivesSigkill(database.connectionString);
  });
});
