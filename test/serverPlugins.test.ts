import { writeFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { definePlugin, type AgentContext } from '../src/index.js';
import { loadPluginModule } from '../src/cli/loadModule.js';
import { createServer } from '../src/server/index.js';

const searcher = {
  async invoke(task: string, ctx: AgentContext) {
    return { output: await ctx.callTool('search', { q: task }) };
  },
};
const noSecrets = definePlugin({
  name: 'no-secrets',
  version: '1.0.0',
  rules: { toolCall: ({ toolCall }) => ((toolCall.args as { q: string }).q.includes('secret') ? { message: 'no secrets' } : null) },
});

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

describe('a server with plugins', () => {
  it('governs single runs and batch runs with them; a request cannot escape them', { timeout: 10_000 }, async () => {
    const searched: unknown[] = [];
    app = await createServer({ agents: { searcher }, tools: { search: (args: unknown) => (searched.push(args), 'found') }, plugins: [noSecrets] });
    const open = (await app.inject({ method: 'POST', url: '/run', payload: { agent: 'searcher', task: 'open data' } })).json();
    expect(open.status).toBe('SUCCESS');
    const secret = (await app.inject({ method: 'POST', url: '/run', payload: { agent: 'searcher', task: 'the secret plan' } })).json();
    expect(secret.termination).toMatchObject({ reason: 'policy_violation', rule: 'plugin:no-secrets/toolCall' });
    const batch = (await app.inject({ method: 'POST', url: '/run-multi', payload: { agents: ['searcher'], task: 'secret too' } })).json();
    expect(batch.reports.searcher.termination).toMatchObject({ rule: 'plugin:no-secrets/toolCall' });
    expect(searched).toEqual([{ q: 'open data' }]);
  });

  it('refuses plugins that were not made by definePlugin when it is created', { timeout: 10_000 }, async () => {
    await expect(createServer({ agents: { searcher }, plugins: [{ name: 'x', version: '1' }] as never })).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT' });
  });
});

describe('oao serve --plugin modules', () => {
  it('loads a default export, a plugin export or a plugins array, and names a module that has none', { timeout: 30_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'oao-plugin-modules-'));
    const entry = new URL('../src/index.ts', import.meta.url).pathname;
    const write = (name: string, body: string) => {
      const file = join(dir, name);
      writeFileSync(file, `import { definePlugin } from ${JSON.stringify(entry)};\n${body}\n`);
      return file;
    };
    const one = write('one.ts', "export default definePlugin({ name: 'one', version: '1' });");
    const named = write('named.ts', "export const plugin = definePlugin({ name: 'named', version: '1' });");
    const many = write('many.ts', "export const plugins = [definePlugin({ name: 'a', version: '1' }), definePlugin({ name: 'b', version: '1' })];");
    const none = write('none.ts', "export const plugin = { name: 'fake', version: '1' }; void definePlugin;");
    expect((await loadPluginModule(one)).map((p) => p.name)).toEqual(['one']);
    expect((await loadPluginModule(named)).map((p) => p.name)).toEqual(['named']);
    expect((await loadPluginModule(many)).map((p) => p.name)).toEqual(['a', 'b']);
    await expect(loadPluginModule(none)).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_MODULE', details: { module: none } });
    await expect(loadPluginModule(join(dir, 'missing.ts'))).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_MODULE' });
  });
});
