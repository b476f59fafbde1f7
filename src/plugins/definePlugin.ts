import type { ToolFunction } from '../agent.js';
import { OaoError } from '../errors.js';
import type { OaoEvent, OaoEventType } from '../events/schema.js';
import { typeOf } from '../options.js';

/** A run's counters as a rule sees them: what was spent before the call or charge it decides on. */
export interface PluginCounters {
  readonly steps: number;
  readonly tokens: number;
  readonly toolCalls: number;
}

/** One tool call of the run, as the rules see it. */
export interface PluginToolCall {
  readonly tool: string;
  readonly args: unknown;
}

/** What every rule is told about the run. */
export interface PluginFactsBase {
  readonly executionId: string;
  readonly agentName: string;
  /** The step that is starting (stepStart) or running. */
  readonly step: number;
  /** The run's tool calls so far, in order, each as it was authorized (a loop detector needs nothing more). */
  readonly toolCalls: readonly PluginToolCall[];
}

/** The facts of each kind of rule. */
export interface PluginRuleFacts {
  readonly stepStart: PluginFactsBase;
  readonly toolCall: PluginFactsBase & { readonly toolCall: PluginToolCall };
  readonly modelCall: PluginFactsBase & { readonly modelCall: { readonly model: string | null; readonly input: unknown } };
  readonly usage: PluginFactsBase & {
    readonly usage: { readonly input: number; readonly output: number; readonly total: number; readonly source: 'reported' | 'output' | 'model' };
  };
}

export type PluginRuleKind = keyof PluginRuleFacts;

/** A rule's answer: `null` lets the call go on; `{ message }` refuses it, as a policy limit does. */
export type PluginVerdict = null | { readonly message: string };

/**
 * A rule: a pure function of the facts and the counters, asked before the spend. It must not
 * throw; a rule that does fails its run closed (`OAO_ERR_PLUGIN_FAILED`).
 */
export type PluginRule<K extends PluginRuleKind> = (facts: PluginRuleFacts[K], counters: PluginCounters) => PluginVerdict;

export type PluginRules = { readonly [K in PluginRuleKind]?: PluginRule<K> };

/** What `setup` receives: ways to add tools and hooks, and nothing that could change a limit. */
export interface PluginSetupContext {
  /** The plugin's name. */
  readonly name: string;
  /** Adds a tool every run of the orchestrator may call (still governed by the policy). */
  tool(name: string, body: ToolFunction): void;
  /** Calls `hook` for every event of `type` (or every event, with '*'), isolated like `orch.on()`. */
  on(type: OaoEventType | '*', hook: (event: OaoEvent) => void | Promise<void>): void;
}

export interface PluginDefinition {
  /** Names the plugin in rule names (`plugin:<name>/<rule>`) and errors: letters, digits, `-`, `_`, `.`. */
  readonly name: string;
  readonly version: string;
  readonly rules?: PluginRules;
  /** Every event of every run; a hook that throws is isolated like `orch.on()`. */
  readonly onEvent?: (event: OaoEvent) => void | Promise<void>;
  /** Tools every run may call, governed by the policy like the run's own. */
  readonly tools?: Readonly<Record<string, ToolFunction>>;
  /** Called once when an orchestrator (or server) is created with the plugin. */
  readonly setup?: (context: PluginSetupContext) => void;
}

/** A checked plugin, as `definePlugin` returns it. */
export interface Plugin extends PluginDefinition {
  readonly [PLUGIN]: true;
}

const PLUGIN: unique symbol = Symbol.for('open-agent-orchestrator.plugin');

const RULE_KINDS: readonly PluginRuleKind[] = ['stepStart', 'toolCall', 'modelCall', 'usage'];
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function invalid(message: string, field: string, name?: string): OaoError {
  return new OaoError('OAO_ERR_INVALID_ARGUMENT', message, { details: { field, ...(name === undefined ? {} : { plugin: name }) } });
}

/**
 * Checks a plugin definition and returns it frozen, ready for `new Orchestrator({ plugins })`.
 * Rules are asked before the spend, exactly like the policy's limits; a rule's refusal is a
 * violation named `plugin:<name>/<rule>`. A plugin can add rules, tools and hooks; it can never
 * widen a limit. Every problem is an `OAO_ERR_INVALID_ARGUMENT` naming the field.
 *
 * @example
 * ```ts
 * import { definePlugin, Orchestrator } from 'open-agent-orchestrator';
 *
 * const noDeletes = definePlugin({
 *   name: 'no-deletes',
 *   version: '1.0.0',
 *   rules: {
 *     toolCall: ({ toolCall }) => (toolCall.tool.startsWith('delete') ? { message: `${toolCall.tool} is never allowed` } : null),
 *   },
 * });
 * const orch = new Orchestrator({ plugins: [noDeletes] });
 * ```
 */
export function definePlugin(definition: PluginDefinition): Plugin {
  if (typeof definition !== 'object' || definition === null) throw invalid(`Expected a plugin definition object, got ${typeOf(definition)}`, 'plugin');
  const { name, version, rules, onEvent, tools, setup } = definition;
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw invalid(`Expected the plugin's "name" to be 1 to 64 letters, digits, ".", "_" or "-", got ${typeof name === 'string' ? JSON.stringify(name) : typeOf(name)}`, 'name');
  }
  if (typeof version !== 'string' || version.length === 0 || version.length > 64) {
    throw invalid(`Expected plugin "${name}" to have a "version" string, got ${typeOf(version)}`, 'version', name);
  }
  let checkedRules: PluginRules | undefined;
  if (rules !== undefined) {
    if (typeof rules !== 'object' || rules === null) throw invalid(`Expected plugin "${name}"'s "rules" to be an object, got ${typeOf(rules)}`, 'rules', name);
    const copy: Record<string, unknown> = {};
    for (const key of Object.keys(rules)) {
      if (!(RULE_KINDS as readonly string[]).includes(key)) {
        throw invalid(`Plugin "${name}" has an unknown rule "${key}": rules are ${RULE_KINDS.join(', ')}`, `rules.${key}`, name);
      }
      const rule = (rules as Record<string, unknown>)[key];
      if (typeof rule !== 'function') throw invalid(`Expected plugin "${name}"'s rule "${key}" to be a function, got ${typeOf(rule)}`, `rules.${key}`, name);
      copy[key] = rule;
    }
    checkedRules = Object.freeze(copy);
  }
  if (onEvent !== undefined && typeof onEvent !== 'function') throw invalid(`Expected plugin "${name}"'s "onEvent" to be a function, got ${typeOf(onEvent)}`, 'onEvent', name);
  if (setup !== undefined && typeof setup !== 'function') throw invalid(`Expected plugin "${name}"'s "setup" to be a function, got ${typeOf(setup)}`, 'setup', name);
  let checkedTools: Readonly<Record<string, ToolFunction>> | undefined;
  if (tools !== undefined) {
    if (typeof tools !== 'object' || tools === null) throw invalid(`Expected plugin "${name}"'s "tools" to be an object, got ${typeOf(tools)}`, 'tools', name);
    const copy: Record<string, ToolFunction> = {};
    for (const key of Object.keys(tools)) {
      const body = (tools as Record<string, unknown>)[key];
      if (typeof body !== 'function') throw invalid(`Expected plugin "${name}"'s tool "${key}" to be a function, got ${typeOf(body)}`, `tools.${key}`, name);
      copy[key] = body as ToolFunction;
    }
    checkedTools = Object.freeze(copy);
  }
  return Object.freeze({
    name,
    version,
    ...(checkedRules === undefined ? {} : { rules: checkedRules }),
    ...(onEvent === undefined ? {} : { onEvent }),
    ...(checkedTools === undefined ? {} : { tools: checkedTools }),
    ...(setup === undefined ? {} : { setup }),
    [PLUGIN]: true as const,
  });
}

/** Whether a value is a plugin made by `definePlugin` (also across two copies of the package). */
export function isPlugin(value: unknown): value is Plugin {
  return typeof value === 'object' && value !== null && (value as { [PLUGIN]?: unknown })[PLUGIN] === true;
}
