import { OaoError, serializeError, type PluginRuleName, type PolicyViolation } from '../errors.js';
import type { Plugin, PluginCounters, PluginRule, PluginRuleFacts, PluginRuleKind } from '../plugins/definePlugin.js';

/** One plugin's rule of one kind, with the name violations carry. */
interface NamedRule<K extends PluginRuleKind> {
  readonly plugin: string;
  readonly rule: PluginRuleName;
  readonly check: PluginRule<K>;
}

/**
 * The rules of an orchestrator's plugins, grouped by kind in plugin order: each kind asks its rules
 * one after another and the first refusal wins. Pure: no I/O and no state of its own.
 */
export class PluginRuleSet {
  readonly #rules: { readonly [K in PluginRuleKind]: readonly NamedRule<K>[] };

  constructor(plugins: readonly Plugin[]) {
    const rules = { stepStart: [], toolCall: [], modelCall: [], usage: [] } as { [K in PluginRuleKind]: NamedRule<K>[] };
    for (const plugin of plugins) {
      for (const kind of Object.keys(plugin.rules ?? {}) as PluginRuleKind[]) {
        const check = plugin.rules?.[kind];
        if (check !== undefined) (rules[kind] as NamedRule<typeof kind>[]).push({ plugin: plugin.name, rule: `plugin:${plugin.name}/${kind}`, check: check as PluginRule<typeof kind> });
      }
    }
    this.#rules = rules;
  }

  /** Whether any plugin has a rule of this kind (callers skip building facts otherwise). */
  has(kind: PluginRuleKind): boolean {
    return this.#rules[kind].length > 0;
  }

  /**
   * Asks every rule of `kind`: the first refusal as a violation, or null. A rule that throws, or
   * answers anything but null or `{ message: string }`, is `OAO_ERR_PLUGIN_FAILED` naming its plugin:
   * the caller fails the run closed.
   */
  check<K extends PluginRuleKind>(kind: K, facts: PluginRuleFacts[K], counters: PluginCounters): PolicyViolation | null {
    for (const { plugin, rule, check } of this.#rules[kind] as readonly NamedRule<K>[]) {
      let verdict: unknown;
      try {
        verdict = check(facts, counters);
      } catch (error) {
        throw pluginFailed(plugin, rule, `threw: ${serializeError(error).message}`, error);
      }
      if (verdict === null || verdict === undefined) continue;
      const message = typeof verdict === 'object' ? (verdict as { message?: unknown }).message : undefined;
      if (typeof message !== 'string' || message.length === 0) {
        throw pluginFailed(plugin, rule, 'answered neither null nor { message: string }');
      }
      return { rule, message, limit: null, attempted: null, ...(kind === 'toolCall' ? { tool: (facts as PluginRuleFacts['toolCall']).toolCall.tool } : {}) };
    }
    return null;
  }
}

function pluginFailed(plugin: string, rule: string, what: string, cause?: unknown): OaoError {
  return new OaoError('OAO_ERR_PLUGIN_FAILED', `Plugin "${plugin}" failed: its rule ${rule} ${what}`, {
    details: { plugin, rule },
    ...(cause === undefined ? {} : { cause }),
  });
}
