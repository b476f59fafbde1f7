import type { ToolFunction, ToolSet } from '../agent.js';
import { OaoError } from '../errors.js';
import type { OaoEvent, OaoEventType } from '../events/schema.js';
import { typeOf } from '../options.js';
import { PluginRuleSet } from '../policy/pluginRules.js';
import { isPlugin, type Plugin } from './definePlugin.js';

/** What runs need from an orchestrator's plugins. */
export interface InstalledPlugins {
  /** Their rules; undefined when none has any. */
  readonly rules: PluginRuleSet | undefined;
  /** Their tools (from `tools` and `setup`); undefined when none has any. */
  readonly tools: ToolSet | undefined;
  /** `name@version` of each, in order: part of every run's execution hash. */
  readonly identity: readonly string[];
}

/** Registers a hook the way `orch.on()` does: isolated, so a hook that throws never changes a run. */
export type HookRegistrar = (type: OaoEventType | '*', hook: (event: OaoEvent) => unknown) => void;

/**
 * Checks an orchestrator's `plugins` option and installs them: their `onEvent` hooks and those
 * `setup` adds are registered with `on`, their tools are collected, their rules grouped. Undefined
 * when there are no plugins. A value that is not a plugin, two plugins with one name, two tools
 * with one name or a `setup` that throws are `OAO_ERR_INVALID_ARGUMENT`.
 */
export function installPlugins(plugins: unknown, on: HookRegistrar): InstalledPlugins | undefined {
  if (plugins === undefined) return undefined;
  if (!Array.isArray(plugins)) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected "plugins" to be an array of plugins made by definePlugin(), got ${typeOf(plugins)}`, { details: { field: 'plugins' } });
  }
  if (plugins.length === 0) return undefined;
  const names = new Set<string>();
  const tools: Record<string, ToolFunction> = {};
  const toolOwners = new Map<string, string>();
  const addTool = (plugin: string, name: unknown, body: unknown): void => {
    if (typeof name !== 'string' || name.length === 0) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Plugin "${plugin}" added a tool without a name`, { details: { field: 'plugins', plugin } });
    }
    if (typeof body !== 'function') {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Plugin "${plugin}"'s tool "${name}" must be a function, got ${typeOf(body)}`, { details: { field: 'plugins', plugin, tool: name } });
    }
    const owner = toolOwners.get(name);
    if (owner !== undefined) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Plugins "${owner}" and "${plugin}" both add a tool named "${name}"`, { details: { field: 'plugins', plugin, tool: name } });
    }
    toolOwners.set(name, plugin);
    Object.defineProperty(tools, name, { value: body, enumerable: true, configurable: false, writable: false });
  };
  const checked: Plugin[] = [];
  for (const [index, plugin] of (plugins as unknown[]).entries()) {
    if (!isPlugin(plugin)) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected plugins[${index}] to be made by definePlugin(), got ${typeOf(plugin)}`, { details: { field: `plugins[${index}]` } });
    }
    if (names.has(plugin.name)) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Two plugins are named "${plugin.name}": rule names must say which plugin decided`, { details: { field: 'plugins', plugin: plugin.name } });
    }
    names.add(plugin.name);
    checked.push(plugin);
    for (const [name, body] of Object.entries(plugin.tools ?? {})) addTool(plugin.name, name, body);
    if (plugin.onEvent !== undefined) on('*', plugin.onEvent);
    if (plugin.setup !== undefined) {
      const name = plugin.name;
      try {
        plugin.setup(
          Object.freeze({
            name,
            tool: (toolName: string, body: ToolFunction) => addTool(name, toolName, body),
            on: (type: OaoEventType | '*', hook: (event: OaoEvent) => unknown) => on(type, hook),
          }),
        );
      } catch (error) {
        if (OaoError.isInstance(error)) throw error;
        throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Plugin "${name}"'s setup failed: ${error instanceof Error ? error.message : String(error)}`, {
          details: { field: 'plugins', plugin: name },
          cause: error,
        });
      }
    }
  }
  const rules = checked.some((plugin) => plugin.rules !== undefined && Object.keys(plugin.rules).length > 0) ? new PluginRuleSet(checked) : undefined;
  return Object.freeze({
    rules,
    tools: toolOwners.size === 0 ? undefined : Object.freeze(tools),
    identity: Object.freeze(checked.map((plugin) => `${plugin.name}@${plugin.version}`)),
  });
}
