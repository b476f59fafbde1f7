import { createHash } from 'node:crypto';
import type { Pool, QueryResultRow } from 'pg';
import { requirePackages } from '../../cli/optionalPackages.js';
import { OaoError } from '../../errors.js';
import type { OaoEvent } from '../../events/schema.js';
import type { StoredWorkflowEvent } from '../../events/workflowSchema.js';
import { invalidOption, positiveIntegerOption, typeOf } from '../../options.js';
import type { ExecutionReport } from '../../report/schema.js';
import { leaseChange, leaseHeld, type LeaseChange } from '../leaseChange.js';
import { decodeCursor, decodeRow, decodeRows, encodeCursor, encodeEvent, indexUpdate, newEvents, pageLimit, runStatus, type LogRow } from '../logRows.js';
import {
  STORE_SCHEMA_VERSION,
  type AppendOptions,
  type Lease,
  type RunListFilter,
  type RunPage,
  type RunPageRequest,
  type RunStore,
  type RunStoreOptions,
  type StoredRun,
} from '../RunStore.js';
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
  storeClosed,
  storeOptions,
} from '../storeArguments.js';
import { decodeWorkflowRows, encodeWorkflowEvent, newWorkflowEvents, workflowAppendArguments, workflowRunIdArgument } from '../workflowLogRows.js';
import { isSchemaName, migrate, quoteIdentifier } from './migrations.js';
import { toStoreError } from './storeError.js';

export interface PostgresStoreOptions extends RunStoreOptions {
  /**
   * Where the database is, as node-postgres reads it (`postgres://user:password@host:5432/db`).
   * The store opens a pool of its own and ends it on `close()`. Give this or `pool`.
   */
  readonly connectionString?: string;
  /**
   * A node-postgres pool of yours. The store runs its statements on it and leaves it open on
   * `close()`: ending it stays your job. Give this or `connectionString`.
   */
  readonly pool?: Pool;
  /**
   * The schema the store's tables live in; created when missing. Letters, digits and
   * underscores, at most 63. Several stores can share a database with schemas of their own.
   * @default 'public'
   */
  readonly schema?: string;
  /** Connections of the store's own pool (not used with `pool`). @default 10 */
  readonly max?: number;
  /**
   * How long opening a connection may take before the call fails with
   * `OAO_ERR_STORE_UNAVAILABLE` (not used with `pool`).
   * @default 10000
   */
  readonly connectionTimeoutMs?: number;
  /**
   * Called when a pooled connection that was not in use fails (the server restarted or dropped
   * it). The pool replaces it on the next call; nothing else is needed.
   * @default ignored
   */
  readonly onPoolError?: (error: OaoError) => void;
  /**
   * PostgreSQL's `synchronous_commit` for the store's own connections. `'on'`: an append returns
   * once its events are flushed to the server's disk. `'off'`: once they are in the server's
   * memory; a crash of the database server or its host may lose the last appends (PostgreSQL
   * flushes them within about three times `wal_writer_delay`, 600 ms by default), never corrupts
   * the log, and a crash of this process loses nothing. Sequential appends get faster (1.3x to
   * 2x here; see docs/durability.md). With `pool`, set it on your pool, role or database instead.
   * @default 'on'
   */
  readonly synchronousCommit?: 'on' | 'off';
}

/** A {@link RunStore} over PostgreSQL: every method answers with a promise. */
export interface PostgresRunStore extends RunStore {
  /** The schema the tables are in. */
  readonly schema: string;
  /** Every call is a round trip to the server: `runSync` cannot record to this store; `run` can. */
  readonly synchronous: false;
  append(executionId: string, events: readonly OaoEvent[], options?: AppendOptions): Promise<void>;
  events(executionId: string, options?: { readonly fromSeq?: number }): Promise<readonly OaoEvent[]>;
  report(executionId: string): Promise<ExecutionReport | undefined>;
  get(executionId: string): Promise<StoredRun | undefined>;
  list(filter?: RunListFilter, page?: RunPageRequest): Promise<RunPage>;
  prune(): Promise<number>;
  acquireLease(executionId: string, owner: string, ttlMs: number): Promise<Lease | undefined>;
  renewLease(lease: Lease, ttlMs: number): Promise<boolean>;
  releaseLease(lease: Lease): Promise<void>;
  charge(scope: string, window: string, amounts: Readonly<Record<string, number>>): Promise<Readonly<Record<string, number>>>;
  counters(scope: string, window: string): Promise<Readonly<Record<string, number>>>;
  appendWorkflow(workflowRunId: string, events: readonly StoredWorkflowEvent[]): Promise<void>;
  workflowEvents(workflowRunId: string, options?: { readonly fromSeq?: number }): Promise<readonly StoredWorkflowEvent[]>;
  close(): Promise<void>;
}

const DEFAULT_MAX_CONNECTIONS = 10;
const DEFAULT_CONNECTION_TIMEOUT_MS = 10_000;
/** Rounds of "read what the log holds, append the rest" before concurrent writers are called a conflict. */
const MAX_APPEND_ROUNDS = 8;
/** Largest seq a PostgreSQL integer column holds: a fromSeq past it reads nothing. */
const MAX_SEQ = 2 ** 31 - 1;

/**
 * Opens a {@link RunStore} on PostgreSQL with node-postgres (`pg`, an optional peer dependency,
 * loaded only here). Creates or upgrades its tables first (migrations under an advisory lock),
 * so it resolves once the store is ready to use.
 *
 * Each `append` is one statement, one round trip: it checks the lease (or takes it, with
 * `acquire`) and the log's length, writes every event with one multi-row INSERT, updates the run's
 * index entry and releases the lease (with `release`), atomically.
 * Failures are typed: `OAO_ERR_STORE_UNAVAILABLE` while the server cannot be reached (the same
 * store works again once it is back), `OAO_ERR_STORE` with the SQLSTATE in `details.code`
 * otherwise. See docs/durability.md.
 *
 * @example
 * ```ts
 * import { createPostgresStore } from 'open-agent-orchestrator/postgres';
 * const store = await createPostgresStore({ connectionString: 'postgres://postgres@127.0.0.1:5432/app' });
 * const page = await store.list({ status: 'interrupted' });
 * await store.close();
 * ```
 */
export async function createPostgresStore(options: PostgresStoreOptions): Promise<PostgresRunStore> {
  const settings = checkOptions(options);
  let pool: Pool;
  if (settings.pool !== undefined) {
    pool = settings.pool;
  } else {
    try {
      await requirePackages('createPostgresStore', ['pg']);
      const pg = await import('pg');
      // node-postgres is CommonJS: its classes are named exports and properties of the default one.
      const PoolClass = pg.Pool ?? (pg as unknown as { default: typeof pg }).default.Pool;
      pool = new PoolClass({
        connectionString: settings.connectionString,
        max: settings.max,
        connectionTimeoutMillis: settings.connectionTimeoutMs,
        // A startup parameter of every connection: no statement of its own.
        ...(settings.synchronousCommit === 'off' ? { options: '-c synchronous_commit=off' } : {}),
      });
    } catch (error) {
      throw toStoreError(error, 'load pg');
    }
  }
  const onPoolError = (error: Error): void => {
    // An idle connection died (the server restarted): the pool drops it and opens another on the
    // next call. Without this listener the process would crash on the pool's 'error' event.
    try {
      settings.onPoolError?.(toStoreError(error, 'idle connection'));
    } catch {
      // an observer that throws changes nothing
    }
  };
  pool.on('error', onPoolError);
  const ownsPool = settings.pool === undefined;
  try {
    await migrate(pool, settings.schema);
  } catch (error) {
    if (ownsPool) await pool.end().catch(() => undefined);
    else pool.removeListener('error', onPoolError);
    throw toStoreError(error, 'migrate');
  }
  return new PostgresStore(pool, ownsPool, onPoolError, settings);
}

interface Settings {
  readonly connectionString?: string;
  readonly pool?: Pool;
  readonly schema: string;
  readonly max: number;
  readonly connectionTimeoutMs: number;
  readonly maxRuns: number | undefined;
  readonly maxAgeMs: number | undefined;
  readonly now: () => number;
  readonly onPoolError?: (error: OaoError) => void;
  readonly synchronousCommit: 'on' | 'off';
}

function checkOptions(options: PostgresStoreOptions): Settings {
  if (typeof options !== 'object' || options === null) {
    throw invalidOption('options', `Expected PostgreSQL store options to be an object, got ${typeOf(options)}`);
  }
  const { connectionString, pool } = options;
  if ((connectionString === undefined) === (pool === undefined)) {
    throw invalidOption('connectionString', 'Pass exactly one of "connectionString" and "pool" to createPostgresStore');
  }
  if (connectionString !== undefined && (typeof connectionString !== 'string' || connectionString === '')) {
    throw invalidOption('connectionString', `Expected connectionString to be a non-empty string, got ${typeOf(connectionString)}`);
  }
  if (pool !== undefined && (typeof pool !== 'object' || pool === null || typeof pool.query !== 'function' || typeof pool.connect !== 'function')) {
    throw invalidOption('pool', 'Expected pool to be a node-postgres Pool');
  }
  const schema = options.schema ?? 'public';
  if (typeof schema !== 'string' || !isSchemaName(schema)) {
    throw invalidOption(
      'schema',
      `Expected schema to be 1 to 63 letters, digits or underscores, not starting with a digit, got ${typeof schema === 'string' ? JSON.stringify(schema) : typeOf(schema)}`,
    );
  }
  if (options.onPoolError !== undefined && typeof options.onPoolError !== 'function') {
    throw invalidOption('onPoolError', `Expected onPoolError to be a function, got ${typeOf(options.onPoolError)}`);
  }
  const synchronousCommit = options.synchronousCommit ?? 'on';
  if (synchronousCommit !== 'on' && synchronousCommit !== 'off') {
    throw invalidOption('synchronousCommit', `Expected synchronousCommit to be "on" or "off", got ${typeof synchronousCommit === 'string' ? JSON.stringify(synchronousCommit) : typeOf(synchronousCommit)}`);
  }
  if (pool !== undefined && options.synchronousCommit !== undefined) {
    throw invalidOption('synchronousCommit', 'synchronousCommit applies to the store\'s own pool: with "pool", set synchronous_commit on your pool, role or database');
  }
  return {
    ...(connectionString === undefined ? {} : { connectionString }),
    ...(pool === undefined ? {} : { pool }),
    synchronousCommit,
    schema,
    max: options.max === undefined ? DEFAULT_MAX_CONNECTIONS : positiveIntegerOption(options.max, 'max'),
    connectionTimeoutMs:
      options.connectionTimeoutMs === undefined ? DEFAULT_CONNECTION_TIMEOUT_MS : positiveIntegerOption(options.connectionTimeoutMs, 'connectionTimeoutMs'),
    ...storeOptions(options),
    ...(options.onPoolError === undefined ? {} : { onPoolError: options.onPoolError }),
  };
}

/** Rows as node-postgres returns them: bigint columns arrive as strings. */
interface RunRow {
  readonly execution_id: string;
  readonly agent_name: string;
  readonly started_ms: string;
  readonly status: 'SUCCESS' | 'FAILED' | null;
  readonly finished_at: string | null;
  readonly event_count: number;
  readonly expires_ms: number | null;
}

interface AppendRow {
  readonly appended: boolean;
  readonly lease_held: boolean;
  /** The token of the lease the append took (bigint, as text), or null. */
  readonly token: string | null;
}

interface Statement {
  readonly name: string;
  readonly text: string;
}

type QueryAnswer<Row> = { readonly rows: Row[]; readonly rowCount: number | null };

const RUN_COLUMNS = 'r.execution_id, r.agent_name, r.started_ms, r.status, r.finished_at, r.event_count, l.expires_ms';

class PostgresStore implements PostgresRunStore {
  readonly schema: string;
  readonly synchronous = false;
  readonly #pool: Pool;
  readonly #ownsPool: boolean;
  readonly #onPoolError: (error: Error) => void;
  readonly #now: () => number;
  readonly #maxRuns: number | undefined;
  readonly #maxAgeMs: number | undefined;
  readonly #runs: string;
  readonly #leases: string;
  /** Prefix of prepared statement names: one pool may serve stores of several schemas. */
  readonly #prefix: string;
  readonly #sql: ReturnType<typeof statements>;
  #closing: Promise<void> | undefined;

  constructor(pool: Pool, ownsPool: boolean, onPoolError: (error: Error) => void, settings: Settings) {
    this.#pool = pool;
    this.#ownsPool = ownsPool;
    this.#onPoolError = onPoolError;
    this.#now = settings.now;
    this.#maxRuns = settings.maxRuns;
    this.#maxAgeMs = settings.maxAgeMs;
    this.schema = settings.schema;
    const schema = quoteIdentifier(settings.schema);
    this.#runs = `${schema}.oao_runs`;
    this.#leases = `${schema}.oao_leases`;
    this.#prefix = `oao_${createHash('sha256').update(settings.schema).digest('hex').slice(0, 12)}_`;
    this.#sql = statements(this.#runs, `${schema}.oao_events`, this.#leases, `${schema}.oao_counters`, `${schema}.oao_workflow_events`);
  }

  /**
   * Reads the log's length (and the texts a retried batch overlaps), then inserts the new events
   * in one statement that writes only while the log still ends there; a writer that got there
   * first makes it read again.
   */
  async appendWorkflow(workflowRunId: string, events: readonly StoredWorkflowEvent[]): Promise<void> {
    this.#checkOpen();
    workflowAppendArguments(workflowRunId, events);
    if (events.length === 0) return;
    const first = (events[0] as StoredWorkflowEvent).seq;
    const last = (events[events.length - 1] as StoredWorkflowEvent).seq;
    for (let round = 0; round < MAX_APPEND_ROUNDS; round++) {
      const answer = await this.#run<{ stored: number; seq: number | null; body: string | null }>('appendWorkflow', this.#sql.workflowRange, [workflowRunId, first, last]);
      const stored = answer.rows[0]?.stored ?? 0;
      const texts = new Map<number, string>();
      for (const row of answer.rows) if (row.seq !== null && row.body !== null) texts.set(row.seq, row.body);
      const fresh = newWorkflowEvents(workflowRunId, events, stored, (seq) => texts.get(seq));
      if (fresh.length === 0) return;
      const bodies = fresh.map((event) => encodeWorkflowEvent(event));
      try {
        const inserted = await this.#query(this.#sql.appendWorkflow, [workflowRunId, stored, bodies, STORE_SCHEMA_VERSION]);
        if (inserted.rowCount === fresh.length) return;
      } catch (error) {
        // Another writer inserted the same seq between the read and the insert: read again.
        if (sqlStateOf(error) !== '23505') throw toStoreError(error, 'appendWorkflow');
      }
    }
    throw new OaoError('OAO_ERR_LOG_CONFLICT', `Cannot append to workflow run "${workflowRunId}": other writers kept appending to it`, { details: { workflowRunId, seq: first } });
  }

  async workflowEvents(workflowRunId: string, options?: { readonly fromSeq?: number }): Promise<readonly StoredWorkflowEvent[]> {
    this.#checkOpen();
    workflowRunIdArgument(workflowRunId);
    const fromSeq = fromSeqOption(options);
    if (fromSeq > MAX_SEQ) return [];
    const answer = await this.#run<{ seq: number; version: number; body: string }>('workflowEvents', this.#sql.workflowEvents, [workflowRunId, fromSeq]);
    return decodeWorkflowRows(workflowRunId, answer.rows, fromSeq);
  }

  async append(executionId: string, events: readonly OaoEvent[], options?: AppendOptions): Promise<void> {
    this.#checkOpen();
    const lease = appendArguments(executionId, events, options);
    const change = leaseChange(options, lease);
    // A copy: the caller may change its array while the append is on its way.
    const batch = [...events];
    const first = batch[0];
    let bodies: string[] = [];
    if (first !== undefined) {
      // Order, run id and the start of a run are checked before any round trip.
      newEvents(executionId, batch, first.seq, () => undefined);
      bodies = encodeBodies(batch);
    }
    // A lease of another run is never this run's current one.
    if (lease !== undefined && lease.executionId !== executionId) throw leaseLost(executionId, lease);
    let taken: Lease | undefined;
    try {
      taken = first === undefined ? await this.#changeLease(executionId, lease, change) : await this.#appendBatch(executionId, batch, bodies, lease, change);
    } catch (error) {
      throw toStoreError(error, 'append');
    }
    if (taken !== undefined) change.acquire?.onAcquired?.(taken);
  }

  async #appendBatch(
    executionId: string,
    events: readonly OaoEvent[],
    bodies: readonly string[],
    lease: Lease | undefined,
    change: LeaseChange,
  ): Promise<Lease | undefined> {
    let pending = events;
    let pendingBodies = bodies;
    for (let round = 1; ; round += 1) {
      const outcome = await this.#tryAppend(executionId, pending, pendingBodies, lease, change);
      if (typeof outcome === 'object') return outcome.taken;
      if (outcome === 'lease lost') {
        if (lease !== undefined) throw leaseLost(executionId, lease);
        if (change.acquire !== undefined) throw leaseHeld(executionId, change.acquire.owner);
      }
      if (round >= MAX_APPEND_ROUNDS) {
        throw new OaoError('OAO_ERR_LOG_CONFLICT', `Cannot append to run "${executionId}": other writers kept extending its log`, {
          details: { executionId, seq: (pending[0] as OaoEvent).seq },
        });
      }
      // The log does not end where the batch starts: compare what it already holds, keep the rest.
      const fresh = await this.#unstoredEvents(executionId, events);
      // Every event is stored already: the append succeeds, and changes the lease as asked.
      if (fresh.length === 0) return this.#changeLease(executionId, lease, change);
      pending = fresh;
      pendingBodies = bodies.slice(bodies.length - fresh.length);
    }
  }

  /**
   * The lease change of an append that writes no event (an empty batch, or one the log holds
   * already), with the statements of acquireLease and releaseLease.
   */
  async #changeLease(executionId: string, lease: Lease | undefined, change: LeaseChange): Promise<Lease | undefined> {
    let taken: Lease | undefined;
    if (change.acquire !== undefined) {
      const { owner, ttlMs } = change.acquire;
      const now = this.#now();
      const answer = await this.#query<{ token: string; expires_ms: number }>(this.#sql.acquireLease, [executionId, owner, now + ttlMs, now]);
      const row = answer.rows[0];
      if (row === undefined) throw leaseHeld(executionId, owner);
      taken = { executionId, owner, token: Number(row.token), expiresAt: row.expires_ms };
    }
    const released = taken ?? lease;
    if (change.release && released !== undefined) await this.#query(this.#sql.releaseLease, [executionId, released.owner, released.token, this.#now()]);
    return taken;
  }

  /**
   * One round trip: the append, when the log ends where the batch starts and the lease holds (or,
   * with `acquire`, can be taken). Answers the lease taken, if any, once appended.
   */
  async #tryAppend(
    executionId: string,
    events: readonly OaoEvent[],
    bodies: readonly string[],
    lease: Lease | undefined,
    change: LeaseChange,
  ): Promise<{ readonly taken: Lease | undefined } | 'lease lost' | 'elsewhere'> {
    const update = indexUpdate(events);
    const completed = update.report === undefined ? undefined : events.find((event) => event.type === 'EXECUTION_COMPLETE');
    const now = change.acquire !== undefined || change.release ? this.#now() : null;
    const expires = change.acquire === undefined ? null : (now as number) + change.acquire.ttlMs;
    let row: AppendRow | undefined;
    try {
      const answer = await this.#query<AppendRow>(this.#sql.append, [
        executionId,
        (events[0] as OaoEvent).seq,
        bodies,
        STORE_SCHEMA_VERSION,
        lease?.owner ?? change.acquire?.owner ?? null,
        lease?.token ?? null,
        update.agentName ?? null,
        // The index keeps whole milliseconds, as the ISO startedAt and list cursors do.
        update.startedAt === undefined ? null : Math.trunc(update.startedAt),
        update.report?.status ?? null,
        update.report?.finishedAt ?? null,
        update.report === undefined ? null : Date.parse(update.report.finishedAt),
        completed?.seq ?? null,
        expires,
        now,
        change.release,
      ]);
      row = answer.rows[0];
    } catch (error) {
      // Another writer created the run or wrote these seqs between our read and our write.
      if (sqlStateOf(error) === '23505') return 'elsewhere';
      throw error;
    }
    if (row?.appended === true) {
      const acquired = change.acquire;
      if (acquired === undefined || row.token === null) return { taken: undefined };
      return { taken: { executionId, owner: acquired.owner, token: Number(row.token), expiresAt: expires as number } };
    }
    if (row?.lease_held === false) return 'lease lost';
    return 'elsewhere';
  }

  /** The events of the batch the log does not hold yet, after checking that those it holds are the same. */
  async #unstoredEvents(executionId: string, events: readonly OaoEvent[]): Promise<OaoEvent[]> {
    const first = (events[0] as OaoEvent).seq;
    const last = (events[events.length - 1] as OaoEvent).seq;
    const answer = await this.#query<{ event_count: number; seq: number | null; body: string | null }>(this.#sql.storedRange, [executionId, first, last]);
    const stored = answer.rows[0]?.event_count ?? 0;
    const texts = new Map<number, string>();
    for (const row of answer.rows) if (row.seq !== null && row.body !== null) texts.set(row.seq, row.body);
    return newEvents(executionId, events, stored, (seq) => texts.get(seq));
  }

  async events(executionId: string, options?: { readonly fromSeq?: number }): Promise<readonly OaoEvent[]> {
    this.#checkOpen();
    runId(executionId);
    const fromSeq = fromSeqOption(options);
    if (fromSeq > MAX_SEQ) return [];
    const answer = await this.#run<{ event_count: number; seq: number | null; version: number; body: string }>('events', this.#sql.events, [executionId, fromSeq]);
    const head = answer.rows[0];
    if (head === undefined) return [];
    const rows: LogRow[] = [];
    for (const row of answer.rows) if (row.seq !== null) rows.push({ seq: row.seq, version: row.version, body: row.body });
    const decoded = decodeRows(executionId, rows, fromSeq);
    // decodeRows sees gaps between rows; the index says where the log ends, so a lost tail shows too.
    const expected = Math.max(0, head.event_count - fromSeq);
    if (decoded.length !== expected) {
      const seq = fromSeq + Math.min(decoded.length, expected);
      throw new OaoError(
        'OAO_ERR_LOG_CORRUPT',
        decoded.length < expected
          ? `Event ${seq} of run "${executionId}" is damaged: the log has no event ${seq} (its index counts ${head.event_count})`
          : `Event ${seq} of run "${executionId}" is damaged: the log holds events past the ${head.event_count} its index counts`,
        { details: { executionId, seq } },
      );
    }
    return decoded;
  }

  async report(executionId: string): Promise<ExecutionReport | undefined> {
    this.#checkOpen();
    runId(executionId);
    const answer = await this.#run<{ report_seq: number | null; seq: number | null; version: number; body: string }>('report', this.#sql.report, [executionId]);
    const row = answer.rows[0];
    if (row === undefined || row.report_seq === null) return undefined;
    const damaged = (why: string): OaoError =>
      new OaoError('OAO_ERR_LOG_CORRUPT', `Event ${row.report_seq} of run "${executionId}" is damaged: ${why}`, { details: { executionId, seq: row.report_seq } });
    if (row.seq === null) throw damaged("the log has lost the run's EXECUTION_COMPLETE");
    const event = decodeRow(executionId, row.report_seq, row.seq, row.version, row.body);
    if (event.type !== 'EXECUTION_COMPLETE') throw damaged(`the index points to a ${event.type} event, not EXECUTION_COMPLETE`);
    return event.payload.report;
  }

  async get(executionId: string): Promise<StoredRun | undefined> {
    this.#checkOpen();
    runId(executionId);
    const now = this.#now();
    const answer = await this.#run<RunRow>('get', this.#sql.get, [executionId]);
    const row = answer.rows[0];
    return row === undefined ? undefined : storedRun(row, now);
  }

  async list(filter?: RunListFilter, page: RunPageRequest = {}): Promise<RunPage> {
    this.#checkOpen();
    const { agentName, status, since, until } = listFilter(filter);
    if (typeof page !== 'object' || page === null) throw invalidOption('page', `Expected the page request to be an object, got ${typeOf(page)}`);
    const limit = pageLimit(page.limit);
    const cursor = page.cursor === undefined ? undefined : decodeCursor(page.cursor);
    const now = this.#now();
    // Only the conditions in use go into the statement, so each shape gets a plan that fits its
    // index; each shape is prepared once per connection under a name of its own.
    const conditions: string[] = [];
    const values: unknown[] = [];
    let shape = '';
    const bind = (value: unknown): string => `$${values.push(value)}`;
    if (agentName !== undefined) {
      conditions.push(`r.agent_name = ${bind(agentName)}`);
      shape += 'a';
    }
    // started_ms holds whole milliseconds: "at or after t" is "at or after ceil(t)", "before t" is "before ceil(t)".
    if (since !== undefined) {
      conditions.push(`r.started_ms >= ${bind(Math.ceil(since))}::bigint`);
      shape += 's';
    }
    if (until !== undefined) {
      conditions.push(`r.started_ms < ${bind(Math.ceil(until))}::bigint`);
      shape += 'u';
    }
    if (status === 'SUCCESS' || status === 'FAILED') {
      conditions.push(`r.status = ${bind(status)}`);
      shape += 'f';
    } else if (status === 'running') {
      conditions.push(`r.status IS NULL AND (l.expires_ms IS NULL OR l.expires_ms > ${bind(now)}::float8)`);
      shape += 'r';
    } else if (status === 'interrupted') {
      conditions.push(`r.status IS NULL AND l.expires_ms <= ${bind(now)}::float8`);
      shape += 'i';
    }
    if (cursor !== undefined) {
      conditions.push(`(r.started_ms, r.execution_id) < (${bind(Math.trunc(cursor.startedAt))}::bigint, ${bind(cursor.executionId)}::text)`);
      shape += 'c';
    }
    const where = conditions.length === 0 ? '' : `WHERE ${conditions.join(' AND ')}`;
    const text = `SELECT ${RUN_COLUMNS} FROM ${this.#runs} r LEFT JOIN ${this.#leases} l ON l.execution_id = r.execution_id ${where} ORDER BY r.started_ms DESC, r.execution_id DESC LIMIT ${bind(limit + 1)}`;
    const answer = await this.#run<RunRow>('list', { name: `list_${shape}`, text }, values);
    const runs = answer.rows.slice(0, limit).map((row) => storedRun(row, now));
    const last = runs[runs.length - 1];
    return { runs, nextCursor: answer.rows.length > limit && last !== undefined ? encodeCursor(last) : null };
  }

  async prune(): Promise<number> {
    this.#checkOpen();
    if (this.#maxRuns === undefined && this.#maxAgeMs === undefined) return 0;
    // finished_ms is whole milliseconds: "before t" is "before ceil(t)", whatever fraction the clock has.
    const cutoff = this.#maxAgeMs === undefined ? null : Math.ceil(this.#now() - this.#maxAgeMs);
    const answer = await this.#run('prune', this.#sql.prune, [this.#maxRuns ?? null, cutoff]);
    return answer.rowCount ?? 0;
  }

  async acquireLease(executionId: string, owner: string, ttlMs: number): Promise<Lease | undefined> {
    this.#checkOpen();
    runId(executionId);
    leaseOwner(owner);
    leaseTtl(ttlMs);
    const now = this.#now();
    const answer = await this.#run<{ token: string; expires_ms: number }>('acquireLease', this.#sql.acquireLease, [executionId, owner, now + ttlMs, now]);
    const row = answer.rows[0];
    return row === undefined ? undefined : { executionId, owner, token: Number(row.token), expiresAt: row.expires_ms };
  }

  async renewLease(lease: Lease, ttlMs: number): Promise<boolean> {
    this.#checkOpen();
    const held = checkLease(lease);
    leaseTtl(ttlMs);
    const answer = await this.#run('renewLease', this.#sql.renewLease, [held.executionId, held.owner, held.token, this.#now() + ttlMs]);
    return answer.rowCount === 1;
  }

  async releaseLease(lease: Lease): Promise<void> {
    this.#checkOpen();
    const held = checkLease(lease);
    await this.#run('releaseLease', this.#sql.releaseLease, [held.executionId, held.owner, held.token, this.#now()]);
  }

  async charge(scope: string, window: string, amounts: Readonly<Record<string, number>>): Promise<Readonly<Record<string, number>>> {
    this.#checkOpen();
    const entries = chargeArguments(scope, window, amounts);
    const names = entries.map(([name]) => name);
    try {
      const answer = await this.#query<{ name: string; value: string }>(this.#sql.charge, [scope, window, names, entries.map(([, amount]) => amount)]);
      return counterTotals(answer.rows);
    } catch (error) {
      // The table keeps every counter a safe integer; a charge past that changed nothing.
      if (sqlStateOf(error) === '23514' || sqlStateOf(error) === '22003') throw await this.#unsafeTotal(scope, window, entries);
      throw toStoreError(error, 'charge');
    }
  }

  /** The error naming the counter a refused charge would have taken past the safe integers. */
  async #unsafeTotal(scope: string, window: string, entries: ReadonlyArray<[string, number]>): Promise<OaoError> {
    const current = await this.counters(scope, window);
    try {
      for (const [name, amount] of entries) checkedTotal(scope, window, name, (current[name] ?? 0) + amount);
    } catch (error) {
      if (OaoError.isInstance(error)) return error;
    }
    return new OaoError('OAO_ERR_INVALID_ARGUMENT', `The charge would take a counter of "${scope}" (${window}) past the safe integers`, {
      details: { field: 'amounts', scope, window },
    });
  }

  async counters(scope: string, window: string): Promise<Readonly<Record<string, number>>> {
    this.#checkOpen();
    counterKey(scope, window);
    const answer = await this.#run<{ name: string; value: string }>('counters', this.#sql.counters, [scope, window]);
    return counterTotals(answer.rows);
  }

  close(): Promise<void> {
    if (this.#closing === undefined) {
      if (this.#ownsPool) {
        this.#closing = this.#pool.end().catch(() => undefined);
      } else {
        this.#pool.removeListener('error', this.#onPoolError);
        this.#closing = Promise.resolve();
      }
    }
    return this.#closing;
  }

  #checkOpen(): void {
    if (this.#closing !== undefined) throw storeClosed();
  }

  /** A statement with its failures typed. */
  async #run<Row extends QueryResultRow = QueryResultRow>(operation: string, statement: Statement, values: readonly unknown[]): Promise<QueryAnswer<Row>> {
    try {
      return await this.#query<Row>(statement, values);
    } catch (error) {
      throw toStoreError(error, operation);
    }
  }

  /** A named prepared statement: parsed and planned once per connection. */
  async #query<Row extends QueryResultRow>(statement: Statement, values: readonly unknown[]): Promise<QueryAnswer<Row>> {
    return this.#pool.query<Row>({ name: this.#prefix + statement.name, text: statement.text, values: [...values] });
  }
}

function statements(runs: string, events: string, leases: string, counters: string, workflowEvents: string) {
  return {
    /** A workflow log's length, with the stored texts of seqs $2..$3. */
    workflowRange: {
      name: 'workflow_range',
      text: `
        SELECT (SELECT count(*)::integer FROM ${workflowEvents} WHERE workflow_run_id = $1) AS stored, e.seq, e.body
        FROM (SELECT 1) AS one LEFT JOIN ${workflowEvents} e ON e.workflow_run_id = $1 AND e.seq BETWEEN $2 AND $3`,
    },
    /** Appends $3 at seq $2 onwards, only while the log holds exactly $2 events. */
    appendWorkflow: {
      name: 'append_workflow',
      text: `
        INSERT INTO ${workflowEvents} (workflow_run_id, seq, version, body)
        SELECT $1, $2::integer + item.ord::integer - 1, $4::smallint, item.body
        FROM unnest($3::text[]) WITH ORDINALITY AS item(body, ord)
        WHERE (SELECT count(*) FROM ${workflowEvents} WHERE workflow_run_id = $1) = $2::integer`,
    },
    workflowEvents: {
      name: 'workflow_events',
      text: `SELECT seq, version, body FROM ${workflowEvents} WHERE workflow_run_id = $1 AND seq >= $2 ORDER BY seq`,
    },
    /**
     * Appends a batch in one statement. $1 run, $2 first seq, $3 event texts, $4 row format,
     * $5/$6 lease owner and token (NULL: no lease), $7/$8 agent and start (EXECUTION_START in the
     * batch), $9-$12 status, finishedAt, its ms and the report's seq (EXECUTION_COMPLETE in the
     * batch), $13 the expiry of a lease to acquire for $5 (NULL: none), $14 now (with $13 or $15),
     * $15 release the lease after writing. It writes only when the lease is current (or, with
     * $13, can be taken: free, expired or $5's already) and the log ends at $2. The run's index
     * row is locked (FOR UPDATE) and the lease row shared (FOR SHARE) or taken (its upsert locks
     * it): a concurrent append or takeover waits, and is then judged on what it finds. Otherwise
     * it says why it did not write. A lease taken and released in one append is written released.
     */
    append: {
      name: 'append',
      text: `
        WITH run AS (
          SELECT event_count FROM ${runs} WHERE execution_id = $1 FOR UPDATE
        ), stored AS (
          SELECT coalesce((SELECT event_count FROM run), 0) AS n
        ), taken AS (
          INSERT INTO ${leases} AS l (execution_id, owner, token, expires_ms)
          SELECT $1, CASE WHEN $15::boolean THEN NULL ELSE $5::text END, 1, CASE WHEN $15::boolean THEN $14::float8 ELSE $13::float8 END
          FROM stored WHERE $13::float8 IS NOT NULL AND stored.n = $2::integer
          ON CONFLICT (execution_id) DO UPDATE SET
            token = CASE WHEN l.owner = $5::text THEN l.token ELSE l.token + 1 END,
            owner = EXCLUDED.owner,
            expires_ms = EXCLUDED.expires_ms
          WHERE l.owner IS NULL OR l.owner = $5::text OR l.expires_ms <= $14::float8
          RETURNING l.token
        ), holder AS (
          SELECT 1 FROM ${leases} WHERE execution_id = $1 AND owner = $5::text AND token = $6::bigint FOR SHARE
        ), checks AS (
          SELECT CASE
                   WHEN $13::float8 IS NOT NULL THEN stored.n <> $2::integer OR EXISTS (SELECT 1 FROM taken)
                   ELSE $5::text IS NULL OR EXISTS (SELECT 1 FROM holder)
                 END AS lease_held,
                 stored.n AS stored
          FROM stored
        ), verdict AS (
          SELECT lease_held AND stored = $2::integer AS go FROM checks
        ), started AS (
          INSERT INTO ${runs} (execution_id, agent_name, started_ms, status, finished_at, finished_ms, report_seq, event_count)
          SELECT $1, $7::text, $8::bigint, $9::text, $10::text, $11::bigint, $12::integer, cardinality($3::text[])
          FROM verdict WHERE go AND $2::integer = 0
        ), grown AS (
          UPDATE ${runs} SET
            event_count = $2::integer + cardinality($3::text[]),
            status = coalesce($9::text, status),
            finished_at = coalesce($10::text, finished_at),
            finished_ms = coalesce($11::bigint, finished_ms),
            report_seq = coalesce($12::integer, report_seq)
          FROM verdict WHERE verdict.go AND $2::integer > 0 AND execution_id = $1
        ), logged AS (
          INSERT INTO ${events} (execution_id, seq, version, body)
          SELECT $1, $2::integer + item.ord::integer - 1, $4::smallint, item.body
          FROM verdict, unnest($3::text[]) WITH ORDINALITY AS item(body, ord)
          WHERE verdict.go
        ), released AS (
          UPDATE ${leases} SET owner = NULL, expires_ms = least(expires_ms, $14::float8)
          FROM verdict
          WHERE verdict.go AND $15::boolean AND $13::float8 IS NULL AND execution_id = $1 AND owner = $5::text AND token = $6::bigint
        )
        SELECT verdict.go AS appended, checks.lease_held, (SELECT token FROM taken) AS token FROM verdict, checks`,
    },
    /** The log's length and the stored texts of seqs $2..$3 (to compare a retried batch with). */
    storedRange: {
      name: 'stored_range',
      text: `
        SELECT r.event_count, e.seq, e.body
        FROM ${runs} r LEFT JOIN ${events} e ON e.execution_id = r.execution_id AND e.seq BETWEEN $2 AND $3
        WHERE r.execution_id = $1`,
    },
    /** The log from $2, with the length the index counts (one row with a NULL seq when none is past $2). */
    events: {
      name: 'events',
      text: `
        SELECT r.event_count, e.seq, e.version, e.body
        FROM ${runs} r LEFT JOIN ${events} e ON e.execution_id = r.execution_id AND e.seq >= $2
        WHERE r.execution_id = $1
        ORDER BY e.seq`,
    },
    report: {
      name: 'report',
      text: `
        SELECT r.report_seq, e.seq, e.version, e.body
        FROM ${runs} r LEFT JOIN ${events} e ON e.execution_id = r.execution_id AND e.seq = r.report_seq
        WHERE r.execution_id = $1`,
    },
    get: {
      name: 'get',
      text: `SELECT ${RUN_COLUMNS} FROM ${runs} r LEFT JOIN ${leases} l ON l.execution_id = r.execution_id WHERE r.execution_id = $1`,
    },
    /**
     * Deletes finished runs beyond the $1 that finished last, and those that finished before $2,
     * with their logs and leases. Unfinished runs and counters are never touched.
     */
    prune: {
      name: 'prune',
      text: `
        WITH finished AS (
          SELECT execution_id, finished_ms, row_number() OVER (ORDER BY finished_ms DESC, execution_id DESC) AS newer
          FROM ${runs} WHERE status IS NOT NULL
        ), doomed AS (
          SELECT execution_id FROM finished WHERE newer > $1::bigint OR finished_ms < $2::bigint
        ), dropped_events AS (
          DELETE FROM ${events} e USING doomed d WHERE e.execution_id = d.execution_id
        ), dropped_leases AS (
          DELETE FROM ${leases} l USING doomed d WHERE l.execution_id = d.execution_id
        )
        DELETE FROM ${runs} r USING doomed d WHERE r.execution_id = d.execution_id`,
    },
    /**
     * Takes the lease for $2 until $3 when it is free, expired ($4 is now) or already $2's. A new
     * holder gets the next token; the same holder keeps its token.
     */
    acquireLease: {
      name: 'acquire_lease',
      text: `
        INSERT INTO ${leases} AS l (execution_id, owner, token, expires_ms) VALUES ($1, $2, 1, $3)
        ON CONFLICT (execution_id) DO UPDATE SET
          token = CASE WHEN l.owner = EXCLUDED.owner THEN l.token ELSE l.token + 1 END,
          owner = EXCLUDED.owner,
          expires_ms = EXCLUDED.expires_ms
        WHERE l.owner IS NULL OR l.owner = EXCLUDED.owner OR l.expires_ms <= $4::float8
        RETURNING l.token, l.expires_ms`,
    },
    /** Extends the lease while its holder and token are current, expired or not: tokens fence, not clocks. */
    renewLease: {
      name: 'renew_lease',
      text: `UPDATE ${leases} SET expires_ms = $4 WHERE execution_id = $1 AND owner = $2 AND token = $3`,
    },
    /** Frees the lease; it counts as expired from now on, so an unfinished run shows as interrupted. */
    releaseLease: {
      name: 'release_lease',
      text: `UPDATE ${leases} SET owner = NULL, expires_ms = least(expires_ms, $4) WHERE execution_id = $1 AND owner = $2 AND token = $3`,
    },
    /** Adds to the counters atomically; answers every counter of the scope and window. */
    charge: {
      name: 'charge',
      text: `
        WITH charged AS (
          INSERT INTO ${counters} AS c (scope, period, name, value)
          SELECT $1, $2, item.name, item.amount FROM unnest($3::text[], $4::bigint[]) AS item(name, amount)
          ON CONFLICT (scope, period, name) DO UPDATE SET value = c.value + EXCLUDED.value
          RETURNING c.name, c.value
        )
        SELECT name, value FROM charged
        UNION ALL
        SELECT name, value FROM ${counters} WHERE scope = $1 AND period = $2 AND name <> ALL($3::text[])`,
    },
    counters: {
      name: 'counters',
      text: `SELECT name, value FROM ${counters} WHERE scope = $1 AND period = $2`,
    },
  } satisfies Record<string, Statement>;
}

function sqlStateOf(error: unknown): unknown {
  return typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
}

function encodeBodies(events: readonly OaoEvent[]): string[] {
  return events.map((event) => {
    try {
      return encodeEvent(event);
    } catch (error) {
      throw invalidOption('events', `Event ${String(event.seq)} cannot be stored as JSON: ${(error as Error).message}`);
    }
  });
}

function storedRun(row: RunRow, now: number): StoredRun {
  const expires = row.expires_ms ?? undefined;
  return {
    executionId: row.execution_id,
    agentName: row.agent_name,
    status: runStatus(row.status === null ? undefined : { status: row.status }, expires, now),
    startedAt: new Date(Number(row.started_ms)).toISOString(),
    ...(row.finished_at === null ? {} : { finishedAt: row.finished_at }),
    eventCount: row.event_count,
  };
}

function counterTotals(rows: readonly { name: string; value: string }[]): Record<string, number> {
  return Object.fromEntries(rows.map((row) => [row.name, Number(row.value)]));
}
