import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { OaoError } from '../errors.js';
import { createMemoryStore } from '../store/createMemoryStore.js';
import type { RunStore } from '../store/RunStore.js';

/** Where the CLI keeps runs, as `--store <url>` names it. */
export type StoreLocation =
  | { readonly kind: 'memory' }
  /** `path` as written after `sqlite:`; relative paths are taken from the working directory. */
  | { readonly kind: 'sqlite'; readonly path: string }
  | { readonly kind: 'postgres'; readonly connectionString: string };

/** The forms `--store` accepts, for messages and help. */
export const STORE_FORMS = 'memory, sqlite:<path> (relative to the working directory) or postgres://user@host:5432/database';

/** Where `oao serve` keeps its runs when `--store` is not given (and better-sqlite3 is installed). */
export const DEFAULT_SERVE_STORE = 'sqlite:.oao/runs.db';

function badStore(value: string, why: string): OaoError {
  return new OaoError('OAO_ERR_CLI_USAGE', `--store ${why}: expected ${STORE_FORMS}, got ${JSON.stringify(value)}`, {
    details: { field: '--store', value },
  });
}

/**
 * Reads a `--store` value: `memory`, `sqlite:<path>`, or a `postgres://` / `postgresql://`
 * connection string. Anything else is `OAO_ERR_CLI_USAGE` (exit 2) naming the accepted forms.
 */
export function parseStoreUrl(value: string): StoreLocation {
  if (value === 'memory') return { kind: 'memory' };
  if (value.startsWith('sqlite:')) {
    const path = value.slice('sqlite:'.length);
    if (path.trim() === '') throw badStore(value, 'needs a file after "sqlite:"');
    // `sqlite://x` reads like a URL with a host; the form is `sqlite:<path>` (`sqlite:/abs/path` for an absolute one).
    if (path.startsWith('//')) throw badStore(value, 'takes a path, not a URL: write sqlite:<path> such as sqlite:.oao/runs.db or sqlite:/var/lib/oao/runs.db');
    return { kind: 'sqlite', path };
  }
  if (/^postgres(ql)?:\/\//.test(value)) {
    if (!URL.canParse(value)) throw badStore(value, 'is not a valid PostgreSQL connection string');
    return { kind: 'postgres', connectionString: value };
  }
  throw badStore(value, 'is not a store this command knows');
}

/** The location for people: a PostgreSQL password is never printed. */
export function describeStore(location: StoreLocation): string {
  switch (location.kind) {
    case 'memory':
      return 'memory';
    case 'sqlite':
      return `sqlite:${location.path}`;
    case 'postgres': {
      const url = new URL(location.connectionString);
      if (url.password !== '') url.password = '***';
      return url.href;
    }
  }
}

export interface OpenStoreOptions {
  /** Where relative SQLite paths start. */
  readonly cwd: string;
  /**
   * A command that only reads (`runs`, `replay`, `what-if`): a SQLite file must exist already and
   * is opened read-only, so a mistyped path is an error instead of a new empty database.
   * @default false
   */
  readonly readOnly?: boolean;
}

/**
 * Opens the store `location` names. A missing optional package (better-sqlite3, pg) is
 * `OAO_ERR_MISSING_PACKAGE` naming the flag and the `npm install` line; a store that cannot be
 * opened keeps its own code (`OAO_ERR_STORE`, `OAO_ERR_STORE_UNAVAILABLE`, `OAO_ERR_LOG_VERSION`).
 */
export async function openStore(location: StoreLocation, options: OpenStoreOptions): Promise<RunStore> {
  const described = describeStore(location);
  try {
    switch (location.kind) {
      case 'memory':
        return createMemoryStore();
      case 'sqlite': {
        const path = location.path === ':memory:' ? location.path : resolve(options.cwd, location.path);
        if (options.readOnly === true && path !== ':memory:' && !existsSync(path)) {
          throw new OaoError(
            'OAO_ERR_CLI_USAGE',
            `No SQLite store at ${path}: nothing was recorded there (oao serve and oao run --store ${described} write it)`,
            { details: { field: '--store', path } },
          );
        }
        const { createSqliteStore } = await import('../store/sqlite/index.js');
        return createSqliteStore({ path, readonly: options.readOnly === true && path !== ':memory:' });
      }
      case 'postgres': {
        const { createPostgresStore } = await import('../store/postgres/index.js');
        return await createPostgresStore({ connectionString: location.connectionString });
      }
    }
  } catch (error) {
    if (OaoError.isInstance(error) && error.code === 'OAO_ERR_MISSING_PACKAGE') {
      const packages = (error.details as { packages?: readonly string[] } | undefined)?.packages ?? [];
      throw new OaoError('OAO_ERR_MISSING_PACKAGE', `--store ${described} needs a package that is not installed: npm install ${packages.join(' ')}`, {
        details: { packages },
        cause: error,
      });
    }
    throw error;
  }
}

/** The store `oao serve` uses without `--store`, and what it says about the choice. */
export interface DefaultServeStore {
  /** Undefined for memory: the server's own memory store, which keeps the newest finished runs. */
  readonly store: RunStore | undefined;
  readonly location: StoreLocation;
  /** One line for stderr when the default could not be used; undefined otherwise. */
  readonly notice: string | undefined;
}

/**
 * `oao serve` without `--store`: `sqlite:.oao/runs.db` (the directory is created) when
 * better-sqlite3 is installed. Without it the server still starts, on the memory store, and says
 * so in one notice line with the install command: serving needs only the core and Fastify, and an
 * explicit `--store sqlite:<path>` without the package is an error (exit 5) instead.
 */
export async function openDefaultServeStore(cwd: string): Promise<DefaultServeStore> {
  const location = parseStoreUrl(DEFAULT_SERVE_STORE);
  try {
    return { store: await openStore(location, { cwd }), location, notice: undefined };
  } catch (error) {
    if (!OaoError.isInstance(error) || error.code !== 'OAO_ERR_MISSING_PACKAGE') throw error;
    return {
      store: undefined,
      location: { kind: 'memory' },
      notice:
        `runs are kept in memory and lost when the server stops: better-sqlite3 is not installed (npm install better-sqlite3 ` +
        `to keep them in ${DEFAULT_SERVE_STORE.slice('sqlite:'.length)}; --store memory says this is intended)`,
    };
  }
}
