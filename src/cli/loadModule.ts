import { access } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AgentLike, ToolSet } from '../agent.js';
import { OaoError } from '../errors.js';
import { isPlugin, type Plugin } from '../plugins/definePlugin.js';
import type { PolicyOptions } from '../policy/schema.js';
import { StrictPolicy } from '../policy/StrictPolicy.js';
import { resolveWorkflows } from '../server/WorkflowService.js';
import type { Workflow } from '../workflow/defineWorkflow.js';

/** What the CLI takes from a user's module. */
export interface AgentModule {
  readonly path: string;
  readonly agents: Readonly<Record<string, AgentLike>>;
  readonly tools: ToolSet | undefined;
  readonly policy: StrictPolicy | PolicyOptions | undefined;
  /** The module's `workflows` export (made by defineWorkflow), by name; empty when it has none. */
  readonly workflows: Readonly<Record<string, Workflow>>;
}

function isAgent(value: unknown): value is AgentLike {
  if (typeof value === 'function') return true;
  return typeof value === 'object' && value !== null && typeof (value as { invoke?: unknown }).invoke === 'function';
}

let typescriptLoader: Promise<void> | undefined;

/** TypeScript modules need a loader when oao itself runs from compiled JavaScript. */
async function enableTypeScript(): Promise<void> {
  typescriptLoader ??= (async () => {
    try {
      const api = (await import('tsx/esm/api')) as { register: () => unknown };
      api.register();
    } catch (error) {
      typescriptLoader = undefined;
      throw new OaoError('OAO_ERR_INVALID_MODULE', 'Loading a TypeScript module needs the "tsx" package: npm install -D tsx (or compile it to JavaScript)', {
        cause: error,
      });
    }
  })();
  return typescriptLoader;
}

/**
 * Loads agents from a module: its `agents` export (an object of agents), else its default export
 * (an object of agents, or one agent), else every named export that is an agent. Optional `tools`
 * and `policy` exports apply to every run. A default export that holds them
 * (`export default { agents, tools, policy }`), or a CommonJS `module.exports = { agents, ... }`,
 * counts as those exports.
 */
/** Imports a module given on the command line (a TypeScript one through tsx): its exports, and its absolute path. */
async function importModule(path: string, cwd: string): Promise<{ file: string; exports: Record<string, unknown> }> {
  const file = isAbsolute(path) ? path : resolve(cwd, path);
  try {
    await access(file);
  } catch {
    throw new OaoError('OAO_ERR_INVALID_MODULE', `No module at ${file}`, { details: { module: path } });
  }
  if (/\.(c|m)?tsx?$/.test(file)) {
    const alreadyTs = process.execArgv.some((arg) => arg.includes('tsx')) || process.env.TSX_TSCONFIG_PATH !== undefined;
    if (!alreadyTs) await enableTypeScript();
  }
  try {
    return { file, exports: (await import(pathToFileURL(file).href)) as Record<string, unknown> };
  } catch (error) {
    throw new OaoError('OAO_ERR_INVALID_MODULE', `Could not load ${path}: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
      details: { module: path },
    });
  }
}

/**
 * Loads the plugins of a `--plugin` module: its default export, its `plugin` export or its `plugins`
 * array, each made by definePlugin(). Anything else is OAO_ERR_INVALID_MODULE naming the module.
 */
export async function loadPluginModule(path: string, cwd: string = process.cwd()): Promise<Plugin[]> {
  const { exports } = await importModule(path, cwd);
  const found = exports.plugins ?? exports.plugin ?? exports.default;
  const plugins = Array.isArray(found) ? (found as unknown[]) : [found];
  if (plugins.length === 0 || !plugins.every((plugin) => isPlugin(plugin))) {
    throw new OaoError('OAO_ERR_INVALID_MODULE', `${path} must export a plugin made by definePlugin() (as default, "plugin" or a "plugins" array)`, {
      details: { module: path },
    });
  }
  return plugins;
}

/** The plugins of every `--plugin` module, in the order given. */
export async function loadPluginModules(paths: readonly string[], cwd: string = process.cwd()): Promise<Plugin[]> {
  const plugins: Plugin[] = [];
  for (const path of paths) plugins.push(...(await loadPluginModule(path, cwd)));
  return plugins;
}

export async function loadAgentModule(path: string, cwd: string = process.cwd()): Promise<AgentModule> {
  const { file, exports } = await importModule(path, cwd);
  const shape = moduleShape(exports);
  let workflows: ReadonlyMap<string, Workflow>;
  try {
    workflows = resolveWorkflows(shape.workflows);
  } catch (error) {
    throw new OaoError('OAO_ERR_INVALID_MODULE', `The "workflows" export of ${path}: ${(error as Error).message}`, { cause: error, details: { module: path } });
  }
  // A module may export only workflows: their nodes carry the agents.
  const agents = workflows.size > 0 && shape.agents === undefined && !hasAgentExport(shape) ? {} : pickAgents(shape, path);
  const tools = shape.tools;
  if (tools !== undefined && (typeof tools !== 'object' || tools === null || Object.values(tools).some((t) => typeof t !== 'function'))) {
    throw new OaoError('OAO_ERR_INVALID_MODULE', `The "tools" export of ${path} must be an object of functions`, { details: { module: path } });
  }
  const policy = shape.policy;
  if (policy !== undefined && !(policy instanceof StrictPolicy) && (typeof policy !== 'object' || policy === null)) {
    throw new OaoError('OAO_ERR_INVALID_MODULE', `The "policy" export of ${path} must be a StrictPolicy or policy options`, {
      details: { module: path },
    });
  }
  return { path: file, agents, tools: tools as ToolSet | undefined, policy: policy as StrictPolicy | PolicyOptions | undefined, workflows: Object.fromEntries(workflows) };
}

function hasAgentExport(exports: Record<string, unknown>): boolean {
  return isAgent(exports.default) || Object.values(exports).some((value) => isAgent(value));
}

/**
 * The object that holds `agents`, `tools` and `policy`: the module's own exports, or its default
 * export when that carries `agents` (an ES module's `export default { agents }`, or a CommonJS
 * module, whose `module.exports` arrives as the default export; Node may also copy some of its
 * keys as named exports, and those are the same values).
 */
function moduleShape(exports: Record<string, unknown>): Record<string, unknown> {
  const fallback = exports.default;
  if (typeof fallback !== 'object' || fallback === null || isAgent(fallback) || !('agents' in fallback)) return exports;
  const holder = fallback as Record<string, unknown>;
  return exports.agents === undefined || exports.agents === holder.agents ? holder : exports;
}

function pickAgents(exports: Record<string, unknown>, path: string): Record<string, AgentLike> {
  const candidates: [string, unknown][] = [];
  const named = exports.agents;
  const fallback = exports.default;
  if (named !== undefined) {
    if (typeof named !== 'object' || named === null) {
      throw new OaoError('OAO_ERR_INVALID_MODULE', `The "agents" export of ${path} must be an object of agents`, { details: { module: path } });
    }
    candidates.push(...Object.entries(named));
  } else if (isAgent(fallback)) {
    const name = (fallback as { name?: unknown }).name;
    candidates.push([typeof name === 'string' && name.length > 0 ? name : 'default', fallback]);
  } else if (typeof fallback === 'object' && fallback !== null) {
    candidates.push(...Object.entries(fallback));
  } else {
    for (const [key, value] of Object.entries(exports)) if (key !== 'tools' && key !== 'policy' && key !== 'workflows' && isAgent(value)) candidates.push([key, value]);
  }
  const agents: Record<string, AgentLike> = {};
  for (const [name, value] of candidates) {
    if (!isAgent(value)) {
      throw new OaoError('OAO_ERR_INVALID_MODULE', `"${name}" in ${path} is not an agent: it needs an invoke(input, ctx) method`, {
        details: { module: path, agent: name },
      });
    }
    agents[name] = value;
  }
  if (Object.keys(agents).length === 0) {
    throw new OaoError('OAO_ERR_INVALID_MODULE', `${path} exports no agents: export an "agents" object, or agents as named exports`, {
      details: { module: path },
    });
  }
  return agents;
}
