/**
 * A second process on a SQLite store, for test/store/sqliteStore.test.ts. Run with
 * `node --conditions=oao-source --import tsx test/store/sqliteChild.ts <command> <path> ...`.
 * It answers on stdout, one JSON object per line.
 *
 * - `write <path> <prefix> <count>`: opens the store, prints `{"ready":true}`, waits for a line on
 *   stdin, then appends `count` runs (`<prefix>-<i>`, each in three appends) and prints
 *   `{"done":count}`.
 * - `fill <path>`: appends a small run, then a run too large for the file size limit the parent
 *   set (`ulimit -f`), and prints what the failed append threw and what the store holds after.
 * - `hold <path> <ms>`: takes the file's write lock with a raw connection (`BEGIN IMMEDIATE`),
 *   prints `{"locked":true}`, writes a counter row and commits after `ms`.
 * - `churn <path> <prefix> <count>`: opens the store with `maxRuns: 1`, prints `{"ready":true}`,
 *   waits for a line on stdin, then `count` times appends a whole run (`<prefix>-<i>`, one append)
 *   and prunes, so each run is deleted just after the next one is stored; prints `{"done":count}`.
 * - `stream <path> <everyAppends>`: appends whole runs (`stream-<i>`) without end, with background
 *   checkpoints every `everyAppends` appends; after every 100 it prints
 *   `{"appended":n,"mode":...,"completed":...}` (what `checkpoints()` says). Killed by the parent.
 * - `relative <dir>`: in `dir`, opens a store at the relative path `runs.db` with background
 *   checkpoints every 10 appends, moves to the system's temp directory, appends until the
 *   checkpoint thread has done a round or given up, and prints what `checkpoints()` says.
 * - `leave <path> <everyAppends>`: appends runs until the checkpoint thread is up, prints
 *   `{"background":true}` and returns without closing the store: the process must end by itself.
 */
import { tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import { OaoError } from '../../src/errors.js';
import type { OaoEvent } from '../../src/events/schema.js';
import { createSqliteStore } from '../../src/store/sqlite/index.js';
import { FAKE_EPOCH, batches, fakeRun } from './fakeLog.js';

const [command, path, ...rest] = process.argv.slice(2);
if (path === undefined) throw new Error('usage: sqliteChild.ts <write|churn|stream|leave|fill|hold> <path> ...');

function say(message: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

/** Says it is ready, then waits for the parent's line on stdin. */
async function readyThenGo(): Promise<void> {
  say({ ready: true });
  const lines = createInterface({ input: process.stdin });
  await new Promise<void>((resolve) => lines.once('line', () => resolve()));
  lines.close();
}

if (command === 'write') {
  const [prefix = 'child', countText = '1'] = rest;
  const store = createSqliteStore({ path });
  await readyThenGo();
  const count = Number(countText);
  for (let i = 0; i < count; i += 1) {
    const id = `${prefix}-${i}`;
    for (const batch of batches(fakeRun(id, { startedAt: FAKE_EPOCH + i * 1_000, steps: 2, agentName: prefix }), 1, 8)) {
      store.append(id, batch);
    }
  }
  store.close();
  say({ done: count });
} else if (command === 'churn') {
  const [prefix = 'churn', countText = '1'] = rest;
  const store = createSqliteStore({ path, maxRuns: 1 });
  await readyThenGo();
  const count = Number(countText);
  for (let i = 0; i < count; i += 1) {
    const id = `${prefix}-${i}`;
    store.append(id, fakeRun(id, { startedAt: FAKE_EPOCH + i, agentName: prefix }));
    store.prune();
  }
  store.close();
  say({ done: count });
} else if (command === 'stream') {
  const everyAppends = Number(rest[0] ?? 20);
  const store = createSqliteStore({ path, backgroundCheckpoint: { everyAppends } });
  for (let i = 0; ; i += 1) {
    const id = `stream-${i}`;
    store.append(id, fakeRun(id, { startedAt: FAKE_EPOCH + i, agentName: 'stream' }));
    if ((i + 1) % 100 === 0) say({ appended: i + 1, ...store.checkpoints() });
    // A moment for the parent's kill to land anywhere: in an append, in a checkpoint, between.
    if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
} else if (command === 'relative') {
  process.chdir(path);
  const store = createSqliteStore({ path: 'runs.db', backgroundCheckpoint: { everyAppends: 10 } });
  process.chdir(tmpdir());
  for (let i = 0; store.checkpoints().completed === 0 && store.checkpoints().failure === undefined; i += 1) {
    const id = `relative-${i}`;
    store.append(id, fakeRun(id, { startedAt: FAKE_EPOCH + i }));
    if (i >= 10) await new Promise((resolve) => setTimeout(resolve, 5));
  }
  say({ checkpoints: store.checkpoints() });
  store.close();
} else if (command === 'leave') {
  const everyAppends = Number(rest[0] ?? 10);
  const store = createSqliteStore({ path, backgroundCheckpoint: { everyAppends } });
  for (let i = 0; store.checkpoints().mode !== 'background'; i += 1) {
    const id = `leave-${i}`;
    store.append(id, fakeRun(id, { startedAt: FAKE_EPOCH + i }));
    if (i >= everyAppends) await new Promise((resolve) => setTimeout(resolve, 5));
  }
  say({ background: true });
} else if (command === 'fill') {
  const store = createSqliteStore({ path });
  store.append('small-1', fakeRun('small-1'));
  const big = fakeRun('big', { startedAt: FAKE_EPOCH + 1 });
  const start = big[0] as Extract<OaoEvent, { type: 'EXECUTION_START' }>;
  const huge: OaoEvent[] = [{ ...start, payload: { ...start.payload, task: 'x'.repeat(4_000_000) } }, ...big.slice(1)];
  let failure: Record<string, unknown> | null = null;
  try {
    store.append('big', huge);
  } catch (error) {
    failure = OaoError.isInstance(error)
      ? { code: error.code, message: error.message, details: error.details }
      : { raw: String(error) };
  }
  say({
    failure,
    bigEvents: store.events('big').length,
    bigRun: store.get('big') ?? null,
    smallEvents: store.events('small-1').length,
  });
  store.close();
} else if (command === 'hold') {
  const db = new Database(path);
  db.exec('BEGIN IMMEDIATE');
  db.prepare("INSERT INTO counters (scope, time_window, name, value) VALUES ('held', 'w', 'n', 1)").run();
  say({ locked: true });
  setTimeout(() => {
    db.exec('COMMIT');
    db.close();
    say({ released: true });
  }, Number(rest[0] ?? 200));
} else {
  throw new Error(`unknown command ${String(command)}`);
}
