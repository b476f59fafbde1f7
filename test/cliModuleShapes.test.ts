import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../src/cli/exitCodes.js';
import { loadAgentModule } from '../src/cli/loadModule.js';
import { runCli } from '../src/cli/program.js';
import { captureIo, repositoryRoot } from './cliIo.js';

const execFileAsync = promisify(execFile);

let dir: string;

const LOOPER = `{ invoke: (task, ctx) => ({ output: 'step ' + ctx.step }), review: () => ({ done: false }) }`;

/** The same agents, tools and policy in every shape a module can take. */
const MODULES: Record<string, string> = {
  'default-export.mjs': `export default { agents: { echo: { invoke: (t) => ({ output: 'default: ' + t }) }, looper: ${LOOPER} }, policy: { maxSteps: 3 } };\n`,
  'default-export.ts': `const agents = { echo: { invoke: (t: string) => ({ output: 'ts default: ' + t }) }, looper: ${LOOPER.replace('(task, ctx)', '(_task: string, ctx: { step: number })')} };\nexport default { agents, policy: { maxSteps: 3 } };\n`,
  // Node sees no named exports in these two (its CommonJS export detection gives up on them), only the default.
  'module-exports.cjs': `module.exports = { agents: { echo: { invoke: (t) => ({ output: 'cjs: ' + t }) }, looper: ${LOOPER} }, policy: { maxSteps: 3 } };\n`,
  'built-up.cjs': `const mod = {};\nmod.agents = { echo: { invoke: (t) => ({ output: 'built up: ' + t }) }, looper: ${LOOPER} };\nmod.policy = { maxSteps: 3 };\nmodule.exports = mod;\n`,
  // Here Node copies the keys as named exports as well.
  'exports-dot.cjs': `exports.agents = { echo: { invoke: (t) => ({ output: 'exports: ' + t }) }, looper: ${LOOPER} };\nexports.policy = { maxSteps: 3 };\n`,
  'with-tools.cjs': `const mod = {};\nmod.agents = { echo: { async invoke(t, ctx) { return { output: String(await ctx.callTool('shout', { t })) }; } } };\nmod.tools = { shout: ({ t }) => t.toUpperCase() };\nmodule.exports = mod;\n`,
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'oao-shapes-'));
  for (const [name, text] of Object.entries(MODULES)) await writeFile(join(dir, name), text);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('modules for oao run and serve', () => {
  it.each([
    ['default-export.mjs', 'default: hi'],
    ['default-export.ts', 'ts default: hi'],
    ['module-exports.cjs', 'cjs: hi'],
    ['built-up.cjs', 'built up: hi'],
    ['exports-dot.cjs', 'exports: hi'],
  ])('%s: agents are found and its policy applies', async (file, output) => {
    const loaded = await loadAgentModule(file, dir);
    expect(Object.keys(loaded.agents).sort()).toEqual(['echo', 'looper']);
    expect(loaded.policy).toEqual({ maxSteps: 3 });

    const echo = captureIo({ cwd: dir });
    expect(await runCli(['run', file, '--agent', 'echo', '--task', 'hi', '--json'], echo.io)).toBe(ExitCode.OK);
    expect(JSON.parse(echo.out())).toMatchObject({ status: 'SUCCESS', finalOutput: output });

    const looper = captureIo({ cwd: dir });
    expect(await runCli(['run', file, '--agent', 'looper', '--task', 'hi', '--json'], looper.io)).toBe(ExitCode.RUN_FAILED);
    expect(JSON.parse(looper.out())).toMatchObject({ totalSteps: 3, termination: { rule: 'max_steps' } });
  });

  // Inside the test runner CommonJS keys always arrive as named exports too; the oao process sees
  // what Node gives: for these two modules, the default export alone.
  it.each([
    ['module-exports.cjs', 'cjs: hi'],
    ['built-up.cjs', 'built up: hi'],
  ])('%s: the oao process finds the agents of module.exports', async (file, output) => {
    const cli = ['--conditions=oao-source', '--import', 'tsx', join(repositoryRoot, 'src/cli/oao.ts')];
    const { stdout } = await execFileAsync(process.execPath, [...cli, 'run', join(dir, file), '--agent', 'echo', '--task', 'hi', '--json'], {
      cwd: repositoryRoot,
      timeout: 30_000,
    });
    expect(JSON.parse(stdout)).toMatchObject({ status: 'SUCCESS', finalOutput: output });
  });

  it('takes tools from module.exports too', async () => {
    const t = captureIo({ cwd: dir });
    expect(await runCli(['run', 'with-tools.cjs', '--task', 'quiet', '--json'], t.io)).toBe(ExitCode.OK);
    expect(JSON.parse(t.out())).toMatchObject({ finalOutput: 'QUIET', toolUsage: { byTool: { shout: 1 } } });
  });

  it('still takes a default export that is an object of agents, or one agent', async () => {
    await writeFile(join(dir, 'object-of-agents.mjs'), `export default { a: { invoke: () => ({ output: 'a' }) }, b: () => ({ output: 'b' }) };\n`);
    await writeFile(join(dir, 'one-agent.mjs'), `export default { name: 'solo', invoke: () => ({ output: 'solo' }) };\n`);
    expect(Object.keys((await loadAgentModule('object-of-agents.mjs', dir)).agents)).toEqual(['a', 'b']);
    expect(Object.keys((await loadAgentModule('one-agent.mjs', dir)).agents)).toEqual(['solo']);
  });

  it('names the entry that is not an agent inside a default export', async () => {
    await writeFile(join(dir, 'bad-default.mjs'), `export default { agents: { fine: () => 1, broken: { run() {} } } };\n`);
    const t = captureIo({ cwd: dir });
    expect(await runCli(['run', 'bad-default.mjs', '--agent', 'fine', '--task', 'x'], t.io)).toBe(ExitCode.USAGE);
    expect(t.err()).toContain('"broken" in bad-default.mjs is not an agent');
  });
});
