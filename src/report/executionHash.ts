import { createHash } from 'node:crypto';
import { RUNTIME_VERSION } from '../version.js';
import { canonicalJson } from './canonicalJson.js';

export interface ExecutionIdentity {
  /** Canonical JSON of the task. */
  readonly task: string;
  /** Canonical JSON of the effective policy limits. */
  readonly policy: string;
  readonly agent: string;
  /** Tool names, sorted. */
  readonly tools: readonly string[];
}

/**
 * sha256 over the canonical task, policy, agent identity, tool names and runtime version: the same
 * inputs always give the same hash, and changing any one of them changes it.
 */
export function executionHash(identity: ExecutionIdentity): string {
  return createHash('sha256')
    // JSON text never holds a raw newline, so the three parts cannot run into each other.
    .update(`${JSON.stringify(['oao', RUNTIME_VERSION, identity.agent, identity.tools])}\n${identity.policy}\n${identity.task}`)
    .digest('hex');
}

export { canonicalJson };
