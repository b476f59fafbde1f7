import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Database, Statement } from 'better-sqlite3';
import { OaoError } from '../../errors.js';
import type { OaoEvent } from '../../events/schema.js';
import { invalidOption, typeOf } from '../../options.js';
import {
  STORE_SCHEMA_VERSION,
  type Lease,
  type RunListFilter,
  type RunStoreOptions,
  type StoredRun,
  type SynchronousRunStore,
} from '../RunStore.js';
import { leaseChange, leaseHeld, type LeaseChange } from '../leaseChange.js';
import { decodeCursor, decodeRow, encodeCursor, encodeEvent, indexUpdate, newEvents, pageLimit, runStatus, type LogRow } from '../logRows.js';
import {
  appendArguments,
  chargeArguments,
  checkLease,
  checkedTotal,
  counterKey,
  fromSeqOption,
  leaseLost,
  leaseOwner,
  leaseTtl,
  listFilter,
  runId,
  storeOptions,
} from '../storeArguments.js';
import type { StoredWorkflowEvent } from '../../events/workflowSchema.js';
import { decodeWorkflowRows, encodeWorkflowEvent, newWorkflowEvents, workflowAppendArguments, workflowRunIdArgument } from '../workflowLogRows.js';
import { BackgroundCheckpointer, type CheckpointStats } from './backgroundCheckpoint.js';
import { loadBetterSqlite, resolveBetterSqlite } from './loadBetterSqlite.js';
import { MAX_SEQ, SEQ_SPAN, migrate } from './migrations.js';
import { sqliteFailure } from './sqliteFailure.js';

export interface SqliteStoreOptions extends RunStoreOptions {
  /**
   * The database file. Its directory is created when missing. `':memory:'` gives a private
   * in-memory database (tests; nothing survives `close()`).
   */
  readonly path: string;
  /**
   * `NORMAL` (with WAL) never corrupts the file, but the last appends before a power loss or an
   * OS crash may be lost; a process crash loses nothing. `FULL` syncs every append to disk:
   * durable through power loss, about 2-3 times slower per append.
   * @default 'NORMAL'
   */
  readonly synchronous?: 'NORMAL' | 'FULL';
  /**
   * How long an append waits for another connection's write (another process on the same file)
   * before it fails with `OAO_ERR_STORE`.
   * @default 5000
   */
  readonly busyTimeoutMs?: number;
  /**
   * Opens the file for reading only (a dashboard or a CLI looking at another process's runs).
   * The file must exist with an up-to-date schema; every write fails with `OAO_ERR_STORE`.
   * @default false
   */
  readonly readonly?: boolean;
  /**
   * Where WAL checkpoints run. By default, once the store has taken `everyAppends` appends, a
   * worker thread with its own connection does most of each checkpoint (copying the log into the
   * file and syncing it to disk) while appends go on, and the appending thread only copies what
   * came in meanwhile. `false` leaves checkpoints to SQLite, inside the append that crosses its
   * threshold. Never for `readonly` or `':memory:'` stores.
   * @default { everyAppends: 1000 }
   */
  readonly backgroundCheckpoint?: false | { readonly everyAppends?: number };
}

/**
 * The SQLite store answers every call synchronously (better-sqlite3 is synchronous), so it also
 * serves code that cannot await. Errors are thrown, not returned as rejected promises.
 */
export interface SqliteRunStore extends SynchronousRunStore {
  /** The file it was opened on. */
  readonly path: string;
  /** Where its WAL checkpoints run now, and how many the background thread has done. */
  checkpoints(): CheckpointStats;
}

interface RunRow {
  readonly execution_id: string;
  readonly agent_name: string;
  readonly started_at: number;
  readonly outcome: 'SUCCESS' | 'FAILED' | null;
  readonly finished_at: string | null;
  readonly report_seq: number | null;
  readonly event_count: number;
  readonly lease_expires_at: number | null;
}

/** A run's key in the file, with what an append or a read needs first. */
interface RunKeyRow {
  readonly run_key: number;
  readonly execution_id: string;
  readonly event_count: number;
}

/** A row of a run's log as `eventsOf` reads it: the run's event count, then its event's seq, version and body (null when none). */
type LogTuple = readonly [eventCount: number, seq: number | null, version: number | null, body: string | null];

/** What `reportOf` reads: the run's report seq (null while unfinished), then that event's seq, version and body (null when the row is gone). */
type ReportTuple = readonly [reportSeq: number | null, seq: number | null, version: number | null, body: string | null];

interface LeaseRow {
  readonly owner: string | null;
  readonly token: number;
  readonly expires_at: number;
}

/**
 * Pages the write-ahead log may hold before an append copies them into the database file (SQLite's
 * default is 1,000). Each such checkpoint syncs both files to disk; a trivial run adds about 12
 * pages, so at the default a checkpoint came every 80 runs or so and cost a SQLite-durable run
 * about a third of its time. Ten times as many pages make checkpoints ten times rarer and each
 * one cheaper per run (a page written by many appends is copied once): the log file grows to about
 * 40 MB before it is reused. With `synchronous: 'NORMAL'` the log is synced at checkpoints, so a
 * power loss may lose more of the last appends; a process crash still loses none.
 */
const CHECKPOINT_PAGES = 10_000;

/**
 * SQLite's own checkpoint threshold while a background thread checkpoints: only reached if the
 * thread falls far behind (about 160 MB of log).
 */
const BACKSTOP_CHECKPOINT_PAGES = 40_000;

const runColumns = `r.execution_id, r.agent_name, r.started_at, r.outcome, r.finished_at, r.report_seq, r.event_count,
  l.expires_at AS lease_expires_at`;

/**
 * A {@link RunStore} in one SQLite file (better-sqlite3, an optional peer: `npm install
 * better-sqlite3`). WAL mode, so readers never wait for the writer; every append is one
 * `BEGIN IMMEDIATE` transaction, so processes sharing the file take turns (each waits up to
 * `busyTimeoutMs`) and a batch is stored whole or not at all.
 *
 * @example
 * ```ts
 * import { createSqliteStore } from 'open-agent-orchestrator/sqlite';
 *
 * const store = createSqliteStore({ path: '.oao/runs.db', maxRuns: 10_000 });
 * const page = store.list({ status: 'FAILED' }, { limit: 20 });
 * for (const run of page.runs) console.log(run.executionId, run.finishedAt);
 * store.close();
 * ```
 */
export function createSqliteStore(options: SqliteStoreOptions): SqliteRunStore {
  const config = checkOptions(options);
  const { path, now } = config;
  const Driver = loadBetterSqlite();

  if (path !== ':memory:' && !config.readonly) createDirectory(path);
  let db: Database;
  try {
    db = new Driver(path, { readonly: config.readonly, fileMustExist: config.readonly, timeout: config.busyTimeoutMs });
  } catch (error) {
    throw sqliteFailure(error, { path, operation: 'open' });
  }
  let sql: ReturnType<typeof prepareStatements>;
  try {
    if (!config.readonly) {
      db.pragma('journal_mode = WAL');
      db.pragma(`wal_autocheckpoint = ${CHECKPOINT_PAGES}`);
    }
    db.pragma(`synchronous = ${config.synchronous}`);
    migrate(db, path, config.readonly, now);
    sql = prepareStatements(db);
  } catch (error) {
    db.close();
    throw sqliteFailure(error, { path, operation: 'open' });
  }

  const checkpointer =
    config.backgroundCheckpoint === false || config.readonly || path === ':memory:'
      ? undefined
      : new BackgroundCheckpointer(db, {
          // The thread opens the file later, by name: a relative path must not follow a chdir().
          path: resolve(path),
          driverPath: resolveBetterSqlite(),
          busyTimeoutMs: config.busyTimeoutMs,
          everyAppends: config.backgroundCheckpoint.everyAppends,
          backstopPages: BACKSTOP_CHECKPOINT_PAGES,
          inlinePages: CHECKPOINT_PAGES,
        });

  let closed = false;
  const listStatements = new Map<string, Statement>();
  /** INSERTs of 1 to EVENT_ROWS_PER_INSERT event rows, by row count, prepared when first needed. */
  const insertEventRows = new Map<number, Statement>();

  /**
   * Writes a batch's event rows with one statement per EVENT_ROWS_PER_INSERT events: a trivial
   * run's whole log (13 events) is one INSERT instead of 13, each a call into SQLite's VM.
   */
  function insertEvents(runKey: number | bigint, executionId: string, fresh: readonly OaoEvent[]): void {
    for (let start = 0; start < fresh.length; start += EVENT_ROWS_PER_INSERT) {
      const rows = Math.min(EVENT_ROWS_PER_INSERT, fresh.length - start);
      let statement = insertEventRows.get(rows);
      if (statement === undefined) {
        statement = db.prepare(`INSERT INTO events (event_key, execution_id, seq, version, body) VALUES ${Array.from({ length: rows }, () => EVENT_ROW).join(', ')}`);
        insertEventRows.set(rows, statement);
      }
      const parameters: unknown[] = [];
      for (let i = start; i < start + rows; i++) {
        const event = fresh[i]!;
        parameters.push(runKey, event.seq, executionId, event.seq, STORE_SCHEMA_VERSION, encodeEvent(event));
      }
      statement.run(parameters);
    }
  }

  /** Runs `body` on the open database and turns every failure into a typed error. */
  function guarded<T>(operation: string, executionId: string | undefined, body: () => T): T {
    if (closed) {
      throw new OaoError('OAO_ERR_STORE', `The SQLite store at ${path} is closed: ${operation} after close()`, {
        retryable: false,
        details: { path, operation },
      });
    }
    try {
      return body();
    } catch (error) {
      throw sqliteFailure(error, { path, operation, ...(executionId === undefined ? {} : { executionId }) });
    }
  }

  /**
   * Takes the run's lease for `owner` when it may (nobody holds a live one, or `owner` does);
   * undefined when another owner holds it. With `releasing`, the row is written released at once
   * (a run whose whole log is one append), so the lease row is written once either way.
   */
  function takeLease(executionId: string, owner: string, ttlMs: number, releasing: boolean): Lease | undefined {
    const at = now();
    const held = sql.leaseRow.get(executionId) as LeaseRow | undefined;
    let token: number;
    if (held?.owner === owner) {
      // The holder takes it again: renewed, same token (nobody else wrote in between).
      token = held.token;
    } else {
      if (held?.owner != null && held.expires_at > at) return undefined;
      token = (held?.token ?? 0) + 1;
    }
    sql.upsertLease.run(executionId, releasing ? null : owner, token, releasing ? at : at + ttlMs);
    return { executionId, owner, token, expiresAt: at + ttlMs };
  }

  const appendBatch = db.transaction((executionId: string, events: readonly OaoEvent[], lease: Lease | undefined, change: LeaseChange): Lease | undefined => {
    let taken: Lease | undefined;
    if (lease !== undefined) {
      const held = sql.leaseRow.get(executionId) as LeaseRow | undefined;
      if (lease.executionId !== executionId || held?.owner !== lease.owner || held.token !== lease.token) throw leaseLost(executionId, lease);
    } else if (change.acquire !== undefined) {
      taken = takeLease(executionId, change.acquire.owner, change.acquire.ttlMs, change.release);
      if (taken === undefined) throw leaseHeld(executionId, change.acquire.owner);
    }
    const run = sql.runLog.get(executionId) as RunKeyRow | undefined;
    const stored = run?.event_count ?? 0;
    // A throw from here on rolls the whole transaction back, the lease taken above included.
    const fresh = newEvents(executionId, events, stored, (seq) =>
      run === undefined || seq > MAX_SEQ ? undefined : (sql.eventBody.get(run.run_key, seq) as string | undefined),
    );
    if (fresh.length > 0) {
      const count = stored + fresh.length;
      if (count - 1 > MAX_SEQ) {
        throw invalidOption('events', `Expected at most ${MAX_SEQ + 1} events in a run's log, got an event with seq ${count - 1}`);
      }
      const update = indexUpdate(fresh);
      const report = update.report;
      const reportSeq = report === undefined ? null : (fresh.find((event) => event.type === 'EXECUTION_COMPLETE')?.seq ?? null);
      let runKey: number;
      if (run === undefined) {
        // newEvents guarantees a new log starts with EXECUTION_START, which sets both. A run whose
        // whole log is one batch is indexed finished in the same write.
        runKey = Number(
          sql.insertRun.run(
            executionId,
            update.agentName ?? '',
            update.startedAt ?? 0,
            count,
            report?.status ?? null,
            report?.finishedAt ?? null,
            report === undefined ? null : Date.parse(report.finishedAt),
            reportSeq,
          ).lastInsertRowid,
        );
      } else {
        runKey = run.run_key;
        if (report === undefined) sql.setCount.run(count, runKey);
        else sql.finishRun.run(count, report.status, report.finishedAt, Date.parse(report.finishedAt), reportSeq, runKey);
      }
      insertEvents(runKey, executionId, fresh);
    }
    // A lease taken in this append was written released already.
    if (change.release && lease !== undefined) sql.releaseLease.run(now(), lease.executionId, lease.owner, lease.token);
    return taken;
  });

  /**
   * A run's log from `fromSeq`, in one statement (so one consistent read, without a transaction
   * around two): each row is [the run's event count, seq, version, body]; a run with no event at or
   * past `fromSeq` gives one row with a null seq, an unknown run none.
   */
  function readLog(executionId: string, fromSeq: number): OaoEvent[] {
    // A log never holds a seq past MAX_SEQ (appends refuse it), and no row key reaches beyond it.
    if (fromSeq > MAX_SEQ) return [];
    const rows = sql.eventsOf.all(fromSeq, executionId) as LogTuple[];
    const first = rows[0];
    if (first === undefined) return [];
    const count = first[0];
    const events: OaoEvent[] = [];
    let expected = fromSeq;
    if (first[1] !== null) {
      for (const [, seq, version, body] of rows) {
        events.push(decodeRow(executionId, expected, seq as number, version as number, body));
        expected += 1;
      }
    }
    if (expected < count) {
      throw new OaoError(
        'OAO_ERR_LOG_CORRUPT',
        `Event ${expected} of run "${executionId}" is damaged: the log ends before it, but the run's index counts ${count} events`,
        { details: { executionId, seq: expected } },
      );
    }
    return events;
  }

  const appendWorkflowBatch = db.transaction((workflowRunId: string, events: readonly StoredWorkflowEvent[]): void => {
    const stored = (sql.workflowCount.get(workflowRunId) as number | null | undefined) ?? 0;
    const fresh = newWorkflowEvents(workflowRunId, events, stored, (seq) => sql.workflowBody.get(workflowRunId, seq) as string | undefined);
    for (const event of fresh) sql.insertWorkflowEvent.run(workflowRunId, event.seq, STORE_SCHEMA_VERSION, encodeWorkflowEvent(event));
  });

  const acquire = db.transaction((executionId: string, owner: string, ttlMs: number): Lease | undefined => takeLease(executionId, owner, ttlMs, false));

  const prune = db.transaction((): number => {
    const doomed = new Map<number, string>();
    if (config.maxAgeMs !== undefined) {
      for (const run of sql.finishedBefore.all(now() - config.maxAgeMs) as RunKeyRow[]) doomed.set(run.run_key, run.execution_id);
    }
    if (config.maxRuns !== undefined) {
      for (const run of sql.finishedBeyond.all(config.maxRuns) as RunKeyRow[]) doomed.set(run.run_key, run.execution_id);
    }
    for (const [runKey, executionId] of doomed) {
      sql.deleteEvents.run(runKey, runKey);
      sql.deleteLease.run(executionId);
      sql.deleteRun.run(runKey);
    }
    return doomed.size;
  });

  const charge = db.transaction((scope: string, window: string, amounts: ReadonlyArray<[string, number]>) => {
    for (const [name, amount] of amounts) sql.chargeCounter.run(scope, window, name, amount);
    const totals = readCounters(scope, window);
    // SQLite turns an overflowing integer sum into a float: the check throws, the charge rolls back.
    for (const [name, total] of Object.entries(totals)) checkedTotal(scope, window, name, total);
    return totals;
  });

  function readCounters(scope: string, window: string): Record<string, number> {
    const totals: Record<string, number> = {};
    for (const row of sql.counters.all(scope, window) as { name: string; value: number }[]) {
      // A counter may be named "__proto__": define it, never assign through the prototype's setter.
      Object.defineProperty(totals, row.name, { value: row.value, enumerable: true, writable: true, configurable: true });
    }
    return totals;
  }

  function toStoredRun(row: RunRow): StoredRun {
    return {
      executionId: row.execution_id,
      agentName: row.agent_name,
      status: runStatus(row.outcome === null ? undefined : { status: row.outcome }, row.lease_expires_at ?? undefined, now()),
      startedAt: new Date(row.started_at).toISOString(),
      ...(row.finished_at === null ? {} : { finishedAt: row.finished_at }),
      eventCount: row.event_count,
    };
  }

  function listStatement(filter: RunListFilter, cursor: boolean): Statement {
    const key = [filter.agentName !== undefined, filter.status ?? '', filter.since !== undefined, filter.until !== undefined, cursor].join('|');
    let statement = listStatements.get(key);
    if (statement !== undefined) return statement;
    const where: string[] = [];
    if (filter.agentName !== undefined) where.push('r.agent_name = @agentName');
    if (filter.since !== undefined) where.push('r.started_at >= @since');
    if (filter.until !== undefined) where.push('r.started_at < @until');
    if (filter.status === 'SUCCESS' || filter.status === 'FAILED') where.push('r.outcome = @status');
    else if (filter.status === 'running') where.push('r.outcome IS NULL AND (l.expires_at IS NULL OR l.expires_at > @now)');
    else if (filter.status === 'interrupted') where.push('r.outcome IS NULL AND l.expires_at <= @now');
    if (cursor) where.push('(r.started_at < @afterStart OR (r.started_at = @afterStart AND r.execution_id < @afterId))');
    statement = db.prepare(
      `SELECT ${runColumns} FROM runs r LEFT JOIN leases l ON l.execution_id = r.execution_id
       ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`}
       ORDER BY r.started_at DESC, r.execution_id DESC LIMIT @limit`,
    );
    listStatements.set(key, statement);
    return statement;
  }

  return {
    path,
    synchronous: true,

    append(executionId, events, appendOptions) {
      const lease = appendArguments(executionId, events, appendOptions);
      const change = leaseChange(appendOptions, lease);
      const taken = guarded('append', executionId, () => appendBatch.immediate(executionId, events, lease, change));
      checkpointer?.appended();
      // Committed: the lease taken is the writer's.
      if (taken !== undefined) change.acquire?.onAcquired?.(taken);
    },

    events(executionId, readOptions) {
      runId(executionId);
      const fromSeq = fromSeqOption(readOptions);
      return guarded('events', executionId, () => readLog(executionId, fromSeq));
    },

    appendWorkflow(workflowRunId, events) {
      workflowAppendArguments(workflowRunId, events);
      guarded('appendWorkflow', undefined, () => appendWorkflowBatch.immediate(workflowRunId, events));
    },

    workflowEvents(workflowRunId, readOptions) {
      workflowRunIdArgument(workflowRunId);
      const fromSeq = fromSeqOption(readOptions);
      return guarded('workflowEvents', undefined, () =>
        decodeWorkflowRows(workflowRunId, sql.workflowEventsFrom.all(workflowRunId, fromSeq) as LogRow[], fromSeq),
      );
    },

    report(executionId) {
      runId(executionId);
      return guarded('report', executionId, () => {
        // One statement, so one snapshot: a run another process prunes meanwhile is either
        // still whole or gone, never an index entry that names a deleted row.
        const row = sql.reportOf.get(executionId) as ReportTuple | undefined;
        if (row === undefined) return undefined;
        const [seq, eventSeq, version, body] = row;
        if (seq === null) return undefined;
        if (eventSeq === null) {
          throw new OaoError('OAO_ERR_LOG_CORRUPT', `Event ${seq} of run "${executionId}" is damaged: the index names it as the run's EXECUTION_COMPLETE, but the log has no such row`, {
            details: { executionId, seq },
          });
        }
        const event = decodeRow(executionId, seq, eventSeq, version as number, body);
        if (event.type !== 'EXECUTION_COMPLETE') {
          throw new OaoError('OAO_ERR_LOG_CORRUPT', `Event ${seq} of run "${executionId}" is damaged: the index names it as the run's EXECUTION_COMPLETE, but it is ${event.type}`, {
            details: { executionId, seq },
          });
        }
        return event.payload.report;
      });
    },

    get(executionId) {
      runId(executionId);
      return guarded('get', executionId, () => {
        const row = sql.getRun.get(executionId) as RunRow | undefined;
        return row === undefined ? undefined : toStoredRun(row);
      });
    },

    list(filter = {}, page = {}) {
      const checked = listFilter(filter);
      const limit = pageLimit(page.limit);
      const after = page.cursor === undefined ? undefined : decodeCursor(page.cursor);
      return guarded('list', undefined, () => {
        const rows = listStatement(checked, after !== undefined).all({
          ...(checked.agentName === undefined ? {} : { agentName: checked.agentName }),
          ...(checked.since === undefined ? {} : { since: checked.since }),
          ...(checked.until === undefined ? {} : { until: checked.until }),
          ...(checked.status === 'SUCCESS' || checked.status === 'FAILED' ? { status: checked.status } : {}),
          ...(checked.status === 'running' || checked.status === 'interrupted' ? { now: now() } : {}),
          ...(after === undefined ? {} : { afterStart: after.startedAt, afterId: after.executionId }),
          limit: limit + 1,
        }) as RunRow[];
        const runs = rows.slice(0, limit).map(toStoredRun);
        const last = runs.at(-1);
        return { runs, nextCursor: rows.length > limit && last !== undefined ? encodeCursor(last) : null };
      });
    },

    prune() {
      return guarded('prune', undefined, () => prune.immediate());
    },

    acquireLease(executionId, owner, ttlMs) {
      runId(executionId);
      leaseOwner(owner);
      leaseTtl(ttlMs);
      return guarded('acquireLease', executionId, () => acquire.immediate(executionId, owner, ttlMs));
    },

    renewLease(lease, ttlMs) {
      checkLease(lease);
      leaseTtl(ttlMs);
      return guarded('renewLease', lease.executionId, () => sql.renewLease.run(now() + ttlMs, lease.executionId, lease.owner, lease.token).changes === 1);
    },

    releaseLease(lease) {
      checkLease(lease);
      guarded('releaseLease', lease.executionId, () => {
        sql.releaseLease.run(now(), lease.executionId, lease.owner, lease.token);
      });
    },

    charge(scope, window, amounts) {
      const entries = chargeArguments(scope, window, amounts);
      return guarded('charge', undefined, () => charge.immediate(scope, window, entries));
    },

    counters(scope, window) {
      counterKey(scope, window);
      return guarded('counters', undefined, () => readCounters(scope, window));
    },

    checkpoints() {
      return checkpointer?.stats() ?? { mode: 'inline', completed: 0 };
    },

    close() {
      if (closed) return;
      closed = true;
      // The thread's connection goes first, so that this one is the last: SQLite then copies the
      // log into the file and removes it.
      checkpointer?.close();
      try {
        db.close();
      } catch (error) {
        throw sqliteFailure(error, { path, operation: 'close' });
      }
    },
  };
}

function createDirectory(path: string): void {
  const directory = dirname(resolve(path));
  try {
    mkdirSync(directory, { recursive: true });
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    throw new OaoError('OAO_ERR_STORE', `Cannot create the directory of the SQLite store at ${path}: ${message}`, {
      retryable: false,
      cause: error,
      details: { ...(code === undefined ? {} : { code }), path, directory, operation: 'open' },
    });
  }
}

/** The most event rows one INSERT writes (six parameters each). */
const EVENT_ROWS_PER_INSERT = 32;
/** One event row of an INSERT: its key is its run's key times 2^32 plus its seq (see migrations.ts). */
const EVENT_ROW = `(? * ${SEQ_SPAN} + ?, ?, ?, ?, ?)`;

function prepareStatements(db: Database) {
  // An event's row key is its run's key times 2^32 plus its seq (see migrations.ts).
  const eventKey = (runKey: string, seq: string): string => `${runKey} * ${SEQ_SPAN} + ${seq}`;
  return {
    runLog: db.prepare('SELECT run_key, execution_id, event_count FROM runs WHERE execution_id = ?'),
    // A report_seq past MAX_SEQ (a damaged index) joins no row rather than another run's event.
    reportOf: db
      .prepare(
        `SELECT r.report_seq, e.seq, e.version, e.body FROM runs r
         LEFT JOIN events e ON r.report_seq BETWEEN 0 AND ${MAX_SEQ} AND e.event_key = ${eventKey('r.run_key', 'r.report_seq')}
         WHERE r.execution_id = ?`,
      )
      .raw(),
    getRun: db.prepare(`SELECT ${runColumns} FROM runs r LEFT JOIN leases l ON l.execution_id = r.execution_id WHERE r.execution_id = ?`),
    eventBody: db.prepare(`SELECT body FROM events WHERE event_key = ${eventKey('?', '?')}`).pluck(),
    eventsOf: db
      .prepare(
        `SELECT r.event_count, e.seq, e.version, e.body FROM runs r
         LEFT JOIN events e ON e.event_key BETWEEN ${eventKey('r.run_key', '?')} AND ${eventKey('r.run_key', String(MAX_SEQ))}
         WHERE r.execution_id = ? ORDER BY e.event_key`,
      )
      .raw(),
    insertRun: db.prepare(
      `INSERT INTO runs (execution_id, agent_name, started_at, event_count, outcome, finished_at, finished_ms, report_seq)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    setCount: db.prepare('UPDATE runs SET event_count = ? WHERE run_key = ?'),
    finishRun: db.prepare('UPDATE runs SET event_count = ?, outcome = ?, finished_at = ?, finished_ms = ?, report_seq = ? WHERE run_key = ?'),
    leaseRow: db.prepare('SELECT owner, token, expires_at FROM leases WHERE execution_id = ?'),
    upsertLease: db.prepare(
      `INSERT INTO leases (execution_id, owner, token, expires_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (execution_id) DO UPDATE SET owner = excluded.owner, token = excluded.token, expires_at = excluded.expires_at`,
    ),
    renewLease: db.prepare('UPDATE leases SET expires_at = ? WHERE execution_id = ? AND owner = ? AND token = ?'),
    // A released lease keeps its token (the next holder's is higher) and expires now: an
    // unfinished run whose owner let go is interrupted, ready for another owner.
    releaseLease: db.prepare('UPDATE leases SET owner = NULL, expires_at = ? WHERE execution_id = ? AND owner = ? AND token = ?'),
    counters: db.prepare('SELECT name, value FROM counters WHERE scope = ? AND time_window = ? ORDER BY name'),
    chargeCounter: db.prepare(
      `INSERT INTO counters (scope, time_window, name, value) VALUES (?, ?, ?, ?)
       ON CONFLICT (scope, time_window, name) DO UPDATE SET value = value + excluded.value`,
    ),
    finishedBefore: db.prepare('SELECT run_key, execution_id FROM runs WHERE outcome IS NOT NULL AND finished_ms < ?'),
    finishedBeyond: db.prepare(
      `SELECT run_key, execution_id FROM runs WHERE outcome IS NOT NULL
       ORDER BY finished_ms DESC, execution_id DESC LIMIT -1 OFFSET ?`,
    ),
    deleteEvents: db.prepare(`DELETE FROM events WHERE event_key BETWEEN ${eventKey('?', '0')} AND ${eventKey('?', String(MAX_SEQ))}`),
    deleteLease: db.prepare('DELETE FROM leases WHERE execution_id = ?'),
    deleteRun: db.prepare('DELETE FROM runs WHERE run_key = ?'),
    // Counts the rows: a log always holds seq 0 .. n-1 (appends leave no gap).
    workflowCount: db.prepare('SELECT COUNT(*) FROM workflow_events WHERE workflow_run_id = ?').pluck(),
    workflowBody: db.prepare('SELECT body FROM workflow_events WHERE workflow_run_id = ? AND seq = ?').pluck(),
    workflowEventsFrom: db.prepare('SELECT seq, version, body FROM workflow_events WHERE workflow_run_id = ? AND seq >= ? ORDER BY seq'),
    insertWorkflowEvent: db.prepare('INSERT INTO workflow_events (workflow_run_id, seq, version, body) VALUES (?, ?, ?, ?)'),
  };
}

interface CheckedOptions {
  readonly path: string;
  readonly synchronous: 'NORMAL' | 'FULL';
  readonly busyTimeoutMs: number;
  readonly readonly: boolean;
  readonly backgroundCheckpoint: false | { readonly everyAppends: number };
  readonly maxRuns: number | undefined;
  readonly maxAgeMs: number | undefined;
  readonly now: () => number;
}

/** Appends between background checkpoints (and before the thread starts). */
const DEFAULT_CHECKPOINT_EVERY_APPENDS = 1_000;

function checkOptions(options: SqliteStoreOptions): CheckedOptions {
  if (typeof options !== 'object' || options === null) {
    throw invalidOption('options', `Expected createSqliteStore options to be an object with a path, got ${typeOf(options)}`);
  }
  const { maxRuns, maxAgeMs, now } = storeOptions(options);
  const { path, synchronous = 'NORMAL', busyTimeoutMs = 5_000, readonly = false } = options;
  if (typeof path !== 'string' || path.trim() === '') {
    throw invalidOption('path', `Expected path to be the database file's path, got ${typeof path === 'string' ? 'an empty string' : typeOf(path)}`);
  }
  if (synchronous !== 'NORMAL' && synchronous !== 'FULL') {
    throw invalidOption('synchronous', `Expected synchronous to be 'NORMAL' or 'FULL', got ${JSON.stringify(synchronous) ?? typeOf(synchronous)}`);
  }
  if (typeof busyTimeoutMs !== 'number' || !Number.isInteger(busyTimeoutMs) || busyTimeoutMs < 0 || busyTimeoutMs > 0x7fffffff) {
    throw invalidOption('busyTimeoutMs', `Expected busyTimeoutMs to be an integer from 0 to 2147483647, got ${typeof busyTimeoutMs === 'number' ? busyTimeoutMs : typeOf(busyTimeoutMs)}`);
  }
  if (typeof readonly !== 'boolean') throw invalidOption('readonly', `Expected readonly to be a boolean, got ${typeOf(readonly)}`);
  if (readonly && path === ':memory:') throw invalidOption('readonly', 'An in-memory SQLite store cannot be opened read-only');
  return { path, synchronous, busyTimeoutMs, readonly, backgroundCheckpoint: checkpointOption(options.backgroundCheckpoint), maxRuns, maxAgeMs, now };
}

function checkpointOption(value: SqliteStoreOptions['backgroundCheckpoint']): CheckedOptions['backgroundCheckpoint'] {
  if (value === false) return false;
  if (value === undefined) return { everyAppends: DEFAULT_CHECKPOINT_EVERY_APPENDS };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidOption('backgroundCheckpoint', `Expected backgroundCheckpoint to be false or { everyAppends }, got ${typeOf(value)}`);
  }
  const { everyAppends = DEFAULT_CHECKPOINT_EVERY_APPENDS } = value;
  if (typeof everyAppends !== 'number' || !Number.isInteger(everyAppends) || everyAppends < 1 || everyAppends > 1_000_000) {
    throw invalidOption(
      'backgroundCheckpoint.everyAppends',
      `Expected backgroundCheckpoint.everyAppends to be an integer from 1 to 1000000, got ${typeof everyAppends === 'number' ? everyAppends : typeOf(everyAppends)}`,
    );
  }
  return { everyAppends };
}
