import type { ReviewDecision, UsageReport } from '../agent.js';
import { OaoError, serializeError } from '../errors.js';
import { deepFreeze } from '../policy/schema.js';
import type { JsonValue, TokenUsage } from '../report/schema.js';

export interface NormalizedStep {
  readonly output: JsonValue;
  readonly usage: TokenUsage | null;
}

/**
 * Turns whatever `invoke` returned into the step's output and token usage. Accepts `{ output }`
 * (with optional `usage` or `usage_metadata`), a string, or any JSON value. Throws a typed error for
 * undefined, functions, symbols, bigints, non-finite numbers and values JSON cannot serialize.
 */
export function normalizeStepOutput(value: unknown): NormalizedStep {
  if (typeof value === 'string') return { output: value, usage: null };
  if (typeof value !== 'object' || value === null) return { output: toJsonValue(value, 'output'), usage: null };
  const record = value as Record<string, unknown>;
  const usage = parseUsage(record.usage ?? record.usage_metadata, 'usage');
  // A chat message (LangChain's AIMessage and its kin): its content is the output.
  if (isChatMessage(record)) return { output: toJsonValue(record.content, 'output.content'), usage };
  if (Object.prototype.hasOwnProperty.call(record, 'output')) {
    return { output: toJsonValue(record.output, 'output.output'), usage };
  }
  return { output: toJsonValue(value, 'output'), usage };
}

function isChatMessage(record: Record<string, unknown>): boolean {
  return (
    'content' in record &&
    !Object.prototype.hasOwnProperty.call(record, 'output') &&
    (typeof record._getType === 'function' || typeof record.getType === 'function')
  );
}

/** A JSON-safe copy of an agent-supplied value, or a typed error saying why it is not one. */
export function toJsonValue(value: unknown, field: string): JsonValue {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      if (Number.isFinite(value)) return value;
      throw new OaoError('OAO_ERR_OUTPUT_NOT_SERIALIZABLE', `Agent ${field} is ${value}, which JSON cannot represent`);
    case 'undefined':
      throw new OaoError(
        'OAO_ERR_INVALID_AGENT_OUTPUT',
        `Agent ${field} is undefined: return { output }, a string or a JSON value`,
      );
    case 'function':
    case 'symbol':
      throw new OaoError('OAO_ERR_INVALID_AGENT_OUTPUT', `Agent ${field} is a ${typeof value}, not a JSON value`);
    case 'bigint':
      throw new OaoError('OAO_ERR_OUTPUT_NOT_SERIALIZABLE', `Agent ${field} is a bigint, which JSON cannot represent`);
    default:
      break;
  }
  if (value === null) return null;
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new OaoError(
      'OAO_ERR_OUTPUT_NOT_SERIALIZABLE',
      `Agent ${field} cannot be serialized as JSON: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
  if (text === undefined) {
    throw new OaoError('OAO_ERR_INVALID_AGENT_OUTPUT', `Agent ${field} serializes to nothing`);
  }
  // A parsed, frozen copy: the report holds exactly what JSON holds, and neither the agent (before or
  // after it returns) nor a hook or a reviewer can change it once it is recorded.
  return deepFreeze(JSON.parse(text) as JsonValue);
}

/** Like toJsonValue, but never throws: for recording tool arguments and results in events. */
export function toRecordable(value: unknown): JsonValue {
  if (value === undefined) return null;
  try {
    return toJsonValue(value, 'value');
  } catch (error) {
    return Object.freeze({ $unserializable: OaoError.isInstance(error) ? error.message : serializeError(error).message });
  }
}

/**
 * `toRecordable(value)` and the recorded value's JSON text (a string's own text), serializing the
 * value once: for callers that need both (a model call's input is recorded and its tokens estimated).
 */
export function toRecordableText(value: unknown): { readonly value: JsonValue; readonly text: string } {
  if (typeof value === 'string') return { value, text: value };
  if (typeof value === 'object' && value !== null) {
    let text: string | undefined;
    try {
      text = JSON.stringify(value);
    } catch {
      text = undefined;
    }
    if (text !== undefined) return { value: deepFreeze(JSON.parse(text) as JsonValue), text };
  }
  // Not an object JSON can hold as it is: the recorded stand-in, serialized.
  const recorded = toRecordable(value);
  return { value: recorded, text: typeof recorded === 'string' ? recorded : (JSON.stringify(recorded) ?? '') };
}

function nonNegativeInteger(value: unknown, field: string): number {
  if (value === undefined || value === null) return 0;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new OaoError('OAO_ERR_INVALID_AGENT_OUTPUT', `Token count ${field} must be a non-negative integer, got ${describe(value)}`);
  }
  if (value > Number.MAX_SAFE_INTEGER) {
    // Sums of such counts lose precision and end in Infinity; no real call spends this much.
    throw new OaoError(
      'OAO_ERR_INVALID_AGENT_OUTPUT',
      `Token count ${field} must be at most ${Number.MAX_SAFE_INTEGER} (Number.MAX_SAFE_INTEGER), got ${describe(value)}`,
    );
  }
  return value;
}

/** Reads a usage report in any of the accepted shapes; null when there is none. */
export function parseUsage(value: unknown, field: string): TokenUsage | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'number') {
    const output = nonNegativeInteger(value, field);
    return Object.freeze({ input: 0, output, total: output });
  }
  if (typeof value !== 'object') {
    throw new OaoError('OAO_ERR_INVALID_AGENT_OUTPUT', `${field} must be a number or a token usage object, got ${typeof value}`);
  }
  const u = value as Record<string, unknown>;
  const input = nonNegativeInteger(u.input ?? u.input_tokens ?? u.promptTokens, `${field}.input`);
  const output = nonNegativeInteger(u.output ?? u.output_tokens ?? u.completionTokens, `${field}.output`);
  const reportedTotal = u.total ?? u.total_tokens ?? u.totalTokens;
  const total = reportedTotal === undefined ? input + output : nonNegativeInteger(reportedTotal, `${field}.total`);
  if (input + output > Number.MAX_SAFE_INTEGER) {
    throw new OaoError(
      'OAO_ERR_INVALID_AGENT_OUTPUT',
      `Token counts ${field}.input + ${field}.output must be at most ${Number.MAX_SAFE_INTEGER} (Number.MAX_SAFE_INTEGER)`,
    );
  }
  return Object.freeze({ input, output, total: Math.max(total, input + output) });
}

const NO_USAGE: TokenUsage = Object.freeze({ input: 0, output: 0, total: 0 });

/** `ctx.usage()` argument check: the same shapes, with errors aimed at the caller. */
export function parseUsageReport(report: UsageReport): TokenUsage {
  try {
    const usage = parseUsage(report, 'usage');
    return usage ?? NO_USAGE;
  } catch (error) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', (error as Error).message, { details: { field: 'usage' } });
  }
}

/** Checks `review`'s answer. */
export function normalizeReviewDecision(value: unknown): ReviewDecision {
  if (typeof value === 'object' && value !== null && typeof (value as { done?: unknown }).done === 'boolean') {
    const decision = value as { done: boolean; input?: unknown };
    if (decision.done) return { done: true };
    return Object.prototype.hasOwnProperty.call(decision, 'input') && decision.input !== undefined
      ? { done: false, input: decision.input }
      : { done: false };
  }
  throw new OaoError(
    'OAO_ERR_INVALID_AGENT_OUTPUT',
    `review() must return { done: true } or { done: false, input? }, got ${describe(value)}`,
  );
}

function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  try {
    return JSON.stringify(value) ?? typeof value;
  } catch {
    return typeof value;
  }
}
