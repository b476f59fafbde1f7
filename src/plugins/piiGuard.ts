import { OaoError } from '../errors.js';
import { typeOf } from '../options.js';
import { definePlugin, type Plugin } from './definePlugin.js';

export interface PiiGuardOptions {
  /**
   * What counts as personal data, by name: each pattern is tested against every string in a tool
   * call's arguments (and against object keys). @default email, phone, cardNumber and iban patterns
   */
  readonly patterns?: Readonly<Record<string, RegExp>>;
  /** Tools whose calls are not checked (a CRM that must receive an email address). @default none */
  readonly allowTools?: readonly string[];
  /** @default 'pii-guard' */
  readonly name?: string;
}

/** The default patterns: common shapes of personal data in free text. */
export const DEFAULT_PII_PATTERNS: Readonly<Record<string, RegExp>> = Object.freeze({
  email: /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/,
  phone: /\+?\d[\d ()-]{8,}\d/,
  cardNumber: /\b(?:\d[ -]?){13,16}\b/,
  iban: /\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b/,
});

/** Deepest nesting of arguments the guard walks; deeper values are refused, not skipped. */
const MAX_DEPTH = 32;

/**
 * A plugin that refuses tool calls whose arguments contain personal data: every string (and key)
 * in the arguments is tested against the configured patterns before the tool's body runs. The
 * refusal names the pattern, never the matched text, so the data does not reach the report.
 *
 * @example
 * ```ts
 * import { Orchestrator } from 'open-agent-orchestrator';
 * import { piiGuard } from 'open-agent-orchestrator/plugins';
 * const orch = new Orchestrator({ plugins: [piiGuard({ allowTools: ['crm.lookup'] })] });
 * ```
 */
export function piiGuard(options: PiiGuardOptions = {}): Plugin {
  const patterns = options.patterns ?? DEFAULT_PII_PATTERNS;
  if (typeof patterns !== 'object' || patterns === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected "patterns" to be an object of regular expressions, got ${typeOf(patterns)}`, { details: { field: 'patterns' } });
  }
  const checks = Object.entries(patterns).map(([name, pattern]) => {
    if (!(pattern instanceof RegExp)) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected pattern "${name}" to be a RegExp, got ${typeOf(pattern)}`, { details: { field: `patterns.${name}` } });
    }
    // A global or sticky RegExp keeps state between tests: use a stateless copy.
    return [name, new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ''))] as const;
  });
  const allowed = new Set(options.allowTools ?? []);
  const find = (value: unknown, depth: number): string | null => {
    if (depth > MAX_DEPTH) return 'nesting';
    if (typeof value === 'string') {
      for (const [name, pattern] of checks) if (pattern.test(value)) return name;
      return null;
    }
    if (Array.isArray(value)) {
      for (const item of value) {
        const found = find(item, depth + 1);
        if (found !== null) return found;
      }
      return null;
    }
    if (typeof value === 'object' && value !== null) {
      for (const [key, item] of Object.entries(value)) {
        const found = find(key, depth + 1) ?? find(item, depth + 1);
        if (found !== null) return found;
      }
    }
    return null;
  };
  return definePlugin({
    name: options.name ?? 'pii-guard',
    version: '1.0.0',
    rules: {
      toolCall: ({ toolCall }) => {
        if (allowed.has(toolCall.tool)) return null;
        const found = find(toolCall.args, 0);
        if (found === null) return null;
        return {
          message:
            found === 'nesting'
              ? `The arguments of ${toolCall.tool} nest deeper than ${MAX_DEPTH} levels and cannot be checked for personal data`
              : `The arguments of ${toolCall.tool} contain personal data (${found})`,
        };
      },
    },
  });
}
