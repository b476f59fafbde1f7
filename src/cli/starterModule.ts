import { writeFile } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';
import { OaoError } from '../errors.js';

/** Where `oao init` writes when no file is named. */
export const STARTER_FILE = 'agents.mjs';

/**
 * The module `oao init` writes: plain JavaScript (an ES module), so it runs with nothing but the
 * installed package, no TypeScript loader and no build. It imports nothing: agents, tools and the
 * policy are plain objects.
 */
export const STARTER_MODULE = `// Agents for the oao command, written by \`oao init\`:
//   npx oao run agents.mjs --agent researcher --task "agent governance"
//   npx oao serve agents.mjs
//
// An agent is an object with invoke(input, ctx) that returns { output } (sync or async), or just a
// function. ctx.callTool(name, args) asks the policy before the tool body runs; ctx.usage({ input,
// output }) meters tokens live; ctx.signal aborts when the run times out or is cancelled.

/** Answers at once, in one step. */
const greeter = {
  description: 'Greets whoever the task names.',
  invoke: (task) => ({ output: \`Hello, \${task}!\`, usage: { input: 5, output: 5 } }),
};

/** Looks the task up with the governed search tool, twice, then stops. */
const researcher = {
  description: 'Searches twice and summarizes.',
  async invoke(question, ctx) {
    const hits = await ctx.callTool('search', { q: question });
    ctx.usage({ input: 40, output: 20 });
    return { output: \`step \${ctx.step}: \${hits}\` };
  },
  // Called after every step: { done: false, input } asks for another step, which the policy's
  // maxSteps bounds.
  review: (result) => (result.step < 2 ? { done: false, input: 'a follow-up question' } : { done: true }),
};

/** The agents \`oao run --agent <name>\` and \`oao serve\` offer, by name. */
export const agents = { greeter, researcher };

/** Tools every run may call through ctx.callTool; replace the body with a real lookup. */
export const tools = {
  search: ({ q }) => \`3 results for "\${q}"\`,
};

/** Hard limits for every run; --max-steps and the other flags can only narrow them. */
export const policy = {
  maxSteps: 4,
  maxTokens: 2000,
  maxToolCalls: 4,
  timeoutMs: 10000,
  tools: { deny: ['shell'] },
};
`;

/**
 * Writes the starter module to `path` (relative to `cwd`). Never overwrites: an existing file is an
 * `OAO_ERR_CLI_USAGE` error. Returns the path as the user would type it.
 */
export async function writeStarterModule(path: string, cwd: string): Promise<string> {
  if (!path.endsWith('.mjs')) {
    throw new OaoError('OAO_ERR_CLI_USAGE', `The starter module is an ES module (import/export): give it a .mjs name (such as ${STARTER_FILE}), got "${path}".`, {
      details: { file: path },
    });
  }
  const file = isAbsolute(path) ? path : resolve(cwd, path);
  try {
    // 'wx' creates the file or fails if it exists, in one step: nothing is overwritten, ever.
    await writeFile(file, STARTER_MODULE, { flag: 'wx' });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      throw new OaoError('OAO_ERR_CLI_USAGE', `${path} already exists and oao init never overwrites a file: remove it, or name another file (oao init my-agents.mjs).`, {
        details: { file: path },
      });
    }
    throw new OaoError('OAO_ERR_CLI_USAGE', `Could not write ${path}: ${(error as Error).message}`, { cause: error, details: { file: path } });
  }
  const shown = relative(cwd, file);
  return shown.startsWith('..') || isAbsolute(shown) ? file : shown;
}
