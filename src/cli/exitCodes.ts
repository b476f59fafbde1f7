/** What the `oao` process exit code says happened. */
export const ExitCode = {
  /** The command did what was asked; every run succeeded. */
  OK: 0,
  /** A run ended FAILED (policy violation, timeout, cancellation or agent error). */
  RUN_FAILED: 1,
  /** Bad usage: unknown command or flag, invalid value, unusable module, unknown agent. */
  USAGE: 2,
  /** The OAO server could not be reached. */
  UNREACHABLE: 3,
  /** The server answered with an error (4xx/5xx) to a well-formed request. */
  SERVER_ERROR: 4,
  /**
   * `oao serve` could not start: the port is in use, listening is not permitted, the host is not
   * an address of this machine, or a package the server needs is not installed.
   */
  COULD_NOT_START: 5,
  /** A defect in oao itself. */
  INTERNAL: 70,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];
