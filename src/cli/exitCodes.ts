/** What the `oao` process exit code says happened. */
export const ExitCode = {
  /** The command did what was asked; every run succeeded. */
  OK: 0,
  /**
   * A run ended FAILED (policy violation, timeout, cancellation or agent error), or a stored log
   * cannot be replayed: it is damaged, or a `--verify` re-run diverged from it.
   */
  RUN_FAILED: 1,
  /**
   * Bad usage: unknown command or flag, invalid value (a `--store`, `--since` or policy file among
   * them), unusable module, unknown agent, a run id the store does not have.
   */
  USAGE: 2,
  /** The OAO server, or the store's database server, could not be reached. */
  UNREACHABLE: 3,
  /** The server answered with an error (4xx/5xx) to a well-formed request. */
  SERVER_ERROR: 4,
  /**
   * The command could not start: the port of `oao serve` is in use, listening is not permitted,
   * the host is not an address of this machine, a package it needs is not installed (Fastify,
   * better-sqlite3, pg), or the store cannot be opened or written.
   */
  COULD_NOT_START: 5,
  /** A defect in oao itself. */
  INTERNAL: 70,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];
