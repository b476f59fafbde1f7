import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import LibsqlDatabase from 'libsql';
import { Orchestrator, createMemoryStore, type AgentLike, type ExecutionReport, type OaoEvent, type RunStore } from 'open-agent-orchestrator';
import { createPostgresStore, type PostgresRunStore } from 'open-agent-orchestrator/postgres';
import { createSqliteStore, type SqliteRunStore } from 'open-agent-orchestrator/sqlite';
import pg from 'pg';
import { DummyAgent, TASK } from '../baselines.js';
import {
  quantile,
  summarize,
  type BenchCase,
  type BenchEnv,
  type BenchRatio,
  type BenchRow,
  type BenchTarget,
  type CustomCase,
  type Op,
} from '../harness.js';
import { barePopulation, measureHeapPopulations, type Population } from './heap.js';

/**
 * Durable runs: what recording every event of a run to a store costs, against the same trivial
 * run with no store, measured in the same process.
 *
 * - Time rows (interleaved with every other time case): `await orch.run()` with no store, with a
 *   memory store, with SQLite at `synchronous` NORMAL and FULL (a temp file), at NORMAL with random
 *   (version 4) run ids instead of the default time-ordered ones, at NORMAL with SQLite's own
 *   checkpoints instead of the store's checkpoint thread; the floor of a
 *   bare better-sqlite3 transaction of the same 13 events; and replay, from a store by id and
 *   from events in hand.
 * - PostgreSQL: runs/s, p50 and p99 of durable runs, sequential and 50 concurrent, on a database
 *   of the bench's own at 127.0.0.1:5432 (created and dropped here). When the server cannot be
 *   reached the rows are printed as skipped with the reason; the bench goes on.
 * - Heap per live run with a store against a live bare XState actor (bench/cases/heap.ts).
 */

const agent = new DummyAgent();

/** Runs recorded before the replay rows are measured; replay cycles through them. */
const RECORDED_RUNS = 1_000;

/**
 * A SQLite store's row keys: run_key * 2^32 + seq (its schema, src/store/sqlite/migrations.ts). The
 * read floor row uses them and checks that it finds as many events as the store.
 */
const SEQ_SPAN = 4_294_967_296;

/** Concurrent callers of the concurrent PostgreSQL row. */
const PG_CONCURRENCY = 50;

/** The server's maintenance database: where the bench creates and drops a database of its own. */
const PG_ADMIN = 'postgres://postgres@127.0.0.1:5432/postgres';

// ---- temp files and stores, closed and removed when the bench process ends ------------------

let tempDir: string | undefined;
const openStores: { close(): unknown }[] = [];

/** A fresh SQLite file path in the bench's temp dir (removed, with the stores closed, at exit). */
function tempDbPath(name: string): string {
  if (tempDir === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'oao-bench-durable-'));
    tempDir = dir;
    process.once('exit', () => {
      for (const store of openStores) {
        try {
          store.close();
        } catch {
          // the file goes away with the directory
        }
      }
      rmSync(dir, { recursive: true, force: true });
    });
  }
  return join(tempDir, `${name}.db`);
}

function sqliteStore(name: string, synchronous: 'NORMAL' | 'FULL', backgroundCheckpoint?: false): SqliteRunStore {
  const store = createSqliteStore({ path: tempDbPath(name), synchronous, ...(backgroundCheckpoint === false ? { backgroundCheckpoint } : {}) });
  openStores.push(store);
  return store;
}

// ---- checks --------------------------------------------------------------------------------

function expectSuccess(report: ExecutionReport): void {
  if (report.status !== 'SUCCESS' || report.finalOutput !== `Processed: ${TASK}`) {
    throw new Error(`bench: a durable run did not succeed: ${JSON.stringify(report.termination)}`);
  }
}

/** One run, and its log as the store holds it: complete, and folding back to the same report. */
async function expectRecorded(orch: Orchestrator, store: RunStore): Promise<void> {
  const report = await orch.run({ agent, task: TASK });
  expectSuccess(report);
  const stored = await store.get(report.executionId);
  const events = await store.events(report.executionId);
  if (stored?.status !== 'SUCCESS' || events.at(-1)?.type !== 'EXECUTION_COMPLETE') {
    throw new Error(`bench: the store did not record run ${report.executionId} (${stored?.status ?? 'missing'}, ${events.length} events)`);
  }
  const replayed = await orch.replay(report.executionId);
  if (replayed.executionHash !== report.executionHash) throw new Error('bench: replay did not rebuild the recorded report');
}

/**
 * Records `count` runs of `runAgent` (the trivial agent unless given) through `orch`, and so in its
 * store, each checked by `check`; returns their ids.
 */
async function recordRuns(
  orch: Orchestrator,
  count: number,
  runAgent: AgentLike = agent,
  check: (report: ExecutionReport) => void = expectSuccess,
): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const report = await orch.run({ agent: runAgent, task: TASK });
    check(report);
    ids.push(report.executionId);
  }
  return ids;
}

/**
 * The SQLite drivers the floor rows compare: better-sqlite3, which the SQLite store uses, and
 * libsql, which ships its binary through npm instead of building it. libsql's API is
 * better-sqlite3's (its typings are a copy of them), so both go through the same code.
 */
type SqliteDriver = typeof Database;
const Libsql = LibsqlDatabase as unknown as SqliteDriver;

/** The write floor: a trivial run's 13 events in one transaction, with `driver` alone. */
function writeFloorCase(id: string, name: string, driver: SqliteDriver): BenchCase {
  return {
    kind: 'time',
    id,
    group: 'durable',
    label: `floor: ${name}, one 13-row transaction`,
    description:
      "A trivial run's 13 events as JSON, inserted with one prepared statement in one transaction into a table keyed by " +
      `(execution_id, seq) (WAL, synchronous NORMAL, a temp file), with ${name} alone: what storing the log costs ` +
      "in the simplest layout, without the run's index entry and lease.",
    mode: 'sync',
    setup: async () => {
      const store = createMemoryStore();
      const report = await new Orchestrator({ store }).run({ agent, task: TASK });
      const bodies = store.events(report.executionId).map((event) => JSON.stringify(event));
      const db = new driver(tempDbPath(`floor-${name}`));
      openStores.push(db);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.exec('CREATE TABLE events (execution_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (execution_id, seq))');
      const insert = db.prepare('INSERT INTO events (execution_id, seq, body) VALUES (?, ?, ?)');
      const appendRun = db.transaction((executionId: string) => {
        for (let seq = 0; seq < bodies.length; seq++) insert.run(executionId, seq, bodies[seq]);
      });
      const count = db.prepare('SELECT COUNT(*) AS n FROM events WHERE execution_id = ?');
      const first = randomUUID();
      appendRun(first);
      if ((count.get(first) as { n: number } | undefined)?.n !== bodies.length) throw new Error(`bench: the ${name} floor did not store a run's events`);
      return () => appendRun(randomUUID());
    },
  };
}

/** The read floor of replay(id) from SQLite, with `driver` alone on a file a SQLite store wrote. */
function readFloorCase(id: string, name: string, driver: SqliteDriver): BenchCase {
  return {
    kind: 'time',
    id,
    group: 'durable',
    label: `floor: ${name}, read a run and JSON.parse its rows`,
    description:
      `What replay(id) from SQLite reads, with ${name} alone on a file a SQLite store wrote (${RECORDED_RUNS} runs): the run's ` +
      "key by its id, its 13 event rows in one statement, JSON.parse of each body. No check, no validation, no fold: " +
      'replay(id) from SQLite cannot be faster than this row plus "replay(events) in hand".',
    mode: 'sync',
    setup: async (env: BenchEnv) => {
      const store = sqliteStore(`replay-floor-${name}`, 'NORMAL');
      const ids = await recordRuns(new Orchestrator({ store }), env.quick ? RECORDED_RUNS / 5 : RECORDED_RUNS);
      const db = new driver(store.path, { readonly: true });
      openStores.push(db);
      const read = db.prepare(
        `SELECT e.body FROM runs r JOIN events e ON e.event_key BETWEEN r.run_key * ${SEQ_SPAN} AND r.run_key * ${SEQ_SPAN} + ${SEQ_SPAN - 1}
         WHERE r.execution_id = ? ORDER BY e.event_key`,
      ).pluck();
      const readRun = (runId: string): unknown[] => (read.all(runId) as string[]).map((body) => JSON.parse(body) as unknown);
      const first = readRun(ids[0] as string);
      if (first.length !== store.events(ids[0] as string).length) throw new Error(`bench: the ${name} read floor did not find the run's events`);
      let next = 0;
      return () => readRun(ids[next++ % ids.length] as string);
    },
  };
}

/** A durable run case: `await orch.run()` with the store `makeStore` gives. */
function runCase(id: string, label: string, description: string, makeStore: () => RunStore, generateId?: () => string): BenchCase {
  return {
    kind: 'time',
    id,
    group: 'durable',
    label,
    description,
    mode: 'async',
    setup: async () => {
      const store = makeStore();
      const orch = new Orchestrator({ store, ...(generateId === undefined ? {} : { generateId }) });
      await expectRecorded(orch, store);
      return () => orch.run({ agent, task: TASK });
    },
  };
}

/** A replay case: `orch.replay(id)` over runs recorded in the store `makeStore` gives. */
function replayCase(id: string, label: string, description: string, makeStore: () => RunStore): BenchCase {
  return {
    kind: 'time',
    id,
    group: 'durable',
    label,
    description,
    mode: 'async',
    setup: async (env: BenchEnv) => {
      const store = makeStore();
      const orch = new Orchestrator({ store });
      await expectRecorded(orch, store);
      const ids = await recordRuns(orch, env.quick ? RECORDED_RUNS / 5 : RECORDED_RUNS);
      let next = 0;
      const op: Op = () => orch.replay(ids[next++ % ids.length] as string);
      return op;
    },
  };
}

/** A structured output of 200 small objects (about 14 KB of JSON), as an agent returning data might. */
const LARGE_OUTPUT = Array.from({ length: 200 }, (_, i) => ({ id: i, name: `item ${i}`, tags: ['a', 'b'], score: i / 3, ok: true, none: null }));

/** replay(id) from SQLite of runs whose report carries LARGE_OUTPUT: what checking an output on read costs. */
const largeOutputReplayCase: BenchCase = {
  kind: 'time',
  id: 'durable.replay.sqliteLargeOutput',
  group: 'durable',
  label: 'replay: orch.replay(id), SQLite, 14 KB output',
  description:
    'orch.replay(executionId) from a SQLite file, cycling over 200 runs whose agent returned 200 small objects (about 14 KB of JSON): ' +
    "the same read and fold as the trivial row, plus the check of the report's output as it is read back.",
  mode: 'async',
  setup: async (env: BenchEnv) => {
    const orch = new Orchestrator({ store: sqliteStore('replay-large', 'NORMAL') });
    const structured = { name: 'structured', invoke: () => ({ output: LARGE_OUTPUT }) };
    const ids = await recordRuns(orch, env.quick ? 40 : 200, structured, (report) => {
      if (report.status !== 'SUCCESS' || (report.finalOutput as unknown[]).length !== LARGE_OUTPUT.length) {
        throw new Error(`bench: a run with a large output did not succeed: ${JSON.stringify(report.termination)}`);
      }
    });
    const replayed = await orch.replay(ids[0] as string);
    if ((replayed.finalOutput as unknown[]).length !== LARGE_OUTPUT.length) throw new Error('bench: replay lost the large output');
    let next = 0;
    return () => orch.replay(ids[next++ % ids.length] as string);
  },
};

export const durableCases: readonly BenchCase[] = [
  {
    kind: 'time',
    id: 'durable.plain',
    group: 'durable',
    label: 'in memory: await orch.run(), no store',
    description: 'new Orchestrator({ store: false }) with no subscriber: the run the durable rows are compared with.',
    mode: 'async',
    setup: async () => {
      const orch = new Orchestrator({ store: false });
      expectSuccess(await orch.run({ agent, task: TASK }));
      return () => orch.run({ agent, task: TASK });
    },
  },
  runCase(
    'durable.memory',
    'memory store: await orch.run()',
    'new Orchestrator({ store: createMemoryStore({ maxRuns: 10000 }) }): every event kept in the heap, the oldest runs pruned as runs finish.',
    () => createMemoryStore({ maxRuns: 10_000 }),
  ),
  runCase(
    'durable.sqlite',
    'SQLite NORMAL: await orch.run()',
    'new Orchestrator({ store: createSqliteStore({ path }) }) on a temp file, WAL, synchronous NORMAL (the default).',
    () => sqliteStore('normal', 'NORMAL'),
  ),
  runCase(
    'durable.sqliteRandomIds',
    'SQLite NORMAL, random ids: await orch.run()',
    'The same with random version 4 UUIDs as execution ids (generateId: crypto.randomUUID): each run lands on a random page of the index of run ids and of the leases, where the default, time-ordered ids take the right end.',
    () => sqliteStore('random-ids', 'NORMAL'),
    randomUUID,
  ),
  runCase(
    'durable.sqliteInlineCheckpoints',
    'SQLite NORMAL, checkpoints inline: await orch.run()',
    "The same with backgroundCheckpoint: false: SQLite copies the write-ahead log into the file (and syncs both) inside the append that crosses its threshold, instead of a thread of the store's doing most of it.",
    () => sqliteStore('inline-checkpoints', 'NORMAL', false),
  ),
  runCase(
    'durable.sqliteFull',
    'SQLite FULL: await orch.run()',
    "The same with synchronous: 'FULL': every append synced to disk before it returns.",
    () => sqliteStore('full', 'FULL'),
  ),
  writeFloorCase('durable.sqliteFloor', 'better-sqlite3', Database),
  writeFloorCase('durable.libsqlFloor', 'libsql', Libsql),
  replayCase(
    'durable.replay.memory',
    'replay: orch.replay(id), memory store',
    `orch.replay(executionId) cycling over ${RECORDED_RUNS} recorded runs in a memory store: read the log, fold it, check it against its report.`,
    () => createMemoryStore(),
  ),
  replayCase(
    'durable.replay.sqlite',
    'replay: orch.replay(id), SQLite',
    `The same from a SQLite file: each replay reads and decodes the run's rows (one query), then folds and checks them.`,
    () => sqliteStore('replay', 'NORMAL'),
  ),
  largeOutputReplayCase,
  readFloorCase('durable.replay.sqliteFloor', 'better-sqlite3', Database),
  readFloorCase('durable.replay.libsqlFloor', 'libsql', Libsql),
  {
    kind: 'time',
    id: 'durable.replay.events',
    group: 'durable',
    label: 'replay: orch.replay(events) in hand',
    description: `orch.replay(events) (replayLog: fold and check) over the logs of ${RECORDED_RUNS} recorded runs already in hand: no store read.`,
    mode: 'async',
    setup: async (env: BenchEnv) => {
      const store = createMemoryStore();
      const orch = new Orchestrator({ store });
      const ids = await recordRuns(orch, env.quick ? RECORDED_RUNS / 5 : RECORDED_RUNS);
      const logs: (readonly OaoEvent[])[] = ids.map((id) => store.events(id));
      const replayer = new Orchestrator();
      const first = await replayer.replay(logs[0] as readonly OaoEvent[]);
      if (first.executionHash !== store.report(ids[0] as string)?.executionHash) throw new Error('bench: replay(events) did not rebuild the report');
      let next = 0;
      return () => replayer.replay(logs[next++ % logs.length] as readonly OaoEvent[]);
    },
  },
];

// ---- runs looped for a fixed time (the sustained and PostgreSQL rows) -----------------------

interface LoopSample {
  readonly perSecond: number;
  /** Nanoseconds. */
  readonly p50: number;
  readonly p99: number;
}

/** Runs `callers` loops of awaited durable runs of `orch` for `seconds`; every run's latency is kept. */
async function loopSample(orch: Orchestrator, callers: number, seconds: number): Promise<LoopSample> {
  const latencies: number[] = [];
  const started = performance.now();
  const deadline = started + seconds * 1_000;
  const caller = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      const report = await orch.run({ agent, task: TASK });
      latencies.push((performance.now() - t0) * 1e6);
      expectSuccess(report);
    }
  };
  await Promise.all(Array.from({ length: callers }, caller));
  const elapsed = (performance.now() - started) / 1_000;
  return { perSecond: latencies.length / elapsed, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) };
}

// ---- sustained SQLite runs -------------------------------------------------------------------

/**
 * The sustained rows: one caller, back to back, for a fixed time per repetition; each sample is the
 * mean time per run over that time. SQLite copies its write-ahead log into the file (and syncs both
 * to disk) once every few hundred runs: tens of milliseconds that the time rows, medians of 50 ms
 * batches, mostly leave out. A rate of runs per second has to count them.
 */
const SUSTAINED_ROWS = [
  ['durable.sustained.plain', 'sustained: in memory, no store', 'new Orchestrator({ store: false })'],
  ['durable.sustained.sqlite', 'sustained: SQLite NORMAL', 'createSqliteStore({ path }) on a temp file: WAL, synchronous NORMAL, checkpoints on its thread (the defaults)'],
  ['durable.sustained.sqliteInline', 'sustained: SQLite NORMAL, checkpoints inline', 'the same with backgroundCheckpoint: false: SQLite checkpoints inside the append that crosses its threshold'],
] as const;

export const durableSustainedCase: CustomCase = {
  kind: 'custom',
  id: 'durable.sustained',
  group: 'durable',
  label: 'sustained runs, one caller',
  async run(env) {
    const stores = [undefined, sqliteStore('sustained', 'NORMAL'), sqliteStore('sustained-inline', 'NORMAL', false)];
    const orchestrators = stores.map((store) => new Orchestrator({ store: store ?? false }));
    const seconds = env.quick ? 0.5 : 2;
    const repetitions = env.quick ? 2 : 5;
    env.log('warming up durable.sustained');
    // Past the checkpoint thread's start (1,000 appends) and into steady state.
    for (const orch of orchestrators) await loopSample(orch, 1, env.quick ? 0.5 : 1.5);
    const samples: number[][] = orchestrators.map(() => []);
    for (let rep = 0; rep < repetitions; rep++) {
      env.log(`durable.sustained repetition ${rep + 1}/${repetitions}`);
      // Each repetition in another order, so none always runs in another's wake.
      const order = orchestrators.map((_, i) => (i + rep) % orchestrators.length);
      for (const i of order) (samples[i] as number[]).push(1e9 / (await loopSample(orchestrators[i] as Orchestrator, 1, seconds)).perSecond);
    }
    const background = stores[1]?.checkpoints();
    if (background?.mode !== 'background') throw new Error(`bench: the SQLite store did not checkpoint on its thread (${JSON.stringify(background)})`);
    return SUSTAINED_ROWS.map(([id, label, what], i): BenchRow => ({
      id,
      group: 'durable',
      label,
      description: `await orch.run() back to back for ${seconds} s per repetition, one caller; the mean time per run of each repetition. ${what}.`,
      kind: 'time',
      unit: 'ns/op',
      ...summarize(samples[i] as number[]),
      samples: samples[i] as number[],
      size: 1,
    }));
  },
};

// ---- PostgreSQL ------------------------------------------------------------------------------

/**
 * A database of the bench's own on the server `adminUrl` points at (its maintenance database):
 * created now, dropped by `drop()`. Throws when the server cannot be reached.
 */
async function benchDatabase(adminUrl: string): Promise<{ readonly connectionString: string; drop(): Promise<void> }> {
  const name = `oao_bench_${randomBytes(5).toString('hex')}`;
  const admin = async (sql: string): Promise<void> => {
    const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 3_000 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query(sql);
    } finally {
      await client.end().catch(() => undefined);
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    connectionString: url.toString(),
    drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

const PG_ROWS = [
  ['durable.pg.seq.rps', 'PostgreSQL sequential: runs/s', 'throughput', 'runs/s'],
  ['durable.pg.seq.p50', 'PostgreSQL sequential: p50 latency', 'time', 'ns/op'],
  ['durable.pg.seq.p99', 'PostgreSQL sequential: p99 latency', 'time', 'ns/op'],
  ['durable.pg.c50.rps', `PostgreSQL ${PG_CONCURRENCY} concurrent: runs/s`, 'throughput', 'runs/s'],
  ['durable.pg.c50.p50', `PostgreSQL ${PG_CONCURRENCY} concurrent: p50 latency`, 'time', 'ns/op'],
  ['durable.pg.c50.p99', `PostgreSQL ${PG_CONCURRENCY} concurrent: p99 latency`, 'time', 'ns/op'],
  ['durable.pg.seqoff.rps', 'PostgreSQL sequential, synchronous_commit off: runs/s', 'throughput', 'runs/s'],
  ['durable.pg.seqoff.p50', 'PostgreSQL sequential, synchronous_commit off: p50 latency', 'time', 'ns/op'],
] as const;

const PG_DESCRIPTION =
  'await orch.run() with createPostgresStore() (pool of 10) on a database of its own at 127.0.0.1:5432; ' +
  `one caller, or ${PG_CONCURRENCY} callers at once, looping for a fixed time; p50/p99 over every run of a repetition. ` +
  'The synchronous_commit off rows: one caller on a second store of the same database opened with synchronousCommit: "off".';

function pgRows(sequential: readonly LoopSample[], concurrent: readonly LoopSample[], asynchronous: readonly LoopSample[], skipped?: string): BenchRow[] {
  const values = [
    sequential.map((s) => s.perSecond),
    sequential.map((s) => s.p50),
    sequential.map((s) => s.p99),
    concurrent.map((s) => s.perSecond),
    concurrent.map((s) => s.p50),
    concurrent.map((s) => s.p99),
    asynchronous.map((s) => s.perSecond),
    asynchronous.map((s) => s.p50),
  ];
  return PG_ROWS.map(([id, label, kind, unit], i): BenchRow => {
    const samples = values[i] ?? [];
    return {
      id,
      group: 'durable',
      label,
      description: PG_DESCRIPTION,
      kind,
      unit,
      ...(samples.length > 0 ? summarize(samples) : { median: Number.NaN, min: Number.NaN, max: Number.NaN, p25: Number.NaN, p75: Number.NaN }),
      samples,
      size: i < 3 || i > 5 ? 1 : PG_CONCURRENCY,
      ...(skipped === undefined ? {} : { skipped }),
    };
  });
}

/**
 * The PostgreSQL rows, on the server whose maintenance database `adminUrl` names. When that server
 * cannot be reached (or refuses to create a database), every row comes back skipped with the reason.
 */
export function postgresCase(adminUrl: string): CustomCase {
  return {
    kind: 'custom',
    id: 'durable.pg',
    group: 'durable',
    label: 'PostgreSQL-durable runs',
    async run(env) {
      let database: Awaited<ReturnType<typeof benchDatabase>>;
      try {
        database = await benchDatabase(adminUrl);
      } catch (error) {
        const where = new URL(adminUrl);
        const reason = `PostgreSQL is not reachable at ${where.host} as ${where.username} (${(error as Error).message})`;
        env.log(`skipping durable.pg: ${reason}`);
        return pgRows([], [], [], reason);
      }
      let store: PostgresRunStore | undefined;
      let offStore: PostgresRunStore | undefined;
      try {
        store = await createPostgresStore({ connectionString: database.connectionString });
        offStore = await createPostgresStore({ connectionString: database.connectionString, synchronousCommit: 'off' });
        const orch = new Orchestrator({ store });
        const offOrch = new Orchestrator({ store: offStore });
        const seconds = env.quick ? 1 : 2;
        const repetitions = env.quick ? 2 : 5;
        env.log('warming up durable.pg');
        await expectRecorded(orch, store);
        await loopSample(orch, 1, 1);
        await loopSample(orch, PG_CONCURRENCY, 1);
        await expectRecorded(offOrch, offStore);
        await loopSample(offOrch, 1, 1);
        const sequential: LoopSample[] = [];
        const concurrent: LoopSample[] = [];
        const asynchronous: LoopSample[] = [];
        for (let rep = 0; rep < repetitions; rep++) {
          env.log(`durable.pg repetition ${rep + 1}/${repetitions}`);
          // Alternate which goes first, so neither always runs in the other's wake (autovacuum, GC).
          if (rep % 2 === 0) {
            sequential.push(await loopSample(orch, 1, seconds));
            concurrent.push(await loopSample(orch, PG_CONCURRENCY, seconds));
          } else {
            concurrent.push(await loopSample(orch, PG_CONCURRENCY, seconds));
            sequential.push(await loopSample(orch, 1, seconds));
          }
          asynchronous.push(await loopSample(offOrch, 1, seconds));
        }
        return pgRows(sequential, concurrent, asynchronous);
      } finally {
        await offStore?.close();
        await store?.close();
        await database.drop();
      }
    },
  };
}

export const durablePostgresCase: CustomCase = postgresCase(PG_ADMIN);

// ---- heap ------------------------------------------------------------------------------------

function durablePopulation(id: string, label: string, description: string, store: RunStore | undefined): Population {
  const orch = new Orchestrator({ store: store ?? false });
  return {
    id,
    label,
    description,
    start: (waiting) => orch.run({ agent: waiting, task: TASK }),
    check: (result) => (result as { status?: string }).status === 'SUCCESS',
  };
}

export const durableHeapCase: CustomCase = {
  kind: 'custom',
  id: 'durable.heap',
  group: 'durable',
  label: 'heap per live durable run',
  async run(env) {
    const count = env.quick ? 2_000 : 10_000;
    const repetitions = env.quick ? 1 : 3;
    const bare = barePopulation();
    const populations: Population[] = [
      { ...bare, id: 'durable.heap.bare', label: 'heap / live bare XState actor (durable group)' },
      durablePopulation(
        'durable.heap.plain',
        'heap / live run, no store',
        'orch.run() with no store and no subscriber, waiting in EXECUTE on its agent.',
        undefined,
      ),
      durablePopulation(
        'durable.heap.sqlite',
        'heap / live run, SQLite store',
        'orch.run() recording to a SQLite file (NORMAL), waiting in EXECUTE: its log is on disk, the heap holds the run and its unwritten batch.',
        sqliteStore('heap', 'NORMAL'),
      ),
      durablePopulation(
        'durable.heap.memory',
        'heap / live run, memory store',
        'orch.run() recording to createMemoryStore({ maxRuns: 1000 }), waiting in EXECUTE: the events recorded so far are kept in the heap by design.',
        createMemoryStore({ maxRuns: 1_000 }),
      ),
    ];
    return measureHeapPopulations(populations, { count, repetitions, group: 'durable', label: 'durable heap' }, env);
  },
};

export const durableRatios: readonly BenchRatio[] = [
  // Medians of 50 ms batches: mostly without the checkpoint SQLite runs every few hundred runs. The
  // targets are read from the sustained rows, which count it.
  { id: 'durable sqlite/plain', label: 'SQLite NORMAL run / in-memory run', numerator: 'durable.sqlite', denominator: 'durable.plain' },
  {
    id: 'durable sustained sqlite/plain',
    label: 'sustained: SQLite NORMAL run / in-memory run',
    numerator: 'durable.sustained.sqlite',
    denominator: 'durable.sustained.plain',
    target: 3,
  },
  {
    id: 'durable sustained sqlite/inline',
    label: 'sustained: SQLite NORMAL run, checkpoints on a thread / inline',
    numerator: 'durable.sustained.sqlite',
    denominator: 'durable.sustained.sqliteInline',
  },
  {
    id: 'durable sqlite/inlineCheckpoints',
    label: 'SQLite NORMAL run, checkpoints on a thread / inline',
    numerator: 'durable.sqlite',
    denominator: 'durable.sqliteInlineCheckpoints',
  },
  { id: 'durable sqlite/randomIds', label: 'SQLite NORMAL run, time-ordered ids / random ids', numerator: 'durable.sqlite', denominator: 'durable.sqliteRandomIds' },
  { id: 'durable sqliteFull/plain', label: 'SQLite FULL run / in-memory run', numerator: 'durable.sqliteFull', denominator: 'durable.plain' },
  { id: 'durable memory/plain', label: 'memory-store run / in-memory run', numerator: 'durable.memory', denominator: 'durable.plain' },
  { id: 'durable replay/floor', label: 'replay(id) from SQLite / its read floor', numerator: 'durable.replay.sqlite', denominator: 'durable.replay.sqliteFloor' },
  { id: 'durable libsql/better-sqlite3 write', label: 'libsql / better-sqlite3: one 13-row transaction', numerator: 'durable.libsqlFloor', denominator: 'durable.sqliteFloor' },
  {
    id: 'durable libsql/better-sqlite3 read',
    label: 'libsql / better-sqlite3: read a run and JSON.parse its rows',
    numerator: 'durable.replay.libsqlFloor',
    denominator: 'durable.replay.sqliteFloor',
  },
  { id: 'durable replay/plain', label: 'replay(id) from SQLite / in-memory run', numerator: 'durable.replay.sqlite', denominator: 'durable.plain' },
  {
    id: 'durable replay large/trivial',
    label: 'replay(id) from SQLite: 14 KB output / trivial output',
    numerator: 'durable.replay.sqliteLargeOutput',
    denominator: 'durable.replay.sqlite',
  },
  {
    id: 'durable heap sqlite/bare',
    label: 'heap: live SQLite-durable run / live bare actor',
    numerator: 'durable.heap.sqlite',
    denominator: 'durable.heap.bare',
    target: 1.5,
  },
  { id: 'durable heap memory/bare', label: 'heap: live memory-store run / live bare actor', numerator: 'durable.heap.memory', denominator: 'durable.heap.bare' },
  { id: 'durable heap sqlite/plain', label: 'heap: live SQLite-durable run / live run, no store', numerator: 'durable.heap.sqlite', denominator: 'durable.heap.plain' },
];

export const durableTargets: readonly BenchTarget[] = [
  { id: 'durable sustained sqlite runs/s', label: 'SQLite NORMAL durable runs/s, one process (sustained)', row: 'durable.sustained.sqlite', atLeastPerSecond: 3_000 },
  { id: 'durable replay memory/s', label: 'replay(id) from a memory store, runs/s', row: 'durable.replay.memory', atLeastPerSecond: 20_000 },
  { id: 'durable replay sqlite/s', label: 'replay(id) from SQLite, runs/s', row: 'durable.replay.sqlite', atLeastPerSecond: 20_000 },
  { id: 'durable pg seq runs/s', label: 'PostgreSQL durable runs/s, sequential (aim)', row: 'durable.pg.seq.rps', atLeastPerSecond: 1_500 },
  {
    id: 'durable pg seq off runs/s',
    label: 'PostgreSQL runs/s, sequential, synchronous_commit off (aim)',
    row: 'durable.pg.seqoff.rps',
    atLeastPerSecond: 1_500,
  },
];
