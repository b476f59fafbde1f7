import { OaoError } from '../../errors.js';

/** Socket-level failures: the server is down, restarting, or out of reach. */
const NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENOENT', // a Unix socket path that is gone: the server is not running
]);

/** What node-postgres says, without a code, when a connection is lost or never opens in time. */
const LOST_CONNECTION = /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Query read timeout)/;

/**
 * SQLSTATEs of a server that cannot serve now: class 08 (connection exception), shutdowns and
 * restarts (57P01-57P03), and a full connection table (53300).
 */
function unavailableSqlState(code: string): boolean {
  return code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300';
}

interface DriverErrorFields {
  readonly code?: unknown;
  readonly severity?: unknown;
  readonly message?: unknown;
  readonly errors?: unknown;
}

function fields(error: unknown): DriverErrorFields {
  return typeof error === 'object' && error !== null ? error : {};
}

/** The SQLSTATE of an error the server sent (node-postgres' DatabaseError carries a severity). */
function sqlState(error: unknown): string | undefined {
  const { code, severity } = fields(error);
  return typeof code === 'string' && typeof severity === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** The errno-style code of a socket error, also inside the AggregateError of a multi-address connect. */
function networkCode(error: unknown): string | undefined {
  const { code, errors } = fields(error);
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return code;
  if (Array.isArray(errors)) {
    for (const inner of errors) {
      const innerCode = fields(inner).code;
      if (typeof innerCode === 'string' && NETWORK_CODES.has(innerCode)) return innerCode;
    }
  }
  return undefined;
}

function describe(error: unknown): string {
  const { message } = fields(error);
  if (typeof message === 'string' && message !== '') return message;
  return error instanceof Error ? error.name : 'unknown failure';
}

/**
 * Turns whatever node-postgres threw into a typed error: `OAO_ERR_STORE_UNAVAILABLE` when the
 * server cannot be reached (refused, reset, terminated, timed out, shutting down), else
 * `OAO_ERR_STORE` with the SQLSTATE in `details.code`. OAO errors pass through unchanged, so a
 * conflict raised inside a store call keeps its own code.
 */
export function toStoreError(error: unknown, operation: string): OaoError {
  if (OaoError.isInstance(error)) return error;
  const state = sqlState(error);
  const network = networkCode(error);
  const why = describe(error);
  if (network !== undefined || (state !== undefined && unavailableSqlState(state)) || (state === undefined && LOST_CONNECTION.test(why))) {
    const code = state ?? network;
    return new OaoError('OAO_ERR_STORE_UNAVAILABLE', `The PostgreSQL store cannot reach its server (${operation}): ${why}`, {
      cause: error,
      details: { operation, ...(code === undefined ? {} : { code }) },
    });
  }
  return new OaoError('OAO_ERR_STORE', `The PostgreSQL store failed (${operation}): ${why}`, {
    cause: error,
    details: { operation, ...(state === undefined ? {} : { code: state }) },
  });
}
