/**
 * The one registry of OAO error codes. A code is never reused or renamed; each has a default
 * message, the HTTP status the service answers with, and whether retrying the same call can help.
 * docs/errors.md documents every entry, and a test keeps the two in step.
 */
export const errorRegistry = {
  OAO_ERR_INVALID_ARGUMENT: {
    status: 400,
    retryable: false,
    message: 'An argument is invalid',
  },
  OAO_ERR_INVALID_POLICY: {
    status: 400,
    retryable: false,
    message: 'The policy options are invalid',
  },
  OAO_ERR_INVALID_AGENT: {
    status: 400,
    retryable: false,
    message: 'The agent does not satisfy the agent contract',
  },
  OAO_ERR_POLICY_VIOLATION: {
    status: 403,
    retryable: false,
    message: 'The run exceeded a policy limit',
  },
  OAO_ERR_PLUGIN_FAILED: {
    status: 500,
    retryable: false,
    message: 'A plugin rule failed',
  },
  OAO_ERR_TOOL_DENIED: {
    status: 403,
    retryable: false,
    message: 'The policy does not allow this tool call',
  },
  OAO_ERR_UNKNOWN_TOOL: {
    status: 404,
    retryable: false,
    message: 'The run has no tool of that name',
  },
  OAO_ERR_INVALID_TOOL_ARGS: {
    status: 400,
    retryable: false,
    message: "The tool call's arguments do not match the tool's input schema",
  },
  OAO_ERR_TOOL_TIMEOUT: {
    status: 504,
    retryable: true,
    message: 'The tool call did not finish within its time limit',
  },
  OAO_ERR_TIMEOUT: {
    status: 504,
    retryable: false,
    message: 'The run exceeded its time limit',
  },
  OAO_ERR_CANCELLED: {
    status: 409,
    retryable: false,
    message: 'The run was cancelled',
  },
  OAO_ERR_RUN_FINISHED: {
    status: 409,
    retryable: false,
    message: 'The run has already finished',
  },
  OAO_ERR_AGENT_FAILED: {
    status: 502,
    retryable: true,
    message: 'The agent raised an error',
  },
  OAO_ERR_INVALID_AGENT_OUTPUT: {
    status: 502,
    retryable: false,
    message: 'The agent returned an invalid value',
  },
  OAO_ERR_OUTPUT_NOT_SERIALIZABLE: {
    status: 502,
    retryable: false,
    message: 'The agent returned a value that cannot be serialized as JSON',
  },
  OAO_ERR_ASYNC_IN_SYNC_RUN: {
    status: 400,
    retryable: false,
    message: 'runSync() needs a synchronous agent, but the agent returned a promise',
  },
  OAO_ERR_INVALID_JSON: {
    status: 400,
    retryable: false,
    message: 'The request body is not valid JSON',
  },
  OAO_ERR_UNKNOWN_AGENT: {
    status: 404,
    retryable: false,
    message: 'No agent is registered under that name',
  },
  OAO_ERR_RUN_NOT_FOUND: {
    status: 404,
    retryable: false,
    message: 'No run with that id is known',
  },
  OAO_ERR_UNAUTHORIZED: {
    status: 401,
    retryable: false,
    message: 'A valid API key is required',
  },
  OAO_ERR_FORBIDDEN: {
    status: 403,
    retryable: false,
    message: 'This API key may not do that',
  },
  OAO_ERR_PAYLOAD_TOO_LARGE: {
    status: 413,
    retryable: false,
    message: 'The request body is too large',
  },
  OAO_ERR_TOO_MANY_RUNS: {
    status: 429,
    retryable: true,
    message: 'The server is running as many runs as it allows; try again later',
  },
  OAO_ERR_INSECURE_BIND: {
    status: 500,
    retryable: false,
    message: 'Refusing to listen beyond loopback without API keys',
  },
  OAO_ERR_INVALID_MODULE: {
    status: 400,
    retryable: false,
    message: 'The module does not export usable agents',
  },
  OAO_ERR_SERVER_UNREACHABLE: {
    status: 503,
    retryable: true,
    message: 'The OAO server could not be reached',
  },
  OAO_ERR_CLI_USAGE: {
    status: 400,
    retryable: false,
    message: 'The command line is invalid',
  },
  OAO_ERR_LISTEN_FAILED: {
    status: 500,
    retryable: false,
    message: 'The server could not listen on the address and port it was given',
  },
  OAO_ERR_MISSING_PACKAGE: {
    status: 500,
    retryable: false,
    message: 'An optional package this feature needs is not installed',
  },
  OAO_ERR_ROUTE_NOT_FOUND: {
    status: 404,
    retryable: false,
    message: 'No route serves that method and path',
  },
  OAO_ERR_INSPECTOR_STOPPED: {
    status: 503,
    retryable: false,
    message: 'The inspector was stopped before its socket opened',
  },
  OAO_ERR_DASHBOARD_UNAVAILABLE: {
    status: 500,
    retryable: false,
    message: 'The dashboard\'s files are missing from the installed package',
  },
  OAO_ERR_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    retryable: false,
    message: 'The request body must be JSON in UTF-8, sent with Content-Type: application/json',
  },
  OAO_ERR_HEADERS_TOO_LARGE: {
    status: 431,
    retryable: false,
    message: 'The request line and headers are larger than the server accepts',
  },
  OAO_ERR_REQUEST_TIMEOUT: {
    status: 408,
    retryable: true,
    message: 'The request did not arrive in full in time',
  },
  OAO_ERR_EXPECTATION_FAILED: {
    status: 417,
    retryable: false,
    message: 'The server does not support the request\'s Expect header',
  },
  OAO_ERR_REPLAY_DIVERGED: {
    status: 409,
    retryable: false,
    message: 'Re-running the agent against its recorded run produced different events',
  },
  OAO_ERR_LOG_CORRUPT: {
    status: 500,
    retryable: false,
    message: 'A run\'s stored event log is damaged',
  },
  OAO_ERR_LOG_VERSION: {
    status: 500,
    retryable: false,
    message: 'A run\'s stored event log was written by a newer version',
  },
  OAO_ERR_LOG_CONFLICT: {
    status: 409,
    retryable: false,
    message: 'The events do not continue the run\'s stored log',
  },
  OAO_ERR_LEASE_LOST: {
    status: 409,
    retryable: false,
    message: 'Another owner holds the run now; this writer\'s lease is no longer current',
  },
  OAO_ERR_UNKNOWN_APPROVAL: {
    status: 404,
    retryable: false,
    message: 'The run has no tool call awaiting approval with that id',
  },
  OAO_ERR_ALREADY_DECIDED: {
    status: 409,
    retryable: false,
    message: 'The tool call was already decided, or the run has finished',
  },
  OAO_ERR_RUN_UNLOADED: {
    status: 409,
    retryable: false,
    message: 'The run was unloaded from this process while it waited; resume it to continue',
  },
  OAO_ERR_LEASE_HELD: {
    status: 409,
    retryable: true,
    message: 'Another owner holds a live lease on the run',
  },
  OAO_ERR_INTERRUPTED: {
    status: 500,
    retryable: false,
    message: 'The run\'s process died and the run could not be resumed',
  },
  OAO_ERR_STORE: {
    status: 500,
    retryable: true,
    message: 'The run store failed to read or write',
  },
  OAO_ERR_STORE_UNAVAILABLE: {
    status: 503,
    retryable: true,
    message: 'The run store cannot be reached',
  },
  OAO_ERR_QUEUE_UNAVAILABLE: {
    status: 503,
    retryable: true,
    message: 'The run queue (Redis) cannot be reached',
  },
  OAO_ERR_INVALID_WORKFLOW: {
    status: 400,
    retryable: false,
    message: 'The workflow definition is invalid',
  },
  OAO_ERR_WORKFLOW_CYCLE: {
    status: 400,
    retryable: false,
    message: 'The workflow has a dependency cycle',
  },
  OAO_ERR_WORKFLOW_MISMATCH: {
    status: 409,
    retryable: false,
    message: 'The workflow definition differs from the one the workflow run was recorded with',
  },
  OAO_ERR_UNKNOWN_WORKFLOW: {
    status: 404,
    retryable: false,
    message: 'No workflow is registered under that name',
  },
  OAO_ERR_UNKNOWN_MODEL_PRICE: {
    status: 400,
    retryable: false,
    message: 'A cost limit applies, and the price table has no price for the model (and no default price)',
  },
  OAO_ERR_REMOTE_AGENT: {
    status: 502,
    retryable: false,
    message: 'The remote agent failed or answered something that is not a valid reply',
  },
  OAO_ERR_REMOTE_TIMEOUT: {
    status: 504,
    retryable: true,
    message: 'The remote agent did not answer within its time limit',
  },
  OAO_ERR_TENANT_BUDGET: {
    status: 429,
    retryable: true,
    message: "The tenant's budget for the current window is spent; try again when the window moves on",
  },
  OAO_ERR_UNKNOWN_TENANT: {
    status: 404,
    retryable: false,
    message: 'No tenant with that id is known to this server',
  },
  OAO_ERR_INTERNAL: {
    status: 500,
    retryable: true,
    message: 'The server failed unexpectedly',
  },
} as const satisfies Record<string, { status: number; retryable: boolean; message: string }>;

export type OaoErrorCode = keyof typeof errorRegistry;

const OAO_ERROR_BRAND = Symbol.for('open-agent-orchestrator.error');

export interface OaoErrorOptions {
  /** Overrides the registry's default of whether the failed call may be retried. */
  readonly retryable?: boolean;
  readonly cause?: unknown;
  /** Structured facts about the failure, JSON-safe (field names, limits, values). */
  readonly details?: Readonly<Record<string, unknown>>;
}

/**
 * The base class of every error OAO raises. Check with {@link OaoError.isInstance}, which also
 * works across copies of the package loaded twice.
 */
export class OaoError extends Error {
  readonly code: OaoErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly details: Readonly<Record<string, unknown>> | undefined;
  readonly [OAO_ERROR_BRAND] = true;

  constructor(code: OaoErrorCode, message?: string, options: OaoErrorOptions = {}) {
    const entry = errorRegistry[code];
    super(message ?? entry.message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'OaoError';
    this.code = code;
    this.status = entry.status;
    this.retryable = options.retryable ?? entry.retryable;
    this.details = options.details;
  }

  static isInstance(value: unknown): value is OaoError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[OAO_ERROR_BRAND] === true;
  }

  /** A JSON-safe summary, as it appears in reports, events and HTTP error bodies. */
  toJSON(): SerializedError {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      ...(this.details === undefined ? {} : { details: this.details }),
    };
  }
}

/** The rule name of a plugin's rule: `plugin:<plugin name>/<rule kind>`. */
export type PluginRuleName = `plugin:${string}/${'stepStart' | 'toolCall' | 'modelCall' | 'usage'}`;

/** The rules a policy enforces; `termination.rule` and violation events name one of these. */
export type PolicyRule =
  | PluginRuleName
  | 'max_steps'
  | 'max_tokens'
  | 'max_cost'
  | 'max_tool_calls'
  | 'tool_max_calls'
  | 'tool_not_allowed'
  | 'tool_denied'
  | 'approval_denied'
  | 'approval_timeout';

export interface PolicyViolation {
  readonly rule: PolicyRule;
  readonly message: string;
  readonly limit: number | null;
  readonly attempted: number | null;
  readonly tool?: string;
  /**
   * 'shared' when the limit is a supervisor's total across sibling runs; 'tenant' when it is the
   * run's tenant's budget for its current window (see docs/budgets.md#tenants). @default 'run'
   */
  readonly scope?: 'run' | 'shared' | 'tenant';
}

/** Raised into an agent (and recorded on the run) when it tries to go past a policy limit. */
export class PolicyViolationError extends OaoError {
  readonly rule: PolicyRule;
  readonly violation: PolicyViolation;

  constructor(violation: PolicyViolation, code: 'OAO_ERR_POLICY_VIOLATION' | 'OAO_ERR_TOOL_DENIED' = 'OAO_ERR_POLICY_VIOLATION') {
    super(code, violation.message, {
      details: {
        rule: violation.rule,
        limit: violation.limit,
        attempted: violation.attempted,
        ...(violation.tool === undefined ? {} : { tool: violation.tool }),
        ...(violation.scope === 'shared' || violation.scope === 'tenant' ? { scope: violation.scope } : {}),
      },
    });
    this.name = code === 'OAO_ERR_TOOL_DENIED' ? 'ToolDeniedError' : 'PolicyViolationError';
    this.rule = violation.rule;
    this.violation = violation;
  }
}

/** Raised into an agent's pending calls when its run stops for a reason other than a violation. */
export class RunAbortedError extends OaoError {
  constructor(code: 'OAO_ERR_TIMEOUT' | 'OAO_ERR_CANCELLED' | 'OAO_ERR_RUN_FINISHED', message?: string) {
    super(code, message);
    this.name = 'RunAbortedError';
  }
}

export interface SerializedError {
  readonly name: string;
  readonly code: string;
  readonly message: string;
  readonly details?: Readonly<Record<string, unknown>>;
}

/** Turns anything thrown by user code into a JSON-safe summary without losing its message. Never throws. */
export function serializeError(error: unknown): SerializedError {
  try {
    if (OaoError.isInstance(error)) return serializeOaoError(error);
    if (error instanceof Error) {
      const message = safeString(error.message);
      return { name: safeString(error.name) || 'Error', code: 'OAO_ERR_AGENT_FAILED', message: message || safeString(error.name) || 'Error' };
    }
    return { name: 'NonError', code: 'OAO_ERR_AGENT_FAILED', message: `Agent threw a non-Error value: ${describeThrown(error)}` };
  } catch {
    // A Proxy or a getter that throws: the value cannot be inspected at all.
    return { name: 'NonError', code: 'OAO_ERR_AGENT_FAILED', message: 'Agent threw a value that cannot be inspected' };
  }
}

/**
 * An OAO error, or something that carries the brand (a copy of the package loaded twice, or a
 * forgery): only a known code, a string message and JSON-safe details are kept.
 */
function serializeOaoError(error: OaoError): SerializedError {
  const code = typeof error.code === 'string' && Object.hasOwn(errorRegistry, error.code) ? error.code : 'OAO_ERR_AGENT_FAILED';
  const details = jsonCopy(error.details);
  return {
    name: safeString(error.name) || 'OaoError',
    code,
    message: safeString(error.message) || errorRegistry[code].message,
    ...(details !== null && typeof details === 'object' && !Array.isArray(details) ? { details: details as Record<string, unknown> } : {}),
  };
}

function jsonCopy(value: unknown): unknown {
  if (value === undefined) return undefined;
  try {
    const text = JSON.stringify(value);
    return text === undefined ? undefined : (JSON.parse(text) as unknown);
  } catch {
    return undefined;
  }
}

/** String(value) that never throws (a throwing toString, a Proxy, a symbol). */
export function safeString(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === undefined || value === null) return '';
  try {
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- any thrown value, printed as well as it can be
    return String(value);
  } catch {
    try {
      return Object.prototype.toString.call(value);
    } catch {
      return '[value that cannot be printed]';
    }
  }
}

function describeThrown(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null || typeof value !== 'object') return safeString(value);
  try {
    return JSON.stringify(value) ?? Object.prototype.toString.call(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/**
 * Whether a failed agent call may be retried: policy violations and aborts never are. Never throws:
 * an error whose `retryable` cannot be read is not retried.
 */
export function isRetryable(error: unknown): boolean {
  try {
    if (OaoError.isInstance(error)) return error.retryable === true;
    if (typeof error === 'object' && error !== null && (error as { retryable?: unknown }).retryable === false) return false;
    return true;
  } catch {
    return false;
  }
}
