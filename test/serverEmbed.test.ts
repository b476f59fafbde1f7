import cors from '@fastify/cors';
import { Validator } from '@seriousme/openapi-schema-validator';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { OaoError, createMemoryStore, type AgentContext } from '../src/index.js';
import { createMetrics } from '../src/observability/metrics/index.js';
import { DASHBOARD_ASSET_NAMES } from '../src/server/dashboard/loadDashboardAssets.js';
import { createServer, errorBodySchema, oaoPlugin, type OaoPluginOptions } from '../src/server/index.js';
import { createGates } from './helpers.js';

/**
 * `oaoPlugin` inside a user's own Fastify app: the user's route, hook, error and not-found
 * handlers and @fastify/cors next to the whole API under the prefix `/oao`. Every URL the API
 * answers with or serves must carry the prefix, and nothing of the API may leak onto the user's
 * routes. `createServer` is the same plugin at the root of an instance of its own.
 */

const gates = createGates();

const agents = {
  echo: { description: 'Repeats the task.', invoke: (task: unknown) => ({ output: `echo: ${String(task)}` }) },
  gated: {
    async invoke(task: string, ctx: AgentContext) {
      await new Promise<void>((resolve, reject) => {
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason));
        void gates.gate(task).promise.then(resolve);
      });
      return { output: `done: ${task}` };
    },
  },
};

const apps: FastifyInstance[] = [];

afterEach(async () => {
  gates.openAll();
  gates.clear();
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

interface UserApp {
  readonly app: FastifyInstance;
  /** URLs the user's own onRequest hook saw, in order. */
  readonly seen: string[];
}

/**
 * What a user's app looks like: its own route, hook, error and not-found handlers, CORS, a text
 * body route (Fastify's default parsers), a rate limiter that refuses requests carrying
 * `x-limit: 1`, then OAO under `/oao`, then one more route of its own.
 */
async function userApp(oao: Partial<OaoPluginOptions> = {}, fastifyOptions: FastifyServerOptions = { routerOptions: { maxParamLength: 256 } }): Promise<UserApp> {
  const app = Fastify(fastifyOptions);
  apps.push(app);
  const seen: string[] = [];
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    seen.push(request.url);
    reply.header('x-user-hook', 'ran');
    if (request.headers['x-limit'] === '1') throw Object.assign(new Error('Slow down'), { statusCode: 429 });
  });
  await app.register(cors, { origin: 'https://console.example.com' });
  app.setErrorHandler((error: Error & { statusCode?: number }, _request, reply) => reply.code(error.statusCode ?? 500).send({ userError: error.message }));
  app.setNotFoundHandler((request, reply) => reply.code(404).send({ userNotFound: request.url }));
  app.get('/hello', () => ({ hello: 'world' }));
  app.post('/notes', (request) => ({ note: request.body }));
  app.get('/boom', () => {
    throw new Error('the user route failed');
  });
  await app.register(oaoPlugin, { prefix: '/oao', agents, apiKeys: [], policy: { maxSteps: 3, timeoutMs: 10_000 }, ...oao });
  app.get('/after', () => ({ registered: 'after OAO' }));
  await app.ready();
  return { app, seen };
}

function post(app: FastifyInstance, url: string, payload: unknown, headers: Record<string, string> = {}) {
  return app.inject({ method: 'POST', url, payload: payload as object, headers });
}

async function listen(app: FastifyInstance): Promise<string> {
  return app.listen({ port: 0, host: '127.0.0.1' });
}

describe('the user app keeps its own routes, hooks and handlers', () => {
  it('serves its routes before and after OAO, and its hooks run for every route', async () => {
    const { app, seen } = await userApp();
    const hello = await app.inject({ method: 'GET', url: '/hello' });
    expect(hello.json()).toEqual({ hello: 'world' });
    expect(hello.headers['x-user-hook']).toBe('ran');
    expect((await app.inject({ method: 'GET', url: '/after' })).json()).toEqual({ registered: 'after OAO' });

    const run = await post(app, '/oao/run', { agent: 'echo', task: 'hi' });
    expect(run.statusCode).toBe(200);
    expect(run.json()).toMatchObject({ status: 'SUCCESS', finalOutput: 'echo: hi' });
    expect(run.headers['x-user-hook']).toBe('ran');
    expect(seen).toEqual(['/hello', '/after', '/oao/run']);
  });

  it("keeps the user's body parsers, error handler and not-found handler: nothing of the API leaks", async () => {
    const { app } = await userApp();
    // Fastify's text/plain parser still serves the user's route; the API refuses text/plain.
    const note = await post(app, '/notes', 'plain words', { 'content-type': 'text/plain' });
    expect(note.json()).toEqual({ note: 'plain words' });
    const refused = await post(app, '/oao/run', '{"agent":"echo","task":"t"}', { 'content-type': 'text/plain' });
    expect(refused.statusCode).toBe(415);
    expect(errorBodySchema.parse(refused.json()).error.code).toBe('OAO_ERR_UNSUPPORTED_MEDIA_TYPE');

    const boom = await app.inject({ method: 'GET', url: '/boom' });
    expect(boom.statusCode).toBe(500);
    expect(boom.json()).toEqual({ userError: 'the user route failed' });

    expect((await app.inject({ method: 'GET', url: '/nowhere' })).json()).toEqual({ userNotFound: '/nowhere' });
    const apiMiss = await app.inject({ method: 'GET', url: '/oao/nowhere' });
    expect(apiMiss.statusCode).toBe(404);
    const missing = errorBodySchema.parse(apiMiss.json()).error;
    expect(missing.code).toBe('OAO_ERR_ROUTE_NOT_FOUND');
    expect(missing.message).toContain('/oao/docs');

    // The API's own errors keep their shape.
    const unknown = await post(app, '/oao/run', { agent: 'nobody', task: 't' });
    expect(unknown.statusCode).toBe(404);
    expect(errorBodySchema.parse(unknown.json()).error.code).toBe('OAO_ERR_UNKNOWN_AGENT');
  });

  it("hands an error of the user's own hook to the user's error handler, on the API's routes too", async () => {
    const { app } = await userApp();
    const limited = await app.inject({ method: 'GET', url: '/oao/agents', headers: { 'x-limit': '1' } });
    expect(limited.statusCode).toBe(429);
    expect(limited.json()).toEqual({ userError: 'Slow down' });
  });

  it('answers CORS and its preflight for the API, without an API key for the preflight', async () => {
    const { app } = await userApp({ apiKeys: ['k1'] });
    const origin = 'https://console.example.com';
    const preflight = await app.inject({
      method: 'OPTIONS',
      url: '/oao/run',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });
    expect(preflight.statusCode).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe(origin);

    const agentsAnswer = await app.inject({ method: 'GET', url: '/oao/agents', headers: { origin, authorization: 'Bearer k1' } });
    expect(agentsAnswer.statusCode).toBe(200);
    expect(agentsAnswer.headers['access-control-allow-origin']).toBe(origin);
  });

  it("confines the API keys to the API: the user's routes, /health and the docs stay open", async () => {
    const { app } = await userApp({ apiKeys: ['k1'] });
    expect((await app.inject({ method: 'GET', url: '/hello' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/oao/health' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/oao/openapi.json' })).statusCode).toBe(200);
    const refused = await app.inject({ method: 'GET', url: '/oao/agents' });
    expect(refused.statusCode).toBe(401);
    expect(errorBodySchema.parse(refused.json()).error.code).toBe('OAO_ERR_UNAUTHORIZED');
    expect((await app.inject({ method: 'GET', url: '/oao/agents', headers: { authorization: 'Bearer k1' } })).statusCode).toBe(200);
  });
});

describe('every URL the API answers with or serves carries the prefix', () => {
  it('POST /oao/runs answers with /oao links that lead to the run, its events and its cancel', async () => {
    const { app } = await userApp();
    const started = await post(app, '/oao/runs', { agent: 'gated', task: 'held' });
    expect(started.statusCode).toBe(202);
    const body = started.json();
    expect(body).toMatchObject({
      statusUrl: `/oao/runs/${body.executionId}`,
      eventsUrl: `/oao/runs/${body.executionId}/events`,
      cancelUrl: `/oao/runs/${body.executionId}/cancel`,
    });
    expect(started.headers.location).toBe(body.statusUrl);
    expect((await app.inject({ method: 'GET', url: body.statusUrl })).json()).toMatchObject({ executionId: body.executionId, status: 'running' });
    const cancelled = await app.inject({ method: 'POST', url: body.cancelUrl });
    expect(cancelled.statusCode).toBe(202);
    expect(cancelled.json()).toMatchObject({ cancelled: true, status: 'FAILED' });
  });

  it('streams a run\'s events under the prefix, over a real socket, live and replayed', async () => {
    const { app } = await userApp();
    const base = await listen(app);
    const started = await fetch(`${base}/oao/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ agent: 'gated', task: 'stream me', executionId: 'embedded-1' }),
    });
    const { eventsUrl } = (await started.json()) as { eventsUrl: string };
    expect(eventsUrl).toBe('/oao/runs/embedded-1/events');
    const live = await fetch(`${base}${eventsUrl}`);
    expect(live.status).toBe(200);
    expect(live.headers.get('content-type')).toMatch(/^text\/event-stream/);
    gates.gate('stream me').resolve();
    const text = await live.text();
    expect(text).toContain('event: EXECUTION_START');
    expect(text).toContain('event: EXECUTION_COMPLETE');
    const replay = await (await fetch(`${base}${eventsUrl}`, { headers: { 'last-event-id': '2' } })).text();
    expect(replay).not.toContain('id: 2\n');
    expect(replay).toContain('event: EXECUTION_COMPLETE');
  });

  it('serves an OpenAPI document whose servers is the prefix and whose paths are the API\'s only', async () => {
    const { app } = await userApp();
    const doc = (await app.inject({ method: 'GET', url: '/oao/openapi.json' })).json();
    const result = await new Validator().validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(doc.servers).toEqual([{ url: '/oao', description: expect.any(String) }]);
    expect(Object.keys(doc.paths).sort()).toEqual(['/agents', '/approvals', '/health', '/policy', '/run', '/run-multi', '/runs', '/runs/{id}', '/runs/{id}/approvals/{callId}', '/runs/{id}/budget', '/runs/{id}/cancel', '/runs/{id}/events', '/what-if']);
    expect((await app.inject({ method: 'GET', url: '/oao/docs/json' })).json()).toEqual(doc);

    const page = await app.inject({ method: 'GET', url: '/oao/docs' });
    expect(page.statusCode).toBe(200);
    const assets = [...page.body.matchAll(/(?:src|href)\s*=\s*["']([^"']+)["']/g)].map((m) => m[1] as string);
    expect(assets.length).toBeGreaterThanOrEqual(4);
    for (const asset of assets) {
      const url = new URL(asset, 'http://oao.local/oao/docs').pathname;
      expect(url.startsWith('/oao/docs/'), url).toBe(true);
      expect((await app.inject({ method: 'GET', url })).statusCode, url).toBe(200);
    }
  });

  it('serves the dashboard and its assets under the prefix; the page finds the API one level up', async () => {
    const { app } = await userApp();
    const redirect = await app.inject({ method: 'GET', url: '/oao/dashboard' });
    expect(redirect.statusCode).toBe(301);
    expect(redirect.headers.location).toBe('/oao/dashboard/');
    const page = await app.inject({ method: 'GET', url: '/oao/dashboard/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    // Relative asset URLs resolve below the prefix.
    for (const asset of [...page.body.matchAll(/(?:src|href)="([^"#]+)"/g)].map((m) => m[1] as string)) {
      const url = new URL(asset, 'http://oao.local/oao/dashboard/').pathname;
      expect((await app.inject({ method: 'GET', url })).statusCode, url).toBe(200);
    }
    for (const name of DASHBOARD_ASSET_NAMES) expect((await app.inject({ method: 'GET', url: `/oao/dashboard/${name}` })).statusCode, name).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/oao/dashboard/config.json' })).json()).toMatchObject({ secured: false });
    // The page's API base is `new URL('../', its own URL)`: under the prefix, that is the prefix.
    const appJs = (await app.inject({ method: 'GET', url: '/oao/dashboard/app.js' })).body;
    expect(appJs).toContain("new URL('../', document.baseURI)");
    expect(new URL('../', 'http://oao.local/oao/dashboard/').pathname).toBe('/oao/');
    expect((await app.inject({ method: 'GET', url: new URL('agents', 'http://oao.local/oao/').pathname })).json().agents).toHaveLength(2);
  });

  it('serves /metrics under the prefix when metrics are given', async () => {
    const { app } = await userApp({ metrics: createMetrics() });
    await post(app, '/oao/run', { agent: 'echo', task: 'count me' });
    const metrics = await app.inject({ method: 'GET', url: '/oao/metrics' });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.body).toContain('oao_runs_total{status="SUCCESS",agent="echo",reason="completed"} 1');
    expect((await app.inject({ method: 'GET', url: '/metrics' })).json()).toEqual({ userNotFound: '/metrics' });
  });
});

describe('options, lifecycle and the router', () => {
  it('validates its options when it loads, naming the option', async () => {
    const app = Fastify();
    apps.push(app);
    const error = await (async () => {
      await app.register(oaoPlugin, { prefix: '/oao', agents: {} });
      await app.ready();
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(OaoError.isInstance(error)).toBe(true);
    expect((error as OaoError).details?.field).toBe('agents');
  });

  it("closing the user's app cancels the API's live runs and files them", async () => {
    const store = createMemoryStore();
    const { app } = await userApp({ store });
    const { executionId } = (await post(app, '/oao/runs', { agent: 'gated', task: 'forever' })).json();
    await app.close();
    expect(store.report(executionId)?.termination).toEqual({ reason: 'cancelled', message: 'the server is shutting down' });
  });

  it("refuses a run id longer than the user's router can match, so every run stays reachable", async () => {
    const { app } = await userApp({}, {}); // Fastify's default maxParamLength: 100
    const long = 'x'.repeat(101);
    const refused = await post(app, '/oao/runs', { agent: 'echo', task: 't', executionId: long });
    expect(refused.statusCode).toBe(400);
    expect(errorBodySchema.parse(refused.json()).error.details).toMatchObject({ field: 'body.executionId', maxLength: 100 });
    const fits = 'y'.repeat(100);
    expect((await post(app, '/oao/run', { agent: 'echo', task: 't', executionId: fits })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: `/oao/runs/${fits}` })).json()).toMatchObject({ executionId: fits, status: 'SUCCESS' });
    const limits = (await app.inject({ method: 'GET', url: '/oao/policy' })).json().limits;
    expect(limits.maxExecutionIdLength).toBe(100);
  });

  it('mounts twice in one app, each mount with its own agents, store and document', async () => {
    const app = Fastify();
    apps.push(app);
    await app.register(oaoPlugin, { prefix: '/a', agents: { first: agents.echo }, apiKeys: [] });
    await app.register(oaoPlugin, { prefix: '/b', agents: { second: agents.echo }, apiKeys: ['b-key'] });
    await app.ready();
    expect((await post(app, '/a/run', { agent: 'first', task: 'x' })).json().agentName).toBe('first');
    expect((await post(app, '/a/run', { agent: 'second', task: 'x' })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/b/agents' })).statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: '/b/agents', headers: { authorization: 'Bearer b-key' } })).json().agents).toEqual([
      { name: 'second', description: 'Repeats the task.' },
    ]);
    expect((await app.inject({ method: 'GET', url: '/a/runs' })).json().total).toBe(1);
    expect(Object.keys((await app.inject({ method: 'GET', url: '/b/openapi.json' })).json().paths)).toContain('/run');
  });

  it("builds its URLs on the whole prefix: the app's own around it, and one given with a trailing slash", async () => {
    const app = Fastify();
    apps.push(app);
    await app.register(
      async (api) => {
        await api.register(oaoPlugin, { prefix: '/oao/', agents, apiKeys: [] });
      },
      { prefix: '/api' },
    );
    await app.ready();
    const started = (await post(app, '/api/oao/runs', { agent: 'echo', task: 'x' })).json();
    expect(started.statusUrl).toBe(`/api/oao/runs/${started.executionId}`);
    expect((await app.inject({ method: 'GET', url: started.statusUrl })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/api/oao/openapi.json' })).json().servers).toEqual([{ url: '/api/oao', description: expect.any(String) }]);
    expect((await app.inject({ method: 'GET', url: '/api/oao/dashboard' })).headers.location).toBe('/api/oao/dashboard/');
    expect(errorBodySchema.parse((await app.inject({ method: 'GET', url: '/api/oao/nowhere' })).json()).error.message).toContain('/api/oao/docs');
  });

  it("works without a prefix, leaving the app's not-found handler in place", async () => {
    const app = Fastify();
    apps.push(app);
    app.setNotFoundHandler((request, reply) => reply.code(404).send({ mine: request.url }));
    await app.register(oaoPlugin, { agents, apiKeys: [] });
    await app.ready();
    expect((await post(app, '/run', { agent: 'echo', task: 'root' })).json().finalOutput).toBe('echo: root');
    expect((await app.inject({ method: 'GET', url: '/nowhere' })).json()).toEqual({ mine: '/nowhere' });
    expect((await app.inject({ method: 'GET', url: '/openapi.json' })).json().servers).toBeUndefined();
  });
});

describe('createServer: the plugin at the root of an instance of its own', () => {
  it('still serves the API at the root, booted: routes are added with oaoPlugin in your own app instead', async () => {
    const app = await createServer({ agents, apiKeys: [] });
    apps.push(app);
    expect((await post(app, '/run', { agent: 'echo', task: 'as before' })).json().finalOutput).toBe('echo: as before');
    expect((await post(app, '/runs', { agent: 'echo', task: 'x' })).json().statusUrl).toMatch(/^\/runs\//);
    expect(errorBodySchema.parse((await app.inject({ method: 'GET', url: '/nowhere' })).json()).error.message).toContain('/docs');
    expect(() => app.get('/late', () => 'too late')).toThrow();
  });
});
