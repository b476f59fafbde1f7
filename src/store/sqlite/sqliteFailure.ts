import { OaoError } from '../../errors.js';

/** What the store was doing when SQLite failed, for the message and `details`. */
export interface SqliteFailureContext {
  readonly path: string;
  /** The store method (or `open`). */
  readonly operation: string;
  readonly executionId?: string;
}

/**
 * Turns whatever better-sqlite3 threw into a typed OAO error: OAO errors pass through, a damaged
 * file is `OAO_ERR_LOG_CORRUPT`, anything else `OAO_ERR_STORE` with SQLite's result code in
 * `details.code`. A raw driver error never leaves the store.
 */
export function sqliteFailure(error: unknown, context: SqliteFailureContext): OaoError {
  if (OaoError.isInstance(error)) return error;
  const code = sqliteCode(error);
  const reason = errorMessage(error);
  const where = `${context.operation} on the SQLite store at ${context.path}`;
  const details = {
    ...(code === undefined ? {} : { code }),
    path: context.path,
    operation: context.operation,
    ...(context.executionId === undefined ? {} : { executionId: context.executionId }),
  };
  if (code?.startsWith('SQLITE_CORRUPT') === true) {
    return new OaoError('OAO_ERR_LOG_CORRUPT', `${where} failed: the database file is damaged (${code}: ${reason})`, { details, cause: error });
  }
  const [why, retryable] = explain(code, reason);
  return new OaoError('OAO_ERR_STORE', `${where} failed: ${why}`, { details, cause: error, retryable });
}

function explain(code: string | undefined, reason: string): [string, boolean] {
  const base = code === undefined ? undefined : /^SQLITE_[A-Z]+/.exec(code)?.[0];
  switch (base) {
    case 'SQLITE_READONLY':
      return [`the database is read-only (${code}: ${reason})`, false];
    case 'SQLITE_FULL':
      return [`the disk or the database is full (${code}: ${reason})`, true];
    case 'SQLITE_CANTOPEN':
      return [`the database file cannot be opened (${code}: ${reason})`, false];
    case 'SQLITE_IOERR':
      return [`an I/O error (${code}: ${reason})`, true];
    case 'SQLITE_NOTADB':
      return [`the file is not a SQLite database (${code}: ${reason})`, false];
    case 'SQLITE_BUSY':
    case 'SQLITE_LOCKED':
      return [`another connection held the database longer than busyTimeoutMs (${code}: ${reason})`, true];
    case 'SQLITE_PERM':
    case 'SQLITE_AUTH':
      return [`access was denied (${code}: ${reason})`, false];
    case undefined:
      if (reason.includes('bindings file')) return [`better-sqlite3's native module is not built; run npm rebuild better-sqlite3 (${reason})`, false];
      return [reason, true];
    default:
      return [`${code}: ${reason}`, true];
  }
}

function sqliteCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined;
}

function errorMessage(error: unknown): string {
  const message = (error as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message : String(error);
}
