import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Fastify, { type FastifyPluginAsync } from 'fastify';
import { describe, expect, it } from 'vitest';

// package.json pins the CommonJS releases of two packages Fastify brings in (their newest releases
// are ES-module-only and declare Node 22, which makes npm warn on Node 20). These tests use the code
// paths that call them, so a pin to an incompatible release fails here.

const docs = fileURLToPath(new URL('../docs/', import.meta.url));
const require = createRequire(import.meta.url);

/** @fastify/static as @fastify/swagger-ui (which serves /docs with it) gets it. */
async function importFastifyStatic(): Promise<FastifyPluginAsync<{ root: string; serve: boolean }>> {
  const path = createRequire(require.resolve('@fastify/swagger-ui')).resolve('@fastify/static');
  return ((await import(pathToFileURL(path).href)) as { default: FastifyPluginAsync<{ root: string; serve: boolean }> }).default;
}

/** What @fastify/static adds to every reply. */
interface DownloadReply {
  download(filename: string, name: string): unknown;
}

describe('the pinned dependencies of Fastify', () => {
  it('pins what package.json says, and the README shows the same overrides', async () => {
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { overrides: unknown };
    const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
    const block = /```json overrides\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBeDefined();
    expect(JSON.parse(`{${block as string}}`)).toEqual({ overrides: pkg.overrides });

    const fromFastify = createRequire(require.resolve('fastify'));
    const fromLightMyRequest = createRequire(fromFastify.resolve('light-my-request'));
    expect((JSON.parse(await readFile(fromLightMyRequest.resolve('cookie/package.json'), 'utf8')) as { version: string }).version).toMatch(/^1\./);
  });

  it('light-my-request sends the cookies of an injected request (cookie)', async () => {
    const app = Fastify();
    app.get('/', (request) => ({ cookie: request.headers.cookie }));
    const response = await app.inject({ method: 'GET', url: '/', cookies: { session: 'a b', theme: 'dark' } });
    expect(response.json()).toEqual({ cookie: 'session=a%20b; theme=dark' });
    await app.close();
  });

  it('@fastify/static names a download (content-disposition)', async () => {
    const app = Fastify();
    await app.register(await importFastifyStatic(), { root: docs, serve: false });
    app.get('/download', (_request, reply) => (reply as unknown as DownloadReply).download('errors.md', 'OAO errors ä.md'));
    const response = await app.inject({ method: 'GET', url: '/download' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-disposition']).toBe(`attachment; filename="OAO errors ?.md"; filename*=UTF-8''OAO%20errors%20%C3%A4.md`);
    expect(response.body).toContain('# Error codes');
    await app.close();
  });
});
