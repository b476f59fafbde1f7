import { OaoError } from '../errors.js';

/** What the server was doing when the store failed: starting a run, or reading runs. */
export type StoreAccess = 'start' | 'read';

/** Codes a store raises that say something about the data or the request, not the store's health. */
const KEPT_CODES: ReadonlySet<string> = new Set(['OAO_ERR_INVALID_ARGUMENT', 'OAO_ERR_LOG_CORRUPT', 'OAO_ERR_LOG_VERSION']);

/**
 * Calls the run store for a request. A store that cannot serve it (down, locked, closed, failing
 * to write: `OAO_ERR_STORE`, or anything a store of the user's throws) is answered 503
 * `OAO_ERR_STORE_UNAVAILABLE`, retryable: the server stays up, and the same request works once the
 * store is back. The answer names the store's code (`details.cause`) and its driver's code
 * (`details.code`, e.g. `SQLITE_BUSY` or a SQLSTATE) but not its message, which may name files
 * or hosts; the original error is kept as the cause, for the server's log. A damaged log
 * (`OAO_ERR_LOG_CORRUPT`, `OAO_ERR_LOG_VERSION`) and a bad argument keep their own codes.
 */
export async function storeCall<T>(access: StoreAccess, call: () => T | Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw storeFailure(access, error);
  }
}

/** The HTTP-facing error of a failed store call. */
export function storeFailure(access: StoreAccess, error: unknown): unknown {
  if (OaoError.isInstance(error) && KEPT_CODES.has(error.code)) return error;
  const cause = OaoError.isInstance(error) ? error.code : 'unknown';
  const driverCode = OaoError.isInstance(error) && typeof error.details?.code === 'string' ? error.details.code : undefined;
  const why = driverCode === undefined ? cause : `${cause}, ${driverCode}`;
  const message =
    access === 'start'
      ? `The run store cannot record new runs now (${why}); no run was started. Try again later.`
      : `The run store cannot be read now (${why}); nothing recorded is lost. Try again later.`;
  return new OaoError('OAO_ERR_STORE_UNAVAILABLE', message, {
    cause: error,
    details: { cause, ...(driverCode === undefined ? {} : { code: driverCode }) },
  });
}
