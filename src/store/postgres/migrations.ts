import type { Pool, PoolClient } from 'pg';
import { OaoError } from '../../errors.js';

/**
 * The PostgreSQL store's tables, as numbered migrations. A database records the ones it has in
 * `oao_schema_version`; `migrate()` applies the missing ones in order, each with its version row
 * in one transaction, under an advisory lock so that processes starting at once migrate once.
 * A migration, once released, is never edited: a change is a new migration.
 */
export interface PostgresMigration {
  readonly version: number;
  /** SQL for the given (already quoted) schema name. */
  readonly sql: (schema: string) => string;
}

export const postgresMigrations: readonly PostgresMigration[] = [
  {
    version: 1,
    sql: (s) => `
      -- One row per run: the index beside its log. Filled by the append that holds EXECUTION_START,
      -- completed by the one that holds EXECUTION_COMPLETE (status, finished_at, report_seq).
      -- COLLATE "C": ids sort by code point, as JavaScript compares them.
      CREATE TABLE ${s}.oao_runs (
        execution_id text COLLATE "C" PRIMARY KEY,
        agent_name   text NOT NULL,
        started_ms   bigint NOT NULL,
        status       text CHECK (status IN ('SUCCESS', 'FAILED')),
        finished_at  text,
        finished_ms  bigint,
        report_seq   integer,
        event_count  integer NOT NULL
      );
      CREATE INDEX oao_runs_by_start ON ${s}.oao_runs (started_ms DESC, execution_id DESC);
      CREATE INDEX oao_runs_by_agent ON ${s}.oao_runs (agent_name, started_ms DESC, execution_id DESC);
      CREATE INDEX oao_runs_by_finish ON ${s}.oao_runs (finished_ms, execution_id) WHERE status IS NOT NULL;

      -- The log: one row per event, its canonical JSON as text (so a retried append compares
      -- byte for byte), with the row format version it was written in.
      CREATE TABLE ${s}.oao_events (
        execution_id text COLLATE "C" NOT NULL,
        seq          integer NOT NULL,
        version      smallint NOT NULL,
        body         text NOT NULL,
        PRIMARY KEY (execution_id, seq)
      );

      -- Who may append to a run. A lease may exist before the run's first event. owner is NULL
      -- once released; token only grows. expires_ms is on the store's clock, which may have fractions.
      CREATE TABLE ${s}.oao_leases (
        execution_id text COLLATE "C" PRIMARY KEY,
        owner        text,
        token        bigint NOT NULL,
        expires_ms   double precision NOT NULL
      );

      -- Budget counters by (scope, period, name); never pruned. Totals stay safe integers, so a
      -- charge past them fails whole instead of coming back rounded.
      CREATE TABLE ${s}.oao_counters (
        scope  text NOT NULL,
        period text NOT NULL,
        name   text NOT NULL,
        value  bigint NOT NULL CONSTRAINT oao_counters_safe_integer CHECK (value BETWEEN -9007199254740991 AND 9007199254740991),
        PRIMARY KEY (scope, period, name)
      );
    `,
  },
  {
    version: 2,
    sql: (s) => `
      -- Workflow logs, beside the run logs: one row per event of a workflow run's own log.
      CREATE TABLE ${s}.oao_workflow_events (
        workflow_run_id text COLLATE "C" NOT NULL,
        seq             integer NOT NULL,
        version         smallint NOT NULL,
        body            text NOT NULL,
        PRIMARY KEY (workflow_run_id, seq)
      );
    `,
  },
];

/** The newest schema version this runtime creates and reads. */
export const POSTGRES_SCHEMA_VERSION = postgresMigrations.reduce((latest, migration) => Math.max(latest, migration.version), 0);

/** First key of the advisory lock; the second is the schema's name, hashed. */
const MIGRATION_LOCK_CLASS = 0x4f414f; // "OAO"

/**
 * Brings `schema` up to {@link POSTGRES_SCHEMA_VERSION}. Safe to call from many processes at once.
 * A database migrated by a newer runtime (a version this one does not know) is refused with
 * `OAO_ERR_LOG_VERSION` rather than written to.
 */
export async function migrate(pool: Pool, schema: string): Promise<void> {
  const quoted = quoteIdentifier(schema);
  const client = await pool.connect();
  // A checked-out client has no error listener of the pool's: without one, a connection lost
  // between two statements would be an unhandled 'error' event. The failure reaches the next query.
  const ignore = (): void => {};
  client.on('error', ignore);
  let broken: unknown;
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [MIGRATION_LOCK_CLASS, schema]);
    // Checked before created, so that a role without CREATE can open a schema migrated already.
    const found = await client.query<{ schema: boolean; versions: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS schema, to_regclass($2) IS NOT NULL AS versions`,
      [schema, `${quoted}.oao_schema_version`],
    );
    const { schema: schemaExists = false, versions: versionsExist = false } = found.rows[0] ?? {};
    if (!schemaExists) await client.query(`CREATE SCHEMA ${quoted}`);
    if (!versionsExist) {
      await client.query(`CREATE TABLE ${quoted}.oao_schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    }
    const current = await appliedVersion(client, quoted);
    if (current > POSTGRES_SCHEMA_VERSION) {
      throw new OaoError(
        'OAO_ERR_LOG_VERSION',
        `The PostgreSQL schema "${schema}" is at schema version ${current}, written by a newer runtime; this one reads up to ${POSTGRES_SCHEMA_VERSION}. Upgrade open-agent-orchestrator.`,
        { details: { schema, version: current, supportedVersion: POSTGRES_SCHEMA_VERSION } },
      );
    }
    for (const migration of postgresMigrations) {
      if (migration.version <= current) continue;
      await client.query(migration.sql(quoted));
      await client.query(`INSERT INTO ${quoted}.oao_schema_version (version) VALUES ($1)`, [migration.version]);
    }
    await client.query('COMMIT');
  } catch (error) {
    broken = error;
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.removeListener('error', ignore);
    // A connection that failed mid-transaction is dropped, not pooled.
    client.release(broken !== undefined && !OaoError.isInstance(broken) ? (broken as Error) : undefined);
  }
}

async function appliedVersion(client: PoolClient, quoted: string): Promise<number> {
  const result = await client.query<{ version: number | null }>(`SELECT max(version) AS version FROM ${quoted}.oao_schema_version`);
  return result.rows[0]?.version ?? 0;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Whether `name` can be a schema name here (letters, digits, underscores; at most 63). */
export function isSchemaName(name: string): boolean {
  return IDENTIFIER.test(name);
}

/** `name` as a quoted SQL identifier; only names that pass {@link isSchemaName} reach here. */
export function quoteIdentifier(name: string): string {
  return `"${name}"`;
}
