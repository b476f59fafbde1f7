import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OaoError, Orchestrator, canonicalJson } from '../../src/index.js';
import { STORE_SCHEMA_VERSION } from '../../src/store/RunStore.js';
import { encodeEvent } from '../../src/store/logRows.js';
import { loadBetterSqlite } from '../../src/store/sqlite/loadBetterSqlite.js';
import { SQLITE_SCHEMA_VERSION, createSqliteStore, sqliteMigrations, type SqliteRunStore } from '../../src/store/sqlite/index.js';
import { DummyAgent, waitFor } from '../helpers.js';
import { FAKE_EPOCH, batches, fakeRun, reportOf, texts } from './fakeLog.js';
import { describeRunStoreConformance } from './runStoreConformance.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const childScript = fileURLToPath(new URL('./sqliteChild.ts', import.meta.url));

let dir: string;
const open: SqliteRunStore[] = [];
const children = new Set<ChildProcess>();
const immutable = new Set<string>();

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'oao-sqlite-'));
});

afterEach(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children.clear();
  for (const store of open.splice(0)) store.close();
  for (const file of immutable) spawnSync('chattr', ['-i', file]);
  immutable.clear();
  rmSync(dir, { recursive: true, force: true });
});

function store(options: Partial<Parameters<typeof createSqliteStore>[0]> = {}): SqliteRunStore {
  const created = createSqliteStore({ path: join(dir, 'runs.db'), ...options });
  open.push(created);
  return created;
}

/** The typed error `fn` throws (fails the test when it returns). */
function thrown(fn: () => unknown): OaoError {
  try {
    fn();
  } catch (error) {
    expect(OaoError.isInstance(error), `not an OaoError: ${String(error)}`).toBe(true);
    return error as OaoError;
  }
  throw new Error('expected a typed error, but the call returned');
}

interface Child {
  /** Resolves with the first message (a JSON line on stdout) that has `key`; rejects if the child exits first. */
  next(key: string): Promise<Record<string, unknown>>;
  /** Resolves with the first message `accept` takes; rejects if the child exits first. */
  until(accept: (message: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  send(line: string): void;
  kill(signal: NodeJS.Signals): void;
  /** Settles when the process has ended, with its exit code or signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs test/store/sqliteChild.ts in a second Node process; `fileSizeBlocks` sets `ulimit -f` on it. */
function child(args: readonly string[], fileSizeBlocks?: number): Child {
  const nodeArgs = ['--conditions=oao-source', '--import', 'tsx', childScript, ...args];
  const proc =
    fileSizeBlocks === undefined
      ? spawn(process.execPath, nodeArgs, { cwd: root })
      : spawn('sh', ['-c', `ulimit -f ${fileSizeBlocks} && exec "$0" "$@"`, process.execPath, ...nodeArgs], { cwd: root });
  children.add(proc);
  const messages: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  let stderr = '';
  let exit: string | undefined;
  proc.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  createInterface({ input: proc.stdout }).on('line', (line) => {
    try {
      messages.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      messages.push({ unparsed: line });
    }
    for (const wake of waiters) wake();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.on('exit', (code, signal) => {
      exit = `the child exited (${code ?? signal}) ${stderr}`;
      for (const wake of waiters) wake();
      resolve({ code, signal });
    });
  });
  const until = (accept: (message: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const found = messages.find(accept);
        if (found !== undefined) {
          waiters.delete(check);
          resolve(found);
        } else if (exit !== undefined) {
          waiters.delete(check);
          reject(new Error(exit));
        }
      };
      waiters.add(check);
      check();
    });
  return {
    next: (key) => until((message) => key in message),
    until,
    send: (line) => proc.stdin.write(`${line}\n`),
    kill: (signal) => proc.kill(signal),
    exited,
  };
}

/** Waits for the child to be ready and tells it to go; the function returned says whether it has printed `done`. */
async function go(worker: Child): Promise<() => boolean> {
  await worker.next('ready');
  let done = false;
  void worker.next('done').then(
    () => (done = true),
    () => (done = true),
  );
  worker.send('go');
  return () => done;
}

describeRunStoreConformance('sqlite', (() => {
  let suiteDir: string | undefined;
  let lastPath: string | undefined;
  let files = 0;
  return {
    open: async (options) => {
      suiteDir ??= mkdtempSync(join(tmpdir(), 'oao-sqlite-conformance-'));
      lastPath = join(suiteDir, `store-${(files += 1)}.db`);
      return createSqliteStore({ ...options, path: lastPath });
    },
    reopen: async () => createSqliteStore({ path: lastPath ?? '' }),
    cleanup: async () => {
      if (suiteDir !== undefined) rmSync(suiteDir, { recursive: true, force: true });
      suiteDir = undefined;
      lastPath = undefined;
    },
  };
})());

describe('createSqliteStore: the file', () => {
  it('creates the file and its directory, in WAL mode, with the schema version recorded', () => {
    const path = join(dir, 'nested', 'deeper', 'runs.db');
    const events = fakeRun('run-1');
    const sqlite = store({ path });
    expect(sqlite.synchronous).toBe(true);
    expect(sqlite.path).toBe(path);
    sqlite.append('run-1', events);

    const raw = new Database(path, { readonly: true });
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(raw.prepare('SELECT version FROM schema_version ORDER BY version').all()).toEqual(sqliteMigrations.map(({ version }) => ({ version })));
      const rows = raw.prepare('SELECT execution_id, seq, version, body FROM events ORDER BY seq').all();
      expect(rows).toEqual(events.map((event) => ({ execution_id: 'run-1', seq: event.seq, version: STORE_SCHEMA_VERSION, body: encodeEvent(event) })));
    } finally {
      raw.close();
    }
  });

  it.each(['NORMAL', 'FULL'] as const)('keeps runs, leases and counters across close and reopen (synchronous %s)', (synchronous) => {
    let now = FAKE_EPOCH;
    const options = { synchronous, now: () => now };
    const first = store(options);
    const done = fakeRun('done', { startedAt: FAKE_EPOCH });
    const failed = fakeRun('failed', { startedAt: FAKE_EPOCH + 1, status: 'FAILED', steps: 2 });
    const running = fakeRun('running', { startedAt: FAKE_EPOCH + 2, status: 'running' });
    for (const [id, log] of [['done', done], ['failed', failed], ['running', running]] as const) {
      for (const batch of batches(log, 1, 6)) first.append(id, batch);
    }
    const lease = first.acquireLease('running', 'worker-a', 1_000);
    first.charge('tenant-1', '2026-01', { tokens: 120, costMicros: 7 });
    const listed = first.list();
    first.close();

    const second = store(options);
    expect(texts(second.events('done'))).toEqual(texts(done));
    expect(texts(second.events('failed', { fromSeq: 3 }))).toEqual(texts(failed.slice(3)));
    expect(second.report('failed')).toEqual(reportOf(failed));
    expect(second.report('running')).toBeUndefined();
    expect(second.list()).toEqual(listed);
    expect(second.get('running')?.status).toBe('running');
    expect(second.counters('tenant-1', '2026-01')).toEqual({ costMicros: 7, tokens: 120 });
    // The lease survived: another owner cannot take it until it expires, then gets the next token.
    expect(second.acquireLease('running', 'worker-b', 1_000)).toBeUndefined();
    now += 1_000;
    expect(second.get('running')?.status).toBe('interrupted');
    expect(second.acquireLease('running', 'worker-b', 1_000)?.token).toBe((lease?.token ?? 0) + 1);
  });

  it('answers synchronously, so runSync records a whole run to it', () => {
    const sqlite = store();
    const report = new Orchestrator({ store: sqlite }).runSync({ agent: new DummyAgent(), task: 'durable' });
    expect(sqlite.get(report.executionId)).toMatchObject({ status: 'SUCCESS', eventCount: sqlite.events(report.executionId).length });
    expect(sqlite.report(report.executionId)).toEqual(report);
  });

  it('refuses a file written by a newer schema version with OAO_ERR_LOG_VERSION, and leaves it as it was', () => {
    const path = join(dir, 'runs.db');
    store({ path }).append('run-1', fakeRun('run-1'));
    open.pop()?.close();
    const raw = new Database(path);
    raw.prepare('INSERT INTO schema_version (version, applied_at) VALUES (?, 0)').run(SQLITE_SCHEMA_VERSION + 1);
    raw.close();
    const before = readFileSync(path);

    const error = thrown(() => createSqliteStore({ path }));
    expect(error.code).toBe('OAO_ERR_LOG_VERSION');
    expect(error.details).toEqual({ path, version: SQLITE_SCHEMA_VERSION + 1, supportedVersion: SQLITE_SCHEMA_VERSION });
    expect(error.message).toContain(`schema version ${SQLITE_SCHEMA_VERSION + 1}`);
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(thrown(() => createSqliteStore({ path, readonly: true })).code).toBe('OAO_ERR_LOG_VERSION');
  });

  it('migrates a file of schema version 1: runs, logs (canonical rows), leases and reports are kept, and logs continue', () => {
    const path = join(dir, 'v1.db');
    const raw = new Database(path);
    raw.pragma('journal_mode = WAL');
    raw.exec('CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
    raw.exec(sqliteMigrations[0]!.sql);
    raw.prepare('INSERT INTO schema_version (version, applied_at) VALUES (1, 0)').run();
    // The rows as release 1 wrote them: canonical JSON bodies (sorted keys), a run index, a lease.
    const done = fakeRun('done', { startedAt: FAKE_EPOCH });
    const finished = fakeRun('running', { startedAt: FAKE_EPOCH + 1, steps: 2 });
    const insertEvent = raw.prepare('INSERT INTO events (execution_id, seq, version, type, body) VALUES (?, ?, 1, ?, ?)');
    const insertRun = raw.prepare('INSERT INTO runs (execution_id, agent_name, started_at, event_count) VALUES (?, ?, ?, ?)');
    for (const [id, log] of [['done', done], ['running', finished.slice(0, 6)]] as const) {
      for (const event of log) insertEvent.run(id, event.seq, event.type, canonicalJson(event));
      insertRun.run(id, 'fake-agent', Math.trunc(log[0]!.timestamp), log.length);
    }
    const report = reportOf(done)!;
    raw.prepare('UPDATE runs SET outcome = ?, finished_at = ?, finished_ms = ?, report_seq = ? WHERE execution_id = ?')
      .run(report.status, report.finishedAt, Date.parse(report.finishedAt), done.length - 1, 'done');
    raw.prepare('INSERT INTO leases (execution_id, owner, token, expires_at) VALUES (?, ?, ?, ?)').run('running', 'worker-a', 3, FAKE_EPOCH + 60_000);
    raw.close();
    expect(JSON.stringify(done[5])).not.toBe(canonicalJson(done[5]));

    const sqlite = store({ path, now: () => FAKE_EPOCH + 10 });
    const check = new Database(path, { readonly: true });
    try {
      expect(check.prepare('SELECT version FROM schema_version ORDER BY version').all()).toEqual(sqliteMigrations.map(({ version }) => ({ version })));
    } finally {
      check.close();
    }
    expect(texts(sqlite.events('done'))).toEqual(texts(done));
    expect(sqlite.report('done')).toEqual(report);
    expect(sqlite.list().runs.map((run) => [run.executionId, run.status, run.eventCount])).toEqual([
      ['running', 'running', 6],
      ['done', 'SUCCESS', done.length],
    ]);
    // A retried append compares with the canonical rows: the same events are a no-op, another one a conflict.
    sqlite.append('done', done);
    expect(thrown(() => sqlite.append('done', [{ ...done[4]!, timestamp: done[4]!.timestamp + 1 }])).code).toBe('OAO_ERR_LOG_CONFLICT');
    // The lease holds its token: the holder finishes the run, another owner is fenced.
    const lease = { executionId: 'running', owner: 'worker-a', token: 3, expiresAt: FAKE_EPOCH + 60_000 };
    expect(sqlite.acquireLease('running', 'worker-b', 1_000)).toBeUndefined();
    sqlite.append('running', finished.slice(6), { lease, release: true });
    expect(texts(sqlite.events('running'))).toEqual(texts(finished));
    expect(sqlite.get('running')?.status).toBe('SUCCESS');
    // New runs go on after the migrated ones, and retention deletes whole runs of either kind.
    const later = fakeRun('later', { startedAt: FAKE_EPOCH + 2 });
    sqlite.append('later', later);
    expect(texts(sqlite.events('later', { fromSeq: 3 }))).toEqual(texts(later.slice(3)));
    // A writer of schema 1 still running on the file cannot insert into the new log; a row keyed by
    // hand must match its seq.
    const stale = new Database(path);
    try {
      expect(() => stale.prepare('INSERT INTO events (execution_id, seq, version, type, body) VALUES (?, ?, 1, ?, ?)')).toThrow(/no column named type/);
      const keyed = stale.prepare('INSERT INTO events (event_key, execution_id, seq, version, body) VALUES (?, ?, ?, 1, ?)');
      expect(() => keyed.run(2 ** 40 + 7, 'later', 8, '{}')).toThrow(expect.objectContaining({ code: 'SQLITE_CONSTRAINT_CHECK' }));
    } finally {
      stale.close();
    }
    open.pop()?.close();
    const pruning = store({ path, maxRuns: 1 });
    expect(pruning.prune()).toBe(2);
    expect(pruning.list().runs.map((run) => run.executionId)).toEqual(['later']);
    expect(pruning.events('done')).toEqual([]);
    expect(texts(pruning.events('later'))).toEqual(texts(later));
  });

  it('records a trivial run in one write transaction, its lease taken and released in it', async () => {
    const path = join(dir, 'runs.db');
    const sqlite = store({ path });
    const orchestrator = new Orchestrator({ store: sqlite, owner: 'worker-1', leaseTtlMs: 60_000 });
    await orchestrator.run({ agent: new DummyAgent(), task: 'warm-up' });
    const raw = new Database(path, { readonly: true });
    let commits: number;
    try {
      const pageSize = raw.pragma('page_size', { simple: true }) as number;
      const frames = (): Buffer => readFileSync(`${path}-wal`).subarray(32);
      // Keep a reader on the current snapshot, so that the write-ahead log only grows.
      raw.prepare('BEGIN').run();
      raw.prepare('SELECT count(*) FROM runs').get();
      const before = frames().length;
      const report = await orchestrator.run({ agent: new DummyAgent(), task: 'durable', executionId: 'one-write' });
      expect(report.status).toBe('SUCCESS');
      // A frame whose header holds the database size after the commit ends a transaction.
      const written = frames().subarray(before);
      commits = 0;
      for (let at = 0; at + 24 + pageSize <= written.length; at += 24 + pageSize) if (written.readUInt32BE(at + 4) !== 0) commits += 1;
    } finally {
      raw.close();
    }
    expect(commits).toBe(1);
    expect(sqlite.get('one-write')?.status).toBe('SUCCESS');
    // Released by that write: another owner takes the run at once, with the next token.
    expect(sqlite.acquireLease('one-write', 'worker-2', 1_000)).toMatchObject({ owner: 'worker-2', token: 2 });
  });

  it('refuses a file that is not a SQLite database with OAO_ERR_STORE', () => {
    const path = join(dir, 'notes.txt');
    writeFileSync(path, 'these are not the runs you are looking for\n'.repeat(200));
    const error = thrown(() => createSqliteStore({ path }));
    expect(error.code).toBe('OAO_ERR_STORE');
    expect(error.details).toMatchObject({ code: 'SQLITE_NOTADB', path, operation: 'open' });
    expect(error.message).toContain('not a SQLite database');
  });

  it('a directory that cannot be created is OAO_ERR_STORE naming it', () => {
    const blocker = join(dir, 'plain-file');
    writeFileSync(blocker, '');
    const path = join(blocker, 'runs', 'runs.db');
    const error = thrown(() => createSqliteStore({ path }));
    expect(error.code).toBe('OAO_ERR_STORE');
    expect(error.details).toMatchObject({ code: 'ENOTDIR', path, directory: join(blocker, 'runs'), operation: 'open' });
  });

  it('checks its options eagerly', () => {
    const field = (options: unknown): unknown => thrown(() => createSqliteStore(options as never)).details?.field;
    expect(field(undefined)).toBe('options');
    expect(field({})).toBe('path');
    expect(field({ path: ' ' })).toBe('path');
    expect(field({ path: join(dir, 'a.db'), synchronous: 'OFF' })).toBe('synchronous');
    expect(field({ path: join(dir, 'a.db'), busyTimeoutMs: -1 })).toBe('busyTimeoutMs');
    expect(field({ path: join(dir, 'a.db'), busyTimeoutMs: 1.5 })).toBe('busyTimeoutMs');
    expect(field({ path: join(dir, 'a.db'), maxRuns: -1 })).toBe('maxRuns');
    expect(field({ path: join(dir, 'a.db'), now: 5 })).toBe('now');
    expect(field({ path: ':memory:', readonly: true })).toBe('readonly');
  });
});

describe('createSqliteStore: damaged logs', () => {
  function stored(): { path: string; sqlite: SqliteRunStore; raw: Database.Database } {
    const path = join(dir, 'runs.db');
    const sqlite = store({ path });
    sqlite.append('run-1', fakeRun('run-1'));
    sqlite.append('run-2', fakeRun('run-2', { startedAt: FAKE_EPOCH + 1 }));
    const raw = new Database(path);
    return { path, sqlite, raw };
  }

  it('a row that is not JSON is OAO_ERR_LOG_CORRUPT naming the run and the seq', () => {
    const { sqlite, raw } = stored();
    raw.prepare("UPDATE events SET body = '{\"type\": \"STATE_ENTER\", oops' WHERE execution_id = 'run-1' AND seq = 4").run();
    raw.close();
    const error = thrown(() => sqlite.events('run-1'));
    expect(error.code).toBe('OAO_ERR_LOG_CORRUPT');
    expect(error.details).toEqual({ executionId: 'run-1', seq: 4 });
    expect(error.message).toContain('run-1');
    // Reads that do not reach the damaged row, and other runs, still work.
    expect(sqlite.events('run-1', { fromSeq: 5 })).toHaveLength(8);
    expect(sqlite.events('run-2')).toHaveLength(13);
  });

  it('a row of an unknown type, or of another run, is OAO_ERR_LOG_CORRUPT', () => {
    const { sqlite, raw } = stored();
    const body = raw.prepare("SELECT body FROM events WHERE execution_id = 'run-1' AND seq = 2").pluck().get() as string;
    raw.prepare("UPDATE events SET body = ? WHERE execution_id = 'run-1' AND seq = 2").run(body.replace('"STATE_EXIT"', '"STATE_WANDER"'));
    const other = raw.prepare("SELECT body FROM events WHERE execution_id = 'run-2' AND seq = 3").pluck().get() as string;
    raw.prepare("UPDATE events SET body = ? WHERE execution_id = 'run-2' AND seq = 3").run(other.replaceAll('run-2', 'run-9'));
    raw.close();
    expect(thrown(() => sqlite.events('run-1')).details).toEqual({ executionId: 'run-1', seq: 2 });
    expect(thrown(() => sqlite.events('run-2')).details).toEqual({ executionId: 'run-2', seq: 3 });
  });

  it('a missing row, in the middle or at the end of a log, is OAO_ERR_LOG_CORRUPT', () => {
    const { sqlite, raw } = stored();
    raw.prepare("DELETE FROM events WHERE execution_id = 'run-1' AND seq = 6").run();
    raw.prepare("DELETE FROM events WHERE execution_id = 'run-2' AND seq = 12").run();
    raw.close();
    const middle = thrown(() => sqlite.events('run-1'));
    expect([middle.code, middle.details]).toEqual(['OAO_ERR_LOG_CORRUPT', { executionId: 'run-1', seq: 6 }]);
    const end = thrown(() => sqlite.events('run-2', { fromSeq: 10 }));
    expect([end.code, end.details]).toEqual(['OAO_ERR_LOG_CORRUPT', { executionId: 'run-2', seq: 12 }]);
    expect(thrown(() => sqlite.report('run-2')).code).toBe('OAO_ERR_LOG_CORRUPT');
  });

  it('a log that lost every row is OAO_ERR_LOG_CORRUPT at its first missing seq, not an empty log', () => {
    const { sqlite, raw } = stored();
    raw.prepare("DELETE FROM events WHERE execution_id = 'run-1'").run();
    raw.prepare("DELETE FROM events WHERE execution_id = 'run-2' AND seq >= 11").run();
    raw.close();
    expect(thrown(() => sqlite.events('run-1')).details).toEqual({ executionId: 'run-1', seq: 0 });
    // Read from past the rows that are left: the log's index still counts 13 events.
    expect(thrown(() => sqlite.events('run-2', { fromSeq: 11 })).details).toEqual({ executionId: 'run-2', seq: 11 });
    expect(thrown(() => sqlite.events('run-2', { fromSeq: 12 })).details).toEqual({ executionId: 'run-2', seq: 12 });
    // At or past the count the log is read as ending there; an unknown run is an empty log.
    expect(sqlite.events('run-2', { fromSeq: 13 })).toEqual([]);
    expect(sqlite.events('run-2', { fromSeq: 400 })).toEqual([]);
    expect(sqlite.events('run-3')).toEqual([]);
  });

  it('a damaged report row makes report() OAO_ERR_LOG_CORRUPT', () => {
    const { sqlite, raw } = stored();
    raw.prepare("UPDATE events SET body = 'null' WHERE execution_id = 'run-1' AND seq = 12").run();
    raw.close();
    const error = thrown(() => sqlite.report('run-1'));
    expect([error.code, error.details]).toEqual(['OAO_ERR_LOG_CORRUPT', { executionId: 'run-1', seq: 12 }]);
  });

  it("a run index whose report seq names no EXECUTION_COMPLETE makes report() OAO_ERR_LOG_CORRUPT, never another run's report", () => {
    const { sqlite, raw } = stored();
    const setReportSeq = raw.prepare("UPDATE runs SET report_seq = ? WHERE execution_id = 'run-1'");
    // Past the log's end; an event that is not the report; and 2^32 + 12, which as a row key
    // would be run-2's EXECUTION_COMPLETE.
    const cases: Array<[number, RegExp]> = [
      [40, /the log has no such row/],
      [3, /but it is STATE_ENTER/],
      [2 ** 32 + 12, /the log has no such row/],
    ];
    for (const [seq, message] of cases) {
      setReportSeq.run(seq);
      const error = thrown(() => sqlite.report('run-1'));
      expect([error.code, error.details], String(seq)).toEqual(['OAO_ERR_LOG_CORRUPT', { executionId: 'run-1', seq }]);
      expect(error.message).toMatch(message);
    }
    raw.close();
    expect(sqlite.report('run-2')?.executionId).toBe('run-2');
  });

  it('a row written by a newer row format is OAO_ERR_LOG_VERSION', () => {
    const { sqlite, raw } = stored();
    raw.prepare("UPDATE events SET version = ? WHERE execution_id = 'run-1' AND seq = 3").run(STORE_SCHEMA_VERSION + 1);
    raw.close();
    const error = thrown(() => sqlite.events('run-1'));
    expect(error.code).toBe('OAO_ERR_LOG_VERSION');
    expect(error.details).toMatchObject({ executionId: 'run-1', seq: 3, version: STORE_SCHEMA_VERSION + 1 });
  });

  it('damaged database pages are OAO_ERR_LOG_CORRUPT with SQLite code, never a raw driver error', () => {
    const path = join(dir, 'runs.db');
    const sqlite = store({ path });
    for (let i = 0; i < 30; i += 1) sqlite.append(`run-${i}`, fakeRun(`run-${i}`, { startedAt: FAKE_EPOCH + i }));
    open.pop()?.close();
    // Overwrite every page after the schema page with garbage.
    const fd = openSync(path, 'r+');
    const pageSize = 4096;
    for (let page = 2; page < statSync(path).size / pageSize; page += 1) writeSync(fd, Buffer.alloc(pageSize, 0x5a), 0, pageSize, page * pageSize);
    closeSync(fd);

    const damaged = store({ path });
    for (const [operation, call] of [
      ['events', () => damaged.events('run-3')],
      ['list', () => damaged.list()],
      ['append', () => damaged.append('run-new', fakeRun('run-new'))],
    ] as const) {
      const error = thrown(call);
      expect(error.code, operation).toBe('OAO_ERR_LOG_CORRUPT');
      expect(error.details, operation).toMatchObject({ code: 'SQLITE_CORRUPT', path, operation });
    }
  });
});

describe('createSqliteStore: a store that cannot write', () => {
  function fill(path: string): SqliteRunStore {
    const sqlite = store({ path });
    sqlite.append('kept', fakeRun('kept'));
    sqlite.acquireLease('kept', 'worker-a', 60_000);
    sqlite.charge('tenant', 'w', { tokens: 5 });
    return sqlite;
  }

  function expectNoWrite(sqlite: SqliteRunStore, code: string): void {
    const failure = thrown(() => sqlite.append('new-run', fakeRun('new-run')));
    expect(failure.code).toBe('OAO_ERR_STORE');
    expect(failure.details).toMatchObject({ code, operation: 'append', executionId: 'new-run' });
    expect(thrown(() => sqlite.charge('tenant', 'w', { tokens: 1 })).code).toBe('OAO_ERR_STORE');
    expect(thrown(() => sqlite.acquireLease('other', 'worker-b', 1_000)).code).toBe('OAO_ERR_STORE');
    // Nothing of the failed writes, everything from before.
    expect(sqlite.get('new-run')).toBeUndefined();
    expect(sqlite.events('new-run')).toEqual([]);
    expect(sqlite.events('kept')).toHaveLength(13);
    expect(sqlite.counters('tenant', 'w')).toEqual({ tokens: 5 });
    expect(sqlite.list().runs.map((run) => run.executionId)).toEqual(['kept']);
  }

  it('opened with readonly: true, reads work and every write is OAO_ERR_STORE (SQLITE_READONLY)', () => {
    const path = join(dir, 'runs.db');
    fill(path);
    const reader = store({ path, readonly: true });
    expectNoWrite(reader, 'SQLITE_READONLY');
    expect(thrown(() => createSqliteStore({ path: join(dir, 'missing.db'), readonly: true })).details).toMatchObject({ code: 'SQLITE_CANTOPEN' });
  });

  it('an immutable file (chattr +i, which stops root too) makes append fail with OAO_ERR_STORE', (context) => {
    const path = join(dir, 'runs.db');
    fill(path);
    open.pop()?.close();
    if (spawnSync('chattr', ['+i', path]).status !== 0) {
      context.skip('chattr +i is not supported here (needs ext4/xfs and CAP_LINUX_IMMUTABLE)');
      return;
    }
    immutable.add(path);
    expectNoWrite(store({ path }), 'SQLITE_READONLY');
  });

  it('a full disk (a file size limit on a second process) fails the append with OAO_ERR_STORE and stores nothing of it', async () => {
    const path = join(dir, 'runs.db');
    // ulimit -f counts 512- or 1024-byte blocks: 1-2 MB, well below the 4 MB batch.
    const answer = await child(['fill', path], 2_048).next('failure');
    expect(answer.failure).toMatchObject({ code: 'OAO_ERR_STORE', details: { path, operation: 'append', executionId: 'big' } });
    expect(['SQLITE_FULL', 'SQLITE_IOERR_WRITE', 'SQLITE_IOERR']).toContain((answer.failure as { details: { code: string } }).details.code);
    expect(answer).toMatchObject({ bigEvents: 0, bigRun: null, smallEvents: 13 });
    const after = store({ path });
    expect(after.get('big')).toBeUndefined();
    expect(after.list().runs.map((run) => run.executionId)).toEqual(['small-1']);
  }, 20_000);
});

describe('createSqliteStore: two processes on one file', () => {
  it('a second process appends runs while this one reads and lists them', async () => {
    const path = join(dir, 'runs.db');
    const reader = store({ path });
    const count = 150;
    const writer = child(['write', path, 'child', String(count)]);
    const done = await go(writer);
    let reads = 0;
    while (!done()) {
      const runs = reader.list({ agentName: 'child' }, { limit: 1_000 }).runs;
      for (const run of runs) {
        // Every run the list shows reads back whole, up to at least the count it listed.
        const events = reader.events(run.executionId);
        expect(events.length).toBeGreaterThanOrEqual(run.eventCount);
        if (run.status === 'SUCCESS') expect(reader.report(run.executionId)?.executionId).toBe(run.executionId);
      }
      reads += 1;
      await new Promise((resolve) => setImmediate(resolve));
    }
    await writer.next('done');
    expect(reads).toBeGreaterThan(0);
    const final = reader.list({ agentName: 'child' }, { limit: 1_000 }).runs;
    expect(final).toHaveLength(count);
    expect(final.every((run) => run.status === 'SUCCESS')).toBe(true);
    for (const i of [0, 74, 149]) {
      const id = `child-${i}`;
      expect(texts(reader.events(id))).toEqual(texts(fakeRun(id, { startedAt: FAKE_EPOCH + i * 1_000, steps: 2, agentName: 'child' })));
    }
  }, 30_000);

  it('both processes append to different runs at once and every log is intact', async () => {
    const path = join(dir, 'runs.db');
    const mine = store({ path });
    const count = 120;
    const other = child(['write', path, 'child', String(count)]);
    await other.next('ready');
    other.send('go');
    for (let i = 0; i < count; i += 1) {
      const id = `parent-${i}`;
      for (const batch of batches(fakeRun(id, { startedAt: FAKE_EPOCH + i * 1_000, steps: 2, agentName: 'parent' }), 1, 8)) mine.append(id, batch);
    }
    await other.next('done');
    for (const prefix of ['parent', 'child']) {
      const runs = mine.list({ agentName: prefix }, { limit: 1_000 }).runs;
      expect(runs).toHaveLength(count);
      for (let i = 0; i < count; i += 1) {
        const id = `${prefix}-${i}`;
        expect(texts(mine.events(id)), id).toEqual(texts(fakeRun(id, { startedAt: FAKE_EPOCH + i * 1_000, steps: 2, agentName: prefix })));
      }
    }
  }, 30_000);

  it("report() of a run another process is deleting is the report or undefined, never a damaged log", async () => {
    // The run's index row and its EXECUTION_COMPLETE row must be read in one snapshot: read one
    // after the other, a prune committed in between leaves an index that names a row gone.
    const path = join(dir, 'runs.db');
    const reader = store({ path });
    const count = 3_000;
    const churn = child(['churn', path, 'churn', String(count)]);
    const done = await go(churn);
    let found = 0;
    let gone = 0;
    let next = 0;
    while (!done()) {
      // The newest run in the file is deleted as soon as the child has stored the one after it.
      const newest = reader.list({ agentName: 'churn' }, { limit: 1 }).runs[0];
      if (newest !== undefined) next = Number(newest.executionId.slice('churn-'.length));
      for (let round = 0; round < 50; round += 1) {
        const report = reader.report(`churn-${next}`);
        if (report === undefined) gone += 1;
        else {
          expect(report.executionId).toBe(`churn-${next}`);
          found += 1;
        }
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    await churn.next('done');
    expect(found).toBeGreaterThan(0);
    expect(gone).toBeGreaterThan(0);
  }, 60_000);

  it("an append waits for another process's write (busyTimeoutMs) instead of failing", async () => {
    const path = join(dir, 'runs.db');
    const sqlite = store({ path });
    const holder = child(['hold', path, '300']);
    await holder.next('locked');
    sqlite.append('run-1', fakeRun('run-1'));
    await holder.next('released');
    expect(sqlite.events('run-1')).toHaveLength(13);
    expect(sqlite.counters('held', 'w')).toEqual({ n: 1 });
  }, 20_000);

  it('an append that waits longer than busyTimeoutMs fails with OAO_ERR_STORE and stores nothing', async () => {
    const path = join(dir, 'runs.db');
    const sqlite = store({ path, busyTimeoutMs: 0 });
    const holder = child(['hold', path, '300']);
    await holder.next('locked');
    const error = thrown(() => sqlite.append('run-1', fakeRun('run-1')));
    expect(error.code).toBe('OAO_ERR_STORE');
    expect(error.retryable).toBe(true);
    expect(error.details).toMatchObject({ code: 'SQLITE_BUSY', operation: 'append' });
    await holder.next('released');
    expect(sqlite.get('run-1')).toBeUndefined();
    sqlite.append('run-1', fakeRun('run-1'));
    expect(sqlite.events('run-1')).toHaveLength(13);
  }, 20_000);
});

/** The checkpoint sequence number in a WAL file's header: SQLite raises it each time the log starts over. */
function walRestarts(path: string): number {
  const fd = openSync(`${path}-wal`, 'r');
  try {
    const header = Buffer.alloc(16);
    readSync(fd, header, 0, 16, 0);
    return header.readUInt32BE(12);
  } finally {
    closeSync(fd);
  }
}

/** Runs the file holds, and how many of them are finished, read with a connection of its own. */
function runCounts(path: string): { runs: number; finished: number } {
  const raw = new Database(path, { readonly: true });
  try {
    return raw.prepare('SELECT COUNT(*) AS runs, COUNT(outcome) AS finished FROM runs').get() as { runs: number; finished: number };
  } finally {
    raw.close();
  }
}

describe('createSqliteStore: checkpoints on a thread of their own', () => {
  it('start after everyAppends appends, and the log starts over while appends go on', async () => {
    const path = join(dir, 'runs.db');
    const sqlite = store({ path, backgroundCheckpoint: { everyAppends: 25 } });
    let next = 0;
    const appendRun = (): void => {
      const id = `run-${next}`;
      sqlite.append(id, fakeRun(id, { startedAt: FAKE_EPOCH + next }));
      next += 1;
    };
    for (let i = 0; i < 24; i += 1) appendRun();
    expect(sqlite.checkpoints()).toEqual({ mode: 'inline', completed: 0 });
    appendRun();
    await waitFor(() => sqlite.checkpoints().mode === 'background', 5);

    // Appends back to back, never returning to the event loop: a checkpoint another thread runs
    // cannot catch up with them, so the log starts over only because the store copies the rest.
    const restartsBefore = walRestarts(path);
    /** How many runs were stored when each round was seen done. */
    const rounds: number[] = [];
    while (rounds.length < 4 && next < 100_000) {
      appendRun();
      if (sqlite.checkpoints().completed > rounds.length) rounds.push(next);
    }
    expect(sqlite.checkpoints()).toEqual({ mode: 'background', completed: 4 });
    expect(walRestarts(path) - restartsBefore).toBeGreaterThanOrEqual(3);
    // Each round is asked for everyAppends appends after the last one ended, not at once: the append
    // right after a round starts the log over, which it cannot do while the thread is reading it.
    for (let i = 1; i < rounds.length; i += 1) expect((rounds[i] as number) - (rounds[i - 1] as number)).toBeGreaterThanOrEqual(24);

    for (const i of [0, 24, 25, Math.floor(next / 2), next - 1]) {
      expect(texts(sqlite.events(`run-${i}`)), `run-${i}`).toEqual(texts(fakeRun(`run-${i}`, { startedAt: FAKE_EPOCH + i })));
    }
    expect(sqlite.list({}, { limit: 1 }).runs[0]?.executionId).toBe(`run-${next - 1}`);
    // The thread lets go of the file first, so this connection is the last: the log is copied in and removed.
    open.pop()?.close();
    expect(existsSync(`${path}-wal`)).toBe(false);
    expect(runCounts(path)).toEqual({ runs: next, finished: next });
  }, 60_000);

  it('a thread that cannot open the file leaves the checkpoints to SQLite, and nothing is lost', async () => {
    const path = join(dir, 'runs.db');
    const sqlite = store({ path, backgroundCheckpoint: { everyAppends: 5 } });
    for (let i = 0; i < 4; i += 1) sqlite.append(`run-${i}`, fakeRun(`run-${i}`, { startedAt: FAKE_EPOCH + i }));
    // The thread opens the file by its name, which is gone when it starts; this connection keeps its own.
    renameSync(path, `${path}.away`);
    sqlite.append('run-4', fakeRun('run-4', { startedAt: FAKE_EPOCH + 4 }));
    await waitFor(() => sqlite.checkpoints().failure !== undefined, 5);
    expect(sqlite.checkpoints()).toEqual({ mode: 'inline', completed: 0, failure: 'the checkpoint thread could not open the file' });
    renameSync(`${path}.away`, path);
    for (let i = 5; i < 40; i += 1) sqlite.append(`run-${i}`, fakeRun(`run-${i}`, { startedAt: FAKE_EPOCH + i }));
    expect(sqlite.checkpoints().mode).toBe('inline');
    expect(sqlite.list({}, { limit: 100 }).runs).toHaveLength(40);
    expect(sqlite.report('run-39')?.executionId).toBe('run-39');
  }, 20_000);

  it('is never started for a read-only or in-memory store, nor with backgroundCheckpoint: false', async () => {
    const path = join(dir, 'runs.db');
    const off = store({ path, backgroundCheckpoint: false });
    for (let i = 0; i < 1_200; i += 1) off.append(`run-${i}`, fakeRun(`run-${i}`, { startedAt: FAKE_EPOCH + i }));
    const memory = store({ path: ':memory:', backgroundCheckpoint: { everyAppends: 1 } });
    for (let i = 0; i < 5; i += 1) memory.append(`run-${i}`, fakeRun(`run-${i}`));
    const reader = store({ path, readonly: true, backgroundCheckpoint: { everyAppends: 1 } });
    expect(reader.list({}, { limit: 1 }).runs).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    for (const each of [off, memory, reader]) expect(each.checkpoints()).toEqual({ mode: 'inline', completed: 0 });
  });

  it('refuses a backgroundCheckpoint that is not false or { everyAppends } with a positive integer', () => {
    for (const value of [true, 'yes', null, [], { everyAppends: 0 }, { everyAppends: 1.5 }, { everyAppends: '10' }]) {
      const error = thrown(() => createSqliteStore({ path: join(dir, 'runs.db'), backgroundCheckpoint: value as never }));
      expect(error.code, JSON.stringify(value)).toBe('OAO_ERR_INVALID_ARGUMENT');
      expect(error.message).toMatch(/backgroundCheckpoint/);
    }
  });

  it('opens the file the store opened, even after the process changed its directory', async () => {
    const mover = child(['relative', dir]);
    const { checkpoints } = await mover.next('checkpoints');
    expect(checkpoints).toEqual({ mode: 'background', completed: 1 });
    expect(await mover.exited).toEqual({ code: 0, signal: null });
  }, 30_000);

  it('never keeps a process alive: a process that leaves its store open ends by itself', async () => {
    const leaver = child(['leave', join(dir, 'runs.db'), '10']);
    await leaver.next('background');
    expect(await leaver.exited).toEqual({ code: 0, signal: null });
  }, 30_000);

  it('a process killed with SIGKILL while its thread checkpoints loses no run it had stored', async () => {
    const path = join(dir, 'runs.db');
    const writer = child(['stream', path, '20']);
    const last = await writer.until((message) => typeof message.appended === 'number' && message.appended >= 2_000 && typeof message.completed === 'number' && message.completed >= 3);
    writer.kill('SIGKILL');
    expect((await writer.exited).signal).toBe('SIGKILL');
    expect(last.mode).toBe('background');
    const reader = store({ path });
    const counts = runCounts(path);
    expect(counts.runs).toBeGreaterThanOrEqual(last.appended as number);
    expect(counts.finished).toBe(counts.runs);
    for (const i of [0, 1_000, (last.appended as number) - 1]) {
      const id = `stream-${i}`;
      expect(texts(reader.events(id)), id).toEqual(texts(fakeRun(id, { startedAt: FAKE_EPOCH + i, agentName: 'stream' })));
    }
  }, 60_000);
});

describe('createSqliteStore: the better-sqlite3 package', () => {
  it('says how to install it when it is missing', () => {
    const elsewhere = pathToFileURL(join(dir, 'module.js'));
    const error = thrown(() => loadBetterSqlite(elsewhere));
    expect(error.code).toBe('OAO_ERR_MISSING_PACKAGE');
    expect(error.message).toContain('npm install better-sqlite3');
    expect(error.details).toEqual({ packages: ['better-sqlite3'] });
  });

  it('is loaded when a store is created, not when the subpath is imported', () => {
    const script = `
      import { createRequire } from 'node:module';
      const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((file) => file.includes('better-sqlite3'));
      const { createSqliteStore } = await import('open-agent-orchestrator/sqlite');
      const before = loaded();
      createSqliteStore({ path: ':memory:' }).close();
      console.log(JSON.stringify({ before, after: loaded() }));
    `;
    const result = spawnSync(process.execPath, ['--conditions=oao-source', '--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 15_000 });
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toEqual({ before: false, after: true });
  });
});
