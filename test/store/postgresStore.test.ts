import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { OaoError, Orchestrator, type OaoEvent } from '../../src/index.js';
import { POSTGRES_SCHEMA_VERSION, createPostgresStore, postgresMigrations, type PostgresRunStore, type PostgresStoreOptions } from '../../src/store/postgres/index.js';
import type { RunStoreOptions } from '../../src/store/RunStore.js';
import { DummyAgent } from '../helpers.js';
import { FAKE_EPOCH, fakeRun, reportOf, texts } from './fakeLog.js';
import { connectionString, createTestDatabase, freePort, rawClient, startPrivatePostgres, uniqueName, type PrivatePostgres, type TestDatabase } from './pgTestDb.js';
import { describeRunStoreConformance, failure } from './runStoreConformance.js';

/**
 * The PostgreSQL store against the machine's server at 127.0.0.1:5432, in a database of this
 * file's own (created here, dropped at the end); every store opened here gets a schema of its own
 * in it. When that server is down these tests fail: they never skip. The server-down tests run
 * against a private server (initdb into a temp dir) that they stop and start.
 */

const root = fileURLToPath(new URL('../..', import.meta.url));
const childScript = fileURLToPath(new URL('./pgChild.ts', import.meta.url));

let database: TestDatabase;
let admin: pg.Client;
/** Why the machine's server could not be used: every test then fails with it (a failed beforeAll would only skip them). */
let unreachable: unknown;

beforeAll(async () => {
  try {
    database = await createTestDatabase('store');
    admin = await rawClient(database.connectionString);
  } catch (error) {
    unreachable = error;
  }
}, 60_000);

beforeEach(() => {
  if (unreachable !== undefined) throw unreachable;
});

afterAll(async () => {
  await admin?.end().catch(() => undefined);
  await database?.drop();
}, 60_000);

let schemas = 0;
const created: string[] = [];
const opened: PostgresRunStore[] = [];
const children = new Set<ChildProcess>();

function nextSchema(): string {
  schemas += 1;
  return `s${schemas}`;
}

async function openStore(options: Omit<PostgresStoreOptions, 'connectionString' | 'pool'> = {}): Promise<PostgresRunStore> {
  const schema = options.schema ?? nextSchema();
  if (!created.includes(schema)) created.push(schema);
  const store = await createPostgresStore({ ...options, connectionString: database.connectionString, schema });
  opened.push(store);
  return store;
}

async function dropSchemas(): Promise<void> {
  const dropping = created.splice(0);
  if (unreachable !== undefined) return;
  for (const schema of dropping) await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}

afterEach(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children.clear();
  for (const store of opened.splice(0)) await store.close();
  await dropSchemas();
});

describeRunStoreConformance('postgres', {
  open: async (options?: RunStoreOptions) => openStore(options),
  reopen: async () => openStore({ schema: created.at(-1) as string }),
  cleanup: dropSchemas,
});

interface Child {
  /** The first message (a JSON line on stdout) that has `key`; rejects if the child exits first. */
  next(key: string): Promise<Record<string, unknown>>;
  /** Releases the child (it waits for a line on stdin before its work). */
  go(): void;
}

function child(args: readonly string[]): Child {
  const proc = spawn(process.execPath, ['--conditions=oao-source', '--import', 'tsx', childScript, ...args], { cwd: root });
  children.add(proc);
  const messages: Record<string, unknown>[] = [];
  const waiting: Array<() => void> = [];
  let stderr = '';
  let exited = false;
  proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  createInterface({ input: proc.stdout }).on('line', (line) => {
    messages.push(JSON.parse(line) as Record<string, unknown>);
    for (const wake of waiting.splice(0)) wake();
  });
  proc.on('exit', () => {
    exited = true;
    for (const wake of waiting.splice(0)) wake();
  });
  return {
    next: (key) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const found = messages.find((message) => key in message);
          if (found !== undefined) resolve(found);
          else if (exited) reject(new Error(`child exited without "${key}": ${stderr}`));
          else waiting.push(check);
        };
        check();
      }),
    go: () => proc.stdin.write('go\n'),
  };
}

describe('PostgreSQL store: one round trip per append', () => {
  it('appends a new batch with a single statement on the pool, and leaves a pool of yours open', async () => {
    const pool = new pg.Pool({ connectionString: database.connectionString, max: 2 });
    const schema = nextSchema();
    created.push(schema);
    const listenersBefore = pool.listenerCount('error');
    try {
      const store = await createPostgresStore({ pool, schema });
      expect(pool.listenerCount('error')).toBe(listenersBefore + 1);
      const query = pool.query.bind(pool);
      let calls = 0;
      pool.query = ((...args: Parameters<typeof query>) => {
        calls += 1;
        return query(...args);
      }) as typeof pool.query;
      const events = fakeRun('one-trip', { steps: 2 });
      await store.append('one-trip', events.slice(0, 10));
      expect(calls).toBe(1);
      await store.append('one-trip', events.slice(10));
      expect(calls).toBe(2);
      expect(texts(await store.events('one-trip'))).toEqual(texts(events));

      await store.close();
      expect(pool.listenerCount('error')).toBe(listenersBefore);
      // Still open: the pool is the caller's to end.
      expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await pool.end();
    }
  });
});

describe('PostgreSQL store: a real run', () => {
  it('records a governed run that the orchestrator runs with run()', async () => {
    const store = await openStore();
    const report = await new Orchestrator({ store }).run({ agent: new DummyAgent(), task: 'durable' });
    const events = await store.events(report.executionId);
    expect(events[0]?.type).toBe('EXECUTION_START');
    expect(events.at(-1)?.type).toBe('EXECUTION_COMPLETE');
    expect(await store.get(report.executionId)).toMatchObject({ status: 'SUCCESS', eventCount: events.length, agentName: report.agentName });
    expect(await store.report(report.executionId)).toEqual(report);
    // Every call is a round trip: runSync cannot wait for one, and says so.
    const error = await failure(() => new Orchestrator({ store }).runSync({ agent: new DummyAgent(), task: 'sync' }));
    expect([error.code, error.details]).toEqual(['OAO_ERR_INVALID_ARGUMENT', { field: 'store' }]);
  });
});

describe('PostgreSQL store: synchronous_commit', () => {
  it('commits with synchronous_commit off on its own connections when asked, and on by default', async () => {
    // The store's pool is its own: catch it as it runs a statement, then ask the server through it.
    const pools = new Set<pg.Pool>();
    const prototype = pg.Pool.prototype as unknown as { query: (this: pg.Pool, ...args: unknown[]) => unknown };
    const query = prototype.query;
    prototype.query = function (this: pg.Pool, ...args: unknown[]) {
      pools.add(this);
      return query.apply(this, args);
    };
    const setting = async (store: PostgresRunStore): Promise<string> => {
      pools.clear();
      const report = await new Orchestrator({ store }).run({ agent: new DummyAgent(), task: 'commit' });
      expect(await store.report(report.executionId)).toEqual(report);
      expect(pools.size).toBe(1);
      const [pool] = [...pools] as [pg.Pool];
      const answer = (await query.call(pool, 'SHOW synchronous_commit')) as pg.QueryResult<{
        synchronous_commit: string;
      }>;
      return answer.rows[0]?.synchronous_commit ?? '';
    };
    try {
      expect(await setting(await openStore({ synchronousCommit: 'off' }))).toBe('off');
      expect(await setting(await openStore())).toBe('on');
    } finally {
      prototype.query = query;
    }
  });
});

describe('PostgreSQL store: a clock with fractions of a millisecond', () => {
  it('keeps lease expiries exact and applies retention on it', async () => {
    let now = FAKE_EPOCH + 1_000.25;
    const store = await openStore({ now: () => now, maxAgeMs: 100 });
    const lease = (await store.acquireLease('run-a', 'worker-1', 1_000))!;
    expect(lease.expiresAt).toBe(FAKE_EPOCH + 2_000.25);
    await store.append('run-a', fakeRun('run-a', { status: 'running' }), { lease });
    await store.append('done', fakeRun('done', { startedAt: FAKE_EPOCH + 0.5, durationMs: 800 }));
    now = FAKE_EPOCH + 2_000.125;
    expect((await store.get('run-a'))?.status).toBe('running');
    expect(await store.prune()).toBe(1);
    now = FAKE_EPOCH + 2_000.25;
    expect((await store.get('run-a'))?.status).toBe('interrupted');
    expect((await store.list({ status: 'interrupted' })).runs.map((run) => run.executionId)).toEqual(['run-a']);
    expect(await store.renewLease(lease, 10)).toBe(true);
    expect((await store.acquireLease('run-a', 'worker-1', 1))?.expiresAt).toBe(FAKE_EPOCH + 2_001.25);
  });
});

describe('PostgreSQL store: damaged rows', () => {
  async function seeded(): Promise<{ store: PostgresRunStore; events: OaoEvent[]; schema: string }> {
    const store = await openStore();
    const events = fakeRun('victim', { steps: 2 });
    await store.append('victim', events);
    return { store, events, schema: store.schema };
  }

  it('reads a row that is not JSON as OAO_ERR_LOG_CORRUPT naming the run and the seq', async () => {
    const { store, schema } = await seeded();
    await admin.query(`UPDATE "${schema}".oao_events SET body = '{"type": "STATE_ENTER", ' WHERE execution_id = 'victim' AND seq = 4`);
    const error = await failure(() => store.events('victim'));
    expect(error.code).toBe('OAO_ERR_LOG_CORRUPT');
    expect(error.details).toEqual({ executionId: 'victim', seq: 4 });
    expect(error.message).toContain('is not JSON');
    // Reading from past the damage still works; the rest of the store too.
    expect((await store.events('victim', { fromSeq: 5 }))[0]?.seq).toBe(5);
    expect((await store.get('victim'))?.status).toBe('SUCCESS');
  });

  it('reads an unknown event type and a row of another seq as OAO_ERR_LOG_CORRUPT', async () => {
    const { store, events, schema } = await seeded();
    await admin.query(`UPDATE "${schema}".oao_events SET body = '{"type": "TELEPORT"}' WHERE execution_id = 'victim' AND seq = 2`);
    expect((await failure(() => store.events('victim'))).details).toEqual({ executionId: 'victim', seq: 2 });
    await admin.query(`UPDATE "${schema}".oao_events SET body = $1 WHERE execution_id = 'victim' AND seq = 2`, [texts([events[3]!])[0]]);
    const error = await failure(() => store.events('victim'));
    expect(error.code).toBe('OAO_ERR_LOG_CORRUPT');
    expect(error.details).toEqual({ executionId: 'victim', seq: 2 });
  });

  it('reads a row of a newer format as OAO_ERR_LOG_VERSION', async () => {
    const { store, schema } = await seeded();
    await admin.query(`UPDATE "${schema}".oao_events SET version = 2 WHERE execution_id = 'victim' AND seq = 7`);
    const error = await failure(() => store.events('victim'));
    expect(error.code).toBe('OAO_ERR_LOG_VERSION');
    expect(error.details).toMatchObject({ executionId: 'victim', seq: 7, version: 2 });
  });

  it('reads a log that lost a row in the middle or at its end as OAO_ERR_LOG_CORRUPT', async () => {
    const { store, events, schema } = await seeded();
    await admin.query(`DELETE FROM "${schema}".oao_events WHERE execution_id = 'victim' AND seq = $1`, [events.length - 1]);
    expect((await failure(() => store.events('victim'))).details).toEqual({ executionId: 'victim', seq: events.length - 1 });
    expect((await failure(() => store.report('victim'))).code).toBe('OAO_ERR_LOG_CORRUPT');
    await admin.query(`DELETE FROM "${schema}".oao_events WHERE execution_id = 'victim' AND seq = 3`);
    const error = await failure(() => store.events('victim'));
    expect(error.code).toBe('OAO_ERR_LOG_CORRUPT');
    expect(error.details).toEqual({ executionId: 'victim', seq: 3 });
  });

  it('reads a damaged report as OAO_ERR_LOG_CORRUPT, not as a missing one', async () => {
    const { store, events, schema } = await seeded();
    expect(await store.report('victim')).toEqual(reportOf(events));
    await admin.query(`UPDATE "${schema}".oao_events SET body = 'null' WHERE execution_id = 'victim' AND seq = $1`, [events.length - 1]);
    const error = await failure(() => store.report('victim'));
    expect(error.code).toBe('OAO_ERR_LOG_CORRUPT');
    expect(error.details).toEqual({ executionId: 'victim', seq: events.length - 1 });
  });
});

describe('PostgreSQL store: failures are typed', () => {
  it('answers a failed statement with OAO_ERR_STORE and its SQLSTATE, and stores nothing of the batch', async () => {
    const store = await openStore();
    const events = fakeRun('refused', { steps: 2 });
    await store.append('refused', events.slice(0, 4));
    // The server refuses every new event row, as it does when its disk is full.
    await admin.query(`
      CREATE FUNCTION "${store.schema}".refuse() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = '53100'; END $$;
      CREATE TRIGGER refuse BEFORE INSERT ON "${store.schema}".oao_events FOR EACH ROW EXECUTE FUNCTION "${store.schema}".refuse();`);
    const error = await failure(() => store.append('refused', events.slice(4)));
    expect(error.code).toBe('OAO_ERR_STORE');
    expect(error.details).toEqual({ operation: 'append', code: '53100' });
    expect(error.message).toContain('No space left on device');
    expect(error.cause).toBeDefined();
    expect((await failure(() => store.append('other', fakeRun('other')))).code).toBe('OAO_ERR_STORE');
    expect(await store.get('refused')).toMatchObject({ eventCount: 4, status: 'running' });
    expect(await store.get('other')).toBeUndefined();

    await admin.query(`DROP TRIGGER refuse ON "${store.schema}".oao_events`);
    await store.append('refused', events.slice(4));
    expect(texts(await store.events('refused'))).toEqual(texts(events));
  });

  it('answers OAO_ERR_STORE_UNAVAILABLE when no server listens, and opens no store', async () => {
    const port = await freePort();
    const error = await failure(() => createPostgresStore({ connectionString: `postgres://postgres@127.0.0.1:${port}/nothing` }));
    expect(error.code).toBe('OAO_ERR_STORE_UNAVAILABLE');
    expect(error.retryable).toBe(true);
    expect(error.details).toMatchObject({ operation: 'migrate', code: 'ECONNREFUSED' });
  });

  it('answers OAO_ERR_STORE for a database that does not exist', async () => {
    const error = await failure(() => createPostgresStore({ connectionString: `postgres://postgres@127.0.0.1:5432/${database.name}_missing` }));
    expect(error.code).toBe('OAO_ERR_STORE');
    expect(error.details).toMatchObject({ code: '3D000' });
  });

  it('refuses options it cannot use', async () => {
    const cases: Array<[unknown, string]> = [
      [{}, 'connectionString'],
      [{ connectionString: database.connectionString, pool: {} }, 'connectionString'],
      [{ connectionString: '' }, 'connectionString'],
      [{ pool: { query: 1 } }, 'pool'],
      [{ connectionString: database.connectionString, schema: 'runs; DROP TABLE x' }, 'schema'],
      [{ connectionString: database.connectionString, schema: '9lives' }, 'schema'],
      [{ connectionString: database.connectionString, max: 0 }, 'max'],
      [{ connectionString: database.connectionString, connectionTimeoutMs: 1.5 }, 'connectionTimeoutMs'],
      [{ connectionString: database.connectionString, maxRuns: -1 }, 'maxRuns'],
      [{ connectionString: database.connectionString, onPoolError: 'log' }, 'onPoolError'],
      [{ connectionString: database.connectionString, synchronousCommit: 'local' }, 'synchronousCommit'],
      [{ pool: new pg.Pool({ connectionString: database.connectionString }), synchronousCommit: 'off' }, 'synchronousCommit'],
      [null, 'options'],
    ];
    for (const [options, field] of cases) {
      const error = await failure(() => createPostgresStore(options as PostgresStoreOptions));
      expect([field, error.code, error.details?.field]).toEqual([field, 'OAO_ERR_INVALID_ARGUMENT', field]);
    }
  });

  it('names the package to install when pg is missing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'oao-no-pg-'));
    try {
      // A resolve hook that hides pg, as an installation without it would.
      const hooks = `export async function resolve(specifier, context, next) {
        if (specifier === 'pg' || specifier.startsWith('pg/')) {
          const error = new Error("Cannot find package 'pg' imported from " + context.parentURL);
          error.code = 'ERR_MODULE_NOT_FOUND';
          throw error;
        }
        return next(specifier, context);
      }`;
      writeFileSync(join(dir, 'hooks.mjs'), hooks);
      writeFileSync(join(dir, 'register.mjs'), `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)});\n`);
      const script = `
        import { createPostgresStore } from ${JSON.stringify(pathToFileURL(join(root, 'src/store/postgres/index.ts')).href)};
        try {
          await createPostgresStore({ connectionString: 'postgres://postgres@127.0.0.1:1/none' });
          console.log(JSON.stringify({ opened: true }));
        } catch (error) {
          console.log(JSON.stringify({ code: error.code, message: error.message, details: error.details }));
        }`;
      const result = spawnSync(
        process.execPath,
        ['--conditions=oao-source', '--import', 'tsx', '--import', pathToFileURL(join(dir, 'register.mjs')).href, '--input-type=module', '-e', script],
        { cwd: root, encoding: 'utf8', timeout: 30_000 },
      );
      expect(result.stderr).toBe('');
      expect(JSON.parse(result.stdout)).toEqual({
        code: 'OAO_ERR_MISSING_PACKAGE',
        message: 'createPostgresStore needs a package that is not installed: npm install pg',
        details: { packages: ['pg'] },
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('PostgreSQL store: migrations', () => {
  it('creates its schema and records the version it migrated to', async () => {
    const store = await openStore();
    const versions = await admin.query(`SELECT version FROM "${store.schema}".oao_schema_version ORDER BY version`);
    expect(versions.rows).toEqual(postgresMigrations.map(({ version }) => ({ version })));
    expect(versions.rows.at(-1)).toEqual({ version: POSTGRES_SCHEMA_VERSION });
  });

  it('migrates once when processes open a fresh schema at the same moment', { timeout: 60_000 }, async () => {
    const schema = nextSchema();
    created.push(schema);
    const openers = Array.from({ length: 3 }, () => child(['open', database.connectionString, schema]));
    for (const opener of openers) await opener.next('ready');
    for (const opener of openers) opener.go();
    const results = await Promise.all(openers.map(async (opener) => opener.next('opened').catch(async () => opener.next('failure'))));
    expect(results).toEqual([{ opened: true }, { opened: true }, { opened: true }]);
    const versions = await admin.query(`SELECT version FROM "${schema}".oao_schema_version ORDER BY version`);
    expect(versions.rows).toEqual(postgresMigrations.map(({ version }) => ({ version })));
  });

  it('opens a migrated schema as a role that may read and write but not create', async () => {
    const owner = await openStore();
    await owner.append('before', fakeRun('before'));
    const role = uniqueName('app');
    await admin.query(`CREATE ROLE ${role} LOGIN`);
    try {
      await admin.query(`GRANT CONNECT ON DATABASE ${database.name} TO ${role}`);
      await admin.query(`GRANT USAGE ON SCHEMA "${owner.schema}" TO ${role}`);
      await admin.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "${owner.schema}" TO ${role}`);
      const app = await createPostgresStore({ connectionString: connectionString(database.name).replace('postgres@', `${role}@`), schema: owner.schema });
      opened.push(app);
      await app.append('after', fakeRun('after'));
      expect((await app.list()).runs.map((run) => run.executionId).sort()).toEqual(['after', 'before']);
      await app.close();
      // Creating its tables is what it may not do.
      const error = await failure(() => createPostgresStore({ connectionString: connectionString(database.name).replace('postgres@', `${role}@`), schema: nextSchema() }));
      expect(error.code).toBe('OAO_ERR_STORE');
      expect(error.details).toMatchObject({ operation: 'migrate', code: '42501' });
    } finally {
      await admin.query(`DROP OWNED BY ${role}`);
      await admin.query(`DROP ROLE ${role}`);
    }
  });

  it('refuses a schema migrated by a newer runtime with OAO_ERR_LOG_VERSION, and leaves it as it was', async () => {
    const store = await openStore();
    await store.append('kept', fakeRun('kept'));
    await store.close();
    await admin.query(`INSERT INTO "${store.schema}".oao_schema_version (version) VALUES ($1)`, [POSTGRES_SCHEMA_VERSION + 1]);
    const error = await failure(() => openStore({ schema: store.schema }));
    expect(error.code).toBe('OAO_ERR_LOG_VERSION');
    expect(error.details).toEqual({ schema: store.schema, version: POSTGRES_SCHEMA_VERSION + 1, supportedVersion: POSTGRES_SCHEMA_VERSION });
    const rows = await admin.query(`SELECT count(*)::int AS n FROM "${store.schema}".oao_events`);
    expect(rows.rows).toEqual([{ n: 13 }]);
  });
});

describe('PostgreSQL store: two processes', () => {
  it('shows the reader only whole batches while another process appends', { timeout: 60_000 }, async () => {
    const store = await openStore();
    const count = 150;
    const writer = child(['write', database.connectionString, store.schema, 'child', String(count)]);
    await writer.next('ready');
    const expected = (i: number): string[] => texts(fakeRun(`child-${i}`, { startedAt: FAKE_EPOCH + i, agentName: 'child' }));
    // The child appends each run as batches of 1, 8 and 4 events.
    const whole = new Set([0, 1, 9, 13]);
    const seen = new Set<number>();
    let done = false;
    void writer.next('done').then(() => (done = true), () => (done = true));
    writer.go();
    let reads = 0;
    while (!done) {
      const { runs } = await store.list({ agentName: 'child' }, { limit: 5 });
      for (const run of runs) {
        const i = Number(run.executionId.slice('child-'.length));
        const log = texts(await store.events(run.executionId));
        expect(whole.has(log.length), `${run.executionId} showed ${log.length} events`).toBe(true);
        expect(log).toEqual(expected(i).slice(0, log.length));
        seen.add(log.length);
        reads += 1;
      }
    }
    expect(await writer.next('done')).toEqual({ done: count });
    expect(reads).toBeGreaterThan(0);
    const all = await store.list({ agentName: 'child' }, { limit: 1_000 });
    expect(all.runs).toHaveLength(count);
    for (const run of all.runs) expect(run).toMatchObject({ status: 'SUCCESS', eventCount: 13 });
    expect(texts(await store.events(`child-${count - 1}`))).toEqual(expected(count - 1));
  });
});

describe('PostgreSQL store: the server goes down and comes back', () => {
  let server: PrivatePostgres;

  beforeAll(async () => {
    server = await startPrivatePostgres('private');
  }, 120_000);

  afterAll(async () => {
    await server?.destroy();
  }, 60_000);

  it('fails with OAO_ERR_STORE_UNAVAILABLE while it is down, stores nothing half, and the same store works once it is back', { timeout: 90_000 }, async () => {
    const poolErrors: OaoError[] = [];
    const store = await createPostgresStore({ connectionString: server.connectionString, schema: 'down', maxRuns: 100, onPoolError: (error) => poolErrors.push(error) });
    opened.push(store);
    const events = fakeRun('through-outage', { steps: 2 });
    await store.append('through-outage', events.slice(0, 5));
    const lease = (await store.acquireLease('leased', 'worker-1', 60_000))!;

    await server.stop('fast');

    const calls: Array<[string, () => unknown]> = [
      ['append', () => store.append('through-outage', events.slice(5))],
      ['append a new run', () => store.append('new-run', fakeRun('new-run'))],
      ['events', () => store.events('through-outage')],
      ['get', () => store.get('through-outage')],
      ['list', () => store.list()],
      ['report', () => store.report('through-outage')],
      ['acquireLease', () => store.acquireLease('other', 'worker-1', 1_000)],
      ['renewLease', () => store.renewLease(lease, 1_000)],
      ['charge', () => store.charge('tenant', 'day', { tokens: 1 })],
      ['prune', () => store.prune()],
    ];
    for (const [name, call] of calls) {
      const error = await failure(call);
      expect([name, error.code, error.retryable]).toEqual([name, 'OAO_ERR_STORE_UNAVAILABLE', true]);
    }
    // The idle pooled connections were dropped by the shutdown: reported as typed errors, not a crash.
    expect(poolErrors.length).toBeGreaterThan(0);
    for (const error of poolErrors) expect(error).toMatchObject({ code: 'OAO_ERR_STORE_UNAVAILABLE', details: { operation: 'idle connection' } });

    await server.start();
    expect(texts(await store.events('through-outage'))).toEqual(texts(events.slice(0, 5)));
    expect(await store.get('new-run')).toBeUndefined();
    await store.append('through-outage', events.slice(5));
    expect(texts(await store.events('through-outage'))).toEqual(texts(events));
    expect(await store.renewLease(lease, 1_000)).toBe(true);
  });

  it('keeps every batch whole or absent when the server dies mid-append, and the retries complete them', { timeout: 90_000 }, async () => {
    const store = await createPostgresStore({ connectionString: server.connectionString, schema: 'crash', max: 10 });
    opened.push(store);
    const runs = Array.from({ length: 400 }, (_, i) => `crash-${String(i).padStart(3, '0')}`);
    const logs = new Map(runs.map((id, i) => [id, fakeRun(id, { startedAt: FAKE_EPOCH + i })]));
    const failed: string[] = [];
    const errors: OaoError[] = [];
    let succeeded = 0;
    let stopping: Promise<void> | undefined;
    // Ten writers, each appending whole runs one after another; the server dies under them.
    const queue = [...runs];
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
          try {
            await store.append(id, logs.get(id)!);
            succeeded += 1;
            if (succeeded === 40) stopping = server.stop('immediate');
          } catch (error) {
            failed.push(id);
            errors.push(error as OaoError);
          }
        }
      }),
    );
    await stopping;
    expect(failed.length).toBeGreaterThan(0);
    for (const error of errors) expect(OaoError.isInstance(error) && error.code).toBe('OAO_ERR_STORE_UNAVAILABLE');

    await server.start();
    for (const id of runs) {
      const stored = await store.events(id);
      expect([id, stored.length === 0 || stored.length === 13]).toEqual([id, true]);
    }
    // At-least-once recovery: every failed append is retried as it was; those that did commit are no-ops.
    for (const id of failed) await store.append(id, logs.get(id)!);
    for (const id of runs) expect(texts(await store.events(id))).toEqual(texts(logs.get(id)!));
    expect((await store.list({}, { limit: 1_000 })).runs).toHaveLength(runs.length);
  });
});
