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
import { decodeCursor, decodeRows, encodeCursor, encodeEvent, indexUpdate, newEvents, pageLimit, runStatus, type LogRow } from '../logRows.js';
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
import { loadBetterSqlite } from './loadBetterSqlite.js';
import { migrate } from './migrations.js';
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
}

/**
 * The SQLite store answers every call synchronously (better-sqlite3 is synchronous), so it also
 * serves code that cannot await. Errors are thrown, not returned as rejected promises.
 */
export interface SqliteRunStore extends SynchronousRunStore {
  /** The file it was opened on. */
  readonly path: string;
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

interface LeaseRow {
  readonly owner: string | null;
  readonly token: number;
  readonly expires_at: number;
}

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
    if (!config.readonly) db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${config.synchronous}`);
    migrate(db, path, config.readonly, now);
    sql = prepareStatements(db);
  } catch (error) {
    db.close();
    throw sqliteFailure(error, { path, operation: 'open' });
  }

  let closed = false;
  const listStatements = new Map<string, Statement>();

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

  const appendBatch = db.transaction((executionId: string, events: readonly OaoEvent[], lease: Lease | undefined) => {
    if (lease !== undefined) {
      const held = sql.leaseRow.get(executionId) as LeaseRow | undefined;
      if (lease.executionId !== executionId || held?.owner !== lease.owner || held.token !== lease.token) throw leaseLost(executionId, lease);
    }
    const run = sql.runLog.get(executionId) as { event_count: number } | undefined;
    const stored = run?.event_count ?? 0;
    const fresh = newEvents(executionId, events, stored, (seq) => sql.eventBody.get(executionId, seq) as string | undefined);
    if (fresh.length === 0) return;
    for (const event of fresh) sql.insertEvent.run(executionId, event.seq, STORE_SCHEMA_VERSION, event.type, encodeEvent(event));
    const update = indexUpdate(fresh);
    const count = stored + fresh.length;
    if (run === undefined) {
      // newEvents guarantees a new log starts with EXECUTION_START, which sets both.
      sql.insertRun.run(executionId, update.agentName ?? '', new Date(update.startedAt ?? 0).getTime(), count);
    } else {
      sql.setCount.run(count, executionId);
    }
    if (update.report !== undefined) {
      const complete = fresh.find((event) => event.type === 'EXECUTION_COMPLETE');
      sql.finishRun.run(update.report.status, update.report.finishedAt, Date.parse(update.report.finishedAt), complete?.seq ?? null, executionId);
    }
  });

  const readLog = db.transaction((executionId: string, fromSeq: number): OaoEvent[] => {
    const run = sql.runLog.get(executionId) as { event_count: number } | undefined;
    if (run === undefined) return [];
    const rows = sql.eventsFrom.all(executionId, fromSeq) as LogRow[];
    const events = decodeRows(executionId, rows, fromSeq);
    const end = fromSeq + events.length;
    if (end < run.event_count) {
      throw new OaoError(
        'OAO_ERR_LOG_CORRUPT',
        `Event ${end} of run "${executionId}" is damaged: the log ends before it, but the run's index counts ${run.event_count} events`,
        { details: { executionId, seq: end } },
      );
    }
    return events;
  });

  const acquire = db.transaction((executionId: string, owner: string, ttlMs: number): Lease | undefined => {
    const at = now();
    const held = sql.leaseRow.get(executionId) as LeaseRow | undefined;
    if (held?.owner === owner) {
      // The holder takes it again: renewed, same token (nobody else wrote in between).
      sql.upsertLease.run(executionId, owner, held.token, at + ttlMs);
      return { executionId, owner, token: held.token, expiresAt: at + ttlMs };
    }
    if (held?.owner != null && held.expires_at > at) return undefined;
    const token = (held?.token ?? 0) + 1;
    sql.upsertLease.run(executionId, owner, token, at + ttlMs);
    return { executionId, owner, token, expiresAt: at + ttlMs };
  });

  const prune = db.transaction((): number => {
    const doomed = new Set<string>();
    if (config.maxAgeMs !== undefined) {
      for (const id of sql.finishedBefore.all(now() - config.maxAgeMs) as string[]) doomed.add(id);
    }
    if (config.maxRuns !== undefined) {
      for (const id of sql.finishedBeyond.all(config.maxRuns) as string[]) doomed.add(id);
    }
    for (const id of doomed) {
      sql.deleteEvents.run(id);
      sql.deleteLease.run(id);
      sql.deleteRun.run(id);
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
      guarded('append', executionId, () => appendBatch.immediate(executionId, events, lease));
    },

    events(executionId, readOptions) {
      runId(executionId);
      const fromSeq = fromSeqOption(readOptions);
      return guarded('events', executionId, () => readLog.deferred(executionId, fromSeq));
    },

    report(executionId) {
      runId(executionId);
      return guarded('report', executionId, () => {
        const seq = sql.reportSeq.get(executionId) as number | null | undefined;
        if (seq === undefined || seq === null) return undefined;
        const row = sql.eventAt.get(executionId, seq) as LogRow | undefined;
        if (row === undefined) {
          throw new OaoError('OAO_ERR_LOG_CORRUPT', `Event ${seq} of run "${executionId}" is damaged: the index names it as the run's EXECUTION_COMPLETE, but the log has no such row`, {
            details: { executionId, seq },
          });
        }
        const [event] = decodeRows(executionId, [row], seq);
        if (event?.type !== 'EXECUTION_COMPLETE') {
          throw new OaoError('OAO_ERR_LOG_CORRUPT', `Event ${seq} of run "${executionId}" is damaged: the index names it as the run's EXECUTION_COMPLETE, but it is ${event?.type ?? 'missing'}`, {
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

    close() {
      if (closed) return;
      closed = true;
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

function prepareStatements(db: Database) {
  return {
    runLog: db.prepare('SELECT event_count FROM runs WHERE execution_id = ?'),
    reportSeq: db.prepare('SELECT report_seq FROM runs WHERE execution_id = ?').pluck(),
    getRun: db.prepare(`SELECT ${runColumns} FROM runs r LEFT JOIN leases l ON l.execution_id = r.execution_id WHERE r.execution_id = ?`),
    eventBody: db.prepare('SELECT body FROM events WHERE execution_id = ? AND seq = ?').pluck(),
    eventAt: db.prepare('SELECT seq, version, body FROM events WHERE execution_id = ? AND seq = ?'),
    eventsFrom: db.prepare('SELECT seq, version, body FROM events WHERE execution_id = ? AND seq >= ? ORDER BY seq'),
    insertEvent: db.prepare('INSERT INTO events (execution_id, seq, version, type, body) VALUES (?, ?, ?, ?, ?)'),
    insertRun: db.prepare('INSERT INTO runs (execution_id, agent_name, started_at, event_count) VALUES (?, ?, ?, ?)'),
    setCount: db.prepare('UPDATE runs SET event_count = ? WHERE execution_id = ?'),
    finishRun: db.prepare('UPDATE runs SET outcome = ?, finished_at = ?, finished_ms = ?, report_seq = ? WHERE execution_id = ?'),
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
    finishedBefore: db.prepare('SELECT execution_id FROM runs WHERE outcome IS NOT NULL AND finished_ms < ?').pluck(),
    finishedBeyond: db.prepare(
      `SELECT execution_id FROM runs WHERE outcome IS NOT NULL
       ORDER BY finished_ms DESC, execution_id DESC LIMIT -1 OFFSET ?`,
    ).pluck(),
    deleteEvents: db.prepare('DELETE FROM events WHERE execution_id = ?'),
    deleteLease: db.prepare('DELETE FROM leases WHERE execution_id = ?'),
    deleteRun: db.prepare('DELETE FROM runs WHERE execution_id = ?'),
  };
}

interface CheckedOptions {
  readonly path: string;
  readonly synchronous: 'NORMAL' | 'FULL';
  readonly busyTimeoutMs: number;
  readonly readonly: boolean;
  readonly maxRuns: number | undefined;
  readonly maxAgeMs: number | undefined;
  readonly now: () => number;
}

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
  return { path, synchronous, busyTimeoutMs, readonly, maxRuns, maxAgeMs, now };
}
