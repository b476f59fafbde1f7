import type { Database } from 'better-sqlite3';
import { OaoError } from '../../errors.js';

/**
 * The SQLite store's schema, as an ordered list of migrations. A file records every migration it
 * has run in `schema_version`; opening it runs the missing ones, in one write transaction, so two
 * processes opening a new file at once migrate it exactly once. Append new migrations at the end
 * and never edit a released one: a file written by a newer list is refused at open.
 */
export interface SqliteMigration {
  readonly version: number;
  readonly description: string;
  readonly sql: string;
}

export const sqliteMigrations: readonly SqliteMigration[] = [
  {
    version: 1,
    description: 'runs index, event log, leases, counters',
    sql: `
      CREATE TABLE runs (
        execution_id TEXT PRIMARY KEY,
        agent_name TEXT NOT NULL,
        -- ms since the epoch, whole milliseconds (the precision of the ISO text and of cursors)
        started_at INTEGER NOT NULL,
        -- 'SUCCESS' | 'FAILED' once the log holds EXECUTION_COMPLETE, else NULL
        outcome TEXT,
        -- the report's finishedAt, as written, and in ms for retention
        finished_at TEXT,
        finished_ms INTEGER,
        -- seq of the EXECUTION_COMPLETE event that carries the report
        report_seq INTEGER,
        -- events the log holds: the next seq
        event_count INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX runs_by_start ON runs (started_at DESC, execution_id DESC);
      CREATE INDEX runs_by_agent ON runs (agent_name, started_at DESC, execution_id DESC);
      CREATE INDEX runs_by_finish ON runs (finished_ms) WHERE outcome IS NOT NULL;

      CREATE TABLE events (
        execution_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        -- the row format (STORE_SCHEMA_VERSION) the event was written with
        version INTEGER NOT NULL,
        type TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (execution_id, seq)
      ) WITHOUT ROWID;

      CREATE TABLE leases (
        execution_id TEXT PRIMARY KEY,
        -- NULL once released; the token stays so the next holder's is higher
        owner TEXT,
        token INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      ) WITHOUT ROWID;

      CREATE TABLE counters (
        scope TEXT NOT NULL,
        time_window TEXT NOT NULL,
        name TEXT NOT NULL,
        value INTEGER NOT NULL,
        PRIMARY KEY (scope, time_window, name)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 2,
    description: 'runs and their logs keyed by a run number, so appends write at the end of the file',
    // Run ids are random (UUIDs). Keyed by them, every append inserted its rows in the middle of
    // the log's b-tree: each commit rewrote many pages at random places, and a trivial run (its
    // lease, 13 events and index entry) wrote about 18 pages to the write-ahead log. Now each run
    // gets a number (run_key, in start order) and each event the row key run_key * 2^32 + seq: a
    // run's events are appended at the end of one b-tree, and only the index of run ids and the
    // leases still take random inserts (about 12 pages a run). The list indexes are ascending (SQLite reads
    // them backwards for newest-first pages): new runs go at their right end, where SQLite splits
    // pages cheaply. execution_id stays in events, unindexed, for reading the file by hand; the
    // type column is gone (it is in the body), so that a process of schema 1 still running on the
    // file fails to insert into it instead of leaving the row key to SQLite and filing an event
    // under another run.
    sql: `
      CREATE TABLE runs_v2 (
        -- the run's number in this file: its events' row keys are run_key * 2^32 + seq
        run_key INTEGER PRIMARY KEY,
        execution_id TEXT NOT NULL UNIQUE,
        agent_name TEXT NOT NULL,
        -- ms since the epoch, whole milliseconds (the precision of the ISO text and of cursors)
        started_at INTEGER NOT NULL,
        -- 'SUCCESS' | 'FAILED' once the log holds EXECUTION_COMPLETE, else NULL
        outcome TEXT,
        -- the report's finishedAt, as written, and in ms for retention
        finished_at TEXT,
        finished_ms INTEGER,
        -- seq of the EXECUTION_COMPLETE event that carries the report
        report_seq INTEGER,
        -- events the log holds: the next seq
        event_count INTEGER NOT NULL
      );
      INSERT INTO runs_v2 (execution_id, agent_name, started_at, outcome, finished_at, finished_ms, report_seq, event_count)
        SELECT execution_id, agent_name, started_at, outcome, finished_at, finished_ms, report_seq, event_count
        FROM runs ORDER BY started_at, execution_id;

      CREATE TABLE events_v2 (
        -- run_key * 4294967296 + seq: a run's events are one range of row keys, in seq order
        event_key INTEGER PRIMARY KEY,
        execution_id TEXT NOT NULL,
        seq INTEGER NOT NULL CHECK (seq = event_key % 4294967296),
        -- the row format (STORE_SCHEMA_VERSION) the event was written with
        version INTEGER NOT NULL,
        body TEXT NOT NULL
      );
      INSERT INTO events_v2 (event_key, execution_id, seq, version, body)
        SELECT r.run_key * 4294967296 + e.seq, e.execution_id, e.seq, e.version, e.body
        FROM events e JOIN runs_v2 r ON r.execution_id = e.execution_id
        WHERE e.seq BETWEEN 0 AND 4294967295
        ORDER BY r.run_key, e.seq;

      DROP TABLE events;
      DROP TABLE runs;
      ALTER TABLE runs_v2 RENAME TO runs;
      ALTER TABLE events_v2 RENAME TO events;
      CREATE INDEX runs_by_start ON runs (started_at, execution_id);
      CREATE INDEX runs_by_agent ON runs (agent_name, started_at, execution_id);
      CREATE INDEX runs_by_finish ON runs (finished_ms) WHERE outcome IS NOT NULL;
    `,
  },
  {
    version: 3,
    description: 'workflow logs, in a table of their own beside the run logs',
    sql: `
      CREATE TABLE workflow_events (
        workflow_run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        -- the row format (STORE_SCHEMA_VERSION) the event was written with
        version INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (workflow_run_id, seq)
      ) WITHOUT ROWID;
    `,
  },
];

/** Row keys of events: a run's key times SEQ_SPAN plus the event's seq. */
export const SEQ_SPAN = 4_294_967_296;

/** The largest seq a log in this file can hold (its row keys stay in its run's range). */
export const MAX_SEQ = SEQ_SPAN - 1;

/** The schema version this runtime writes: the last migration's. */
export const SQLITE_SCHEMA_VERSION = sqliteMigrations.at(-1)?.version ?? 0;

/**
 * Brings the file's schema up to {@link SQLITE_SCHEMA_VERSION}. Throws `OAO_ERR_LOG_VERSION` when
 * the file was written by a newer schema, before touching anything. A read-only connection only
 * checks: it cannot migrate, so a file that needs migrations is `OAO_ERR_STORE`.
 */
export function migrate(db: Database, path: string, readonly: boolean, now: () => number): void {
  const check = (): number => {
    const found = currentVersion(db);
    if (found > SQLITE_SCHEMA_VERSION) {
      throw new OaoError(
        'OAO_ERR_LOG_VERSION',
        `The SQLite store at ${path} was written by schema version ${found}; this runtime reads up to ${SQLITE_SCHEMA_VERSION}. Upgrade open-agent-orchestrator to open it`,
        { details: { path, version: found, supportedVersion: SQLITE_SCHEMA_VERSION } },
      );
    }
    return found;
  };
  if (readonly) {
    const found = check();
    if (found < SQLITE_SCHEMA_VERSION) {
      throw new OaoError(
        'OAO_ERR_STORE',
        `The SQLite store at ${path} has schema version ${found} and was opened read-only, so it cannot be migrated to ${SQLITE_SCHEMA_VERSION}: open it once with write access`,
        { retryable: false, details: { path, version: found, supportedVersion: SQLITE_SCHEMA_VERSION } },
      );
    }
    return;
  }
  // Cheap look first: an up-to-date file needs no write lock at all.
  if (check() === SQLITE_SCHEMA_VERSION) return;
  db.transaction(() => {
    const found = check();
    if (found === 0) db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
    const record = db.prepare('INSERT INTO schema_version (version, applied_at) VALUES (?, ?)');
    for (const migration of sqliteMigrations) {
      if (migration.version <= found) continue;
      db.exec(migration.sql);
      record.run(migration.version, now());
    }
  }).immediate();
}

function currentVersion(db: Database): number {
  const table = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").get();
  if (table === undefined) return 0;
  const row = db.prepare('SELECT MAX(version) AS version FROM schema_version').get() as { version: number | null };
  return row.version ?? 0;
}
