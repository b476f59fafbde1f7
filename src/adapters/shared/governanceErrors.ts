import { OaoError } from '../../errors.js';

const GOVERNANCE_CODES: ReadonlySet<string> = new Set([
  'OAO_ERR_TOOL_DENIED',
  'OAO_ERR_POLICY_VIOLATION',
  'OAO_ERR_CANCELLED',
  'OAO_ERR_TIMEOUT',
  'OAO_ERR_RUN_FINISHED',
]);

/**
 * Whether an error is the run's governance speaking (a refusal, a limit, a cancel, the deadline):
 * such an error ends the run whatever the agent does with it, so adapters pass it on instead of
 * turning it into a tool error message for the model.
 */
export function isGovernanceError(error: unknown): boolean {
  return OaoError.isInstance(error) && GOVERNANCE_CODES.has(error.code);
}

/** The text a model sees for a failed tool call. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
