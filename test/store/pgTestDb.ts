/**
 * PostgreSQL for the store tests: databases of their own on the machine's server, and private
 * servers a test may stop and start.
 *
 * - `createTestDatabase()`: a uniquely named database on 127.0.0.1:5432 (user postgres, trust
 *   auth), created now and dropped by `drop()`. No other database is touched. When the server
 *   cannot be reached it throws: the tests fail, they never skip.
 * - `startPrivatePostgres()`: `initdb` into a temp dir and `pg_ctl start` on a free port, as the
 *   `postgres` OS user when the tests run as root (the server refuses to run as root). `stop()`
 *   and `start()` take it down and up again on the same port; `destroy()` stops it and deletes it.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const exec = promisify(execFile);

export const PG_HOST = '127.0.0.1';
export const PG_PORT = 5432;
export const PG_USER = 'postgres';

export function connectionString(database: string, port = PG_PORT): string {
  return `postgres://${PG_USER}@${PG_HOST}:${port}/${database}`;
}

/** A name no other test uses: `oao_test_<label>_<random>`. */
export function uniqueName(label: string): string {
  return `oao_test_${label.replace(/[^a-z0-9_]/g, '_')}_${randomBytes(5).toString('hex')}`;
}

/** Runs `sql` on the `postgres` maintenance database of the server at `port`. */
async function admin(sql: string, port = PG_PORT): Promise<void> {
  const client = new pg.Client({ connectionString: connectionString('postgres', port), connectionTimeoutMillis: 5_000 });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    throw new Error(
      `PostgreSQL is not reachable at ${PG_HOST}:${port} as ${PG_USER} (${(error as Error).message}). ` +
        'Start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start',
      { cause: error },
    );
  }
  try {
    await client.query(sql);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export interface TestDatabase {
  readonly name: string;
  readonly connectionString: string;
  /** Drops the database, closing whatever connections are still open on it. */
  drop(): Promise<void>;
}

export async function createTestDatabase(label: string, port = PG_PORT): Promise<TestDatabase> {
  const name = uniqueName(label);
  await admin(`CREATE DATABASE ${name}`, port);
  return {
    name,
    connectionString: connectionString(name, port),
    drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`, port),
  };
}

/** A raw client on `database` for what a store would never do (damaging rows, reading tables). */
export async function rawClient(connection: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: connection });
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** A TCP port nothing listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, PG_HOST, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** The directory of the newest installed PostgreSQL's binaries (initdb, pg_ctl). */
export function postgresBinaries(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((name) => existsSync(join(root, name, 'bin', 'pg_ctl'))) : [];
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  if (newest === undefined) throw new Error(`No PostgreSQL server binaries under ${root}`);
  return join(root, newest, 'bin');
}

export interface PrivatePostgres {
  readonly port: number;
  readonly dataDir: string;
  /** A connection string to a database of the test's own on this server. */
  readonly connectionString: string;
  /** `pg_ctl stop -m fast`: open connections are terminated, the port stops answering. */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts it again on the same port and waits until it accepts connections. */
  start(): Promise<void>;
  /** Stops it (if running) and deletes its files. */
  destroy(): Promise<void>;
}

const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Runs a server binary, as the postgres OS user when we are root. */
async function asPostgres(binary: string, args: readonly string[], timeout = 60_000): Promise<void> {
  const file = join(postgresBinaries(), binary);
  const [command, commandArgs] = asRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, [...args]];
  await exec(command, commandArgs, { timeout, env: { ...process.env, LC_ALL: 'C' } });
}

export async function startPrivatePostgres(label: string): Promise<PrivatePostgres> {
  const root = await mkdtemp(join(tmpdir(), 'oao-pg-'));
  const dataDir = join(root, 'data');
  if (asRoot) {
    const { stdout } = await exec('id', ['-u', 'postgres']);
    const { stdout: group } = await exec('id', ['-g', 'postgres']);
    await chown(root, Number(stdout.trim()), Number(group.trim()));
  }
  const port = await freePort();
  // Throwaway, so no fsync (the OS keeps what was written through a server crash); but commits stay
  // synchronous: an acknowledged append must survive `pg_ctl stop -m immediate`.
  await asPostgres('initdb', ['-D', dataDir, '-U', PG_USER, '-A', 'trust', '--no-sync', '-E', 'UTF8', '--no-instructions']);
  const options = `-p ${port} -k ${root} -c listen_addresses=${PG_HOST} -c fsync=off -c full_page_writes=off`;
  let running = false;
  const server = {
    port,
    dataDir,
    connectionString: '',
    async start(): Promise<void> {
      await asPostgres('pg_ctl', ['-D', dataDir, '-o', options, '-l', join(root, 'server.log'), '-w', '-t', '60', 'start']);
      running = true;
    },
    async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
      await asPostgres('pg_ctl', ['-D', dataDir, '-m', mode, '-w', '-t', '60', 'stop']);
      running = false;
    },
    async destroy(): Promise<void> {
      if (running) await server.stop('immediate').catch(() => undefined);
      await rm(root, { recursive: true, force: true });
    },
  };
  try {
    await server.start();
    const database = uniqueName(label);
    await admin(`CREATE DATABASE ${database}`, port);
    server.connectionString = connectionString(database, port);
  } catch (error) {
    await server.destroy();
    throw error;
  }
  return server;
}
