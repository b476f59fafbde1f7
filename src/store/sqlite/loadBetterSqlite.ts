import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import { OaoError } from '../../errors.js';

export type BetterSqliteConstructor = typeof BetterSqlite3;

let loaded: BetterSqliteConstructor | undefined;

/**
 * Loads better-sqlite3 on first use, not when `open-agent-orchestrator/sqlite` is imported, so
 * the subpath can be imported (and its types used) where the optional peer is not installed.
 * Synchronous, so the store opens synchronously. `from` is where resolution starts.
 */
export function loadBetterSqlite(from: string | URL = import.meta.url): BetterSqliteConstructor {
  const cache = from === import.meta.url;
  if (cache && loaded !== undefined) return loaded;
  let driver: BetterSqliteConstructor;
  try {
    driver = createRequire(from)('better-sqlite3') as BetterSqliteConstructor;
  } catch (error) {
    const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
    // Only the package itself being absent counts; a broken file inside it is a different problem.
    if (code === 'MODULE_NOT_FOUND' && typeof message === 'string' && message.includes("'better-sqlite3'")) {
      throw new OaoError(
        'OAO_ERR_MISSING_PACKAGE',
        'The SQLite run store needs a package that is not installed: npm install better-sqlite3',
        { details: { packages: ['better-sqlite3'] }, cause: error },
      );
    }
    throw new OaoError('OAO_ERR_STORE', `better-sqlite3 is installed but failed to load: ${String(message)}`, {
      retryable: false,
      cause: error,
    });
  }
  if (cache) loaded = driver;
  return driver;
}

/** The file better-sqlite3 loads from, for a worker thread to load the same one. */
export function resolveBetterSqlite(from: string | URL = import.meta.url): string {
  return createRequire(from).resolve('better-sqlite3');
}
