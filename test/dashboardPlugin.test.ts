import { readdir } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createMachine } from 'xstate';
import { agentLifecycleMachine } from '../src/index.js';
import { createServer } from '../src/server/index.js';
import { DASHBOARD_CONTENT_SECURITY_POLICY } from '../src/server/dashboard/dashboardPlugin.js';
import { describeStatechart, type Statechart } from '../src/server/dashboard/describeStatechart.js';
import { DASHBOARD_ASSET_NAMES, DASHBOARD_DIR, etagOf } from '../src/server/dashboard/loadDashboardAssets.js';
import { RUNTIME_VERSION } from '../src/version.js';

/** The dashboard's routes, in process with inject(): no browser, no socket. */

const agents = { echo: (task: string) => `echo: ${task}` };
const apps: FastifyInstance[] = [];

async function server(options: { apiKeys?: string[]; dashboard?: boolean } = {}): Promise<FastifyInstance> {
  const app = await createServer({ agents, apiKeys: [], ...options });
  apps.push(app);
  return app;
}

afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

function edge(chart: Statechart, source: string, target: string) {
  return chart.edges.find((candidate) => candidate.source === source && candidate.target === target);
}

describe('dashboard assets', () => {
  it('redirects /dashboard to /dashboard/, which serves the page', async () => {
    const app = await server();
    const redirect = await app.inject({ method: 'GET', url: '/dashboard' });
    expect(redirect.statusCode).toBe(301);
    expect(redirect.headers.location).toBe('/dashboard/');
    expect(redirect.headers['content-security-policy']).toBe(DASHBOARD_CONTENT_SECURITY_POLICY);

    const page = await app.inject({ method: 'GET', url: '/dashboard/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.body).toContain('<script type="module" src="app.js"></script>');
    expect(page.body).toContain('<link rel="stylesheet" href="dashboard.css">');
  });

  it('serves every allow-listed file with its type, a strict CSP and revalidation headers', async () => {
    const app = await server();
    const expectedType: Record<string, string> = {
      html: 'text/html; charset=utf-8',
      css: 'text/css; charset=utf-8',
      js: 'text/javascript; charset=utf-8',
      svg: 'image/svg+xml; charset=utf-8',
    };
    for (const name of DASHBOARD_ASSET_NAMES) {
      const answer = await app.inject({ method: 'GET', url: `/dashboard/${name}` });
      expect(answer.statusCode, name).toBe(200);
      expect(answer.headers['content-type'], name).toBe(expectedType[name.slice(name.lastIndexOf('.') + 1)]);
      expect(answer.headers['content-security-policy'], name).toBe(DASHBOARD_CONTENT_SECURITY_POLICY);
      expect(answer.headers['x-content-type-options'], name).toBe('nosniff');
      expect(answer.headers['cache-control'], name).toBe('no-cache');
      expect(answer.headers.etag, name).toBe(etagOf(answer.rawPayload));
      expect(answer.rawPayload.length, name).toBeGreaterThan(0);
    }
  });

  it('has a CSP that allows nothing but the server itself and no inline script', () => {
    const directives = new Map(
      DASHBOARD_CONTENT_SECURITY_POLICY.split(';').map((directive) => {
        const [name, ...values] = directive.trim().split(/\s+/);
        return [name, values.join(' ')] as const;
      }),
    );
    expect(directives.get('default-src')).toBe("'self'");
    expect(directives.get('script-src')).toBe("'self'");
    expect(directives.get('style-src')).toBe("'self'");
    expect(directives.get('connect-src')).toBe("'self'");
    expect(directives.get('img-src')).toBe("'self' data:");
    expect(directives.get('frame-ancestors')).toBe("'none'");
    expect(DASHBOARD_CONTENT_SECURITY_POLICY).not.toContain('unsafe');
  });

  it('answers 304 to a matching If-None-Match', async () => {
    const app = await server();
    const first = await app.inject({ method: 'GET', url: '/dashboard/app.js' });
    const again = await app.inject({ method: 'GET', url: '/dashboard/app.js', headers: { 'if-none-match': first.headers.etag as string } });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
    const changed = await app.inject({ method: 'GET', url: '/dashboard/app.js', headers: { 'if-none-match': '"something-else"' } });
    expect(changed.statusCode).toBe(200);
  });

  it('lists every file of dashboard/ (and only those), and every module the page imports is served', async () => {
    const files = (await readdir(DASHBOARD_DIR)).sort();
    expect(files).toEqual([...DASHBOARD_ASSET_NAMES].sort());
    const app = await server();
    for (const name of DASHBOARD_ASSET_NAMES.filter((file) => file.endsWith('.js'))) {
      const source = (await app.inject({ method: 'GET', url: `/dashboard/${name}` })).body;
      for (const [, imported] of source.matchAll(/^import .* from '\.\/([^']+)';$/gm)) {
        expect(DASHBOARD_ASSET_NAMES, `${name} imports ${imported}`).toContain(imported);
      }
    }
  });

  it('answers the server\'s own 404 for unknown files and path tricks', async () => {
    const app = await server();
    for (const url of [
      '/dashboard/nope.js',
      '/dashboard/app.js.map',
      '/dashboard/../package.json',
      '/dashboard/..%2Fpackage.json',
      '/dashboard/%2e%2e/%2e%2e/package.json',
      '/dashboard/%2e%2e%2fpackage.json',
      '/dashboard/..%5c..%5cpackage.json',
      '/dashboard//etc/passwd',
      '/dashboard/dashboardPlugin.ts',
      '/dashboard/APP.JS',
      '/dashboard/app.js/',
    ]) {
      const answer = await app.inject({ method: 'GET', url });
      expect(answer.statusCode, url).toBe(404);
      expect(answer.json().error.code, url).toBe('OAO_ERR_ROUTE_NOT_FOUND');
      expect(answer.body, url).not.toContain('"name": "open-agent-orchestrator"');
    }
  });

  it('keeps the assets open on a secured server while the API still needs a key', async () => {
    const app = await server({ apiKeys: ['s3cret'] });
    for (const url of ['/dashboard/', '/dashboard/app.js', '/dashboard/statechart.json', '/dashboard/config.json']) {
      expect((await app.inject({ method: 'GET', url })).statusCode, url).toBe(200);
    }
    const runs = await app.inject({ method: 'GET', url: '/runs' });
    expect(runs.statusCode).toBe(401);
    expect(runs.json().error.code).toBe('OAO_ERR_UNAUTHORIZED');
    const withKey = await app.inject({ method: 'GET', url: '/runs', headers: { authorization: 'Bearer s3cret' } });
    expect(withKey.statusCode).toBe(200);
  });

  it('says whether the page must ask for a key, and the version', async () => {
    const open = await (await server()).inject({ method: 'GET', url: '/dashboard/config.json' });
    expect(open.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(open.json()).toEqual({ secured: false, version: RUNTIME_VERSION });
    const secured = await (await server({ apiKeys: ['s3cret'] })).inject({ method: 'GET', url: '/dashboard/config.json' });
    expect(secured.json()).toEqual({ secured: true, version: RUNTIME_VERSION });
  });

  it('is left out of the OpenAPI document', async () => {
    const app = await server();
    const document = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
    expect(Object.keys(document.paths).filter((path) => path.startsWith('/dashboard'))).toEqual([]);
  });

  it('is not served with dashboard: false', async () => {
    const app = await server({ dashboard: false });
    for (const url of ['/dashboard', '/dashboard/', '/dashboard/app.js', '/dashboard/statechart.json']) {
      expect((await app.inject({ method: 'GET', url })).statusCode, url).toBe(404);
    }
  });
});

describe('statechart.json', () => {
  it('is the lifecycle machine reduced to its top level', async () => {
    const app = await server();
    const answer = await app.inject({ method: 'GET', url: '/dashboard/statechart.json' });
    expect(answer.statusCode).toBe(200);
    expect(answer.headers['content-type']).toBe('application/json; charset=utf-8');
    const chart = answer.json<Statechart>();
    expect(chart).toEqual(describeStatechart(agentLifecycleMachine));

    expect(chart.id).toBe('agentLifecycle');
    expect(chart.initial).toBe('INIT');
    expect(chart.states.map((state) => state.name)).toEqual(['INIT', 'PLAN', 'EXECUTE', 'REVIEW', 'TERMINATE', 'FAILED']);
    expect(chart.states.filter((state) => state.final).map((state) => state.name)).toEqual(['TERMINATE', 'FAILED']);
    expect(chart.states.find((state) => state.name === 'EXECUTE')).toEqual({
      name: 'EXECUTE',
      type: 'compound',
      final: false,
      substates: ['running', 'backingOff'],
      // The waits for a person, nested in the step that is in flight.
      waits: ['running.AWAITING_APPROVAL', 'running.AWAITING_BUDGET'],
    });
    expect(chart.states.find((state) => state.name === 'REVIEW')?.waits).toEqual(['AWAITING_BUDGET']);
    expect(chart.states.find((state) => state.name === 'INIT')?.waits).toEqual([]);
  });

  it('has the edges of the machine, and only those', () => {
    const chart = describeStatechart(agentLifecycleMachine);
    expect(edge(chart, 'INIT', 'PLAN')?.events).toEqual(['START']);
    // Eventless from PLAN.deciding, and the planner's result from PLAN.planning.
    expect(edge(chart, 'PLAN', 'EXECUTE')?.events).toEqual(['always', 'BUDGET.RAISED', 'AGENT.DONE']);
    expect(edge(chart, 'EXECUTE', 'REVIEW')?.events).toEqual(['AGENT.DONE']);
    // The policy-guarded loop.
    expect(edge(chart, 'REVIEW', 'EXECUTE')?.events).toEqual(expect.arrayContaining(['AGENT.DONE', 'BUDGET.RAISED']));
    expect(edge(chart, 'REVIEW', 'TERMINATE')?.events).toEqual(['always', 'AGENT.DONE']);
    // The root's CANCEL / DEADLINE / VIOLATION apply in every state that is not final.
    for (const state of ['INIT', 'PLAN', 'EXECUTE', 'REVIEW']) {
      expect(edge(chart, state, 'FAILED')?.events, state).toEqual(expect.arrayContaining(['CANCEL', 'DEADLINE', 'VIOLATION']));
    }
    expect(edge(chart, 'EXECUTE', 'FAILED')?.events).toEqual(expect.arrayContaining(['AGENT.DONE', 'AGENT.ERROR']));
    // Final states go nowhere; retries stay inside EXECUTE (no self-edges); no edge is listed twice.
    expect(chart.edges.filter((candidate) => candidate.source === 'TERMINATE' || candidate.source === 'FAILED')).toEqual([]);
    expect(chart.edges.filter((candidate) => candidate.source === candidate.target)).toEqual([]);
    const keys = chart.edges.map((candidate) => `${candidate.source}>${candidate.target}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys.sort()).toEqual(
      [
        'INIT>PLAN',
        'INIT>FAILED',
        'PLAN>EXECUTE',
        'PLAN>FAILED',
        'EXECUTE>REVIEW',
        'EXECUTE>FAILED',
        'REVIEW>TERMINATE',
        'REVIEW>EXECUTE',
        'REVIEW>FAILED',
        // A run resumed from its log (orch.resume) goes from INIT to the state the log left open.
        'INIT>EXECUTE',
        'INIT>REVIEW',
        'INIT>TERMINATE',
      ].sort(),
    );
  });

  it('names delayed, invoke and done transitions by what they are', () => {
    const machine = createMachine({
      id: 'sample',
      initial: 'idle',
      states: {
        idle: { after: { 500: 'loading', backoff: 'waiting' } },
        waiting: { on: { GO: 'loading' } },
        loading: {
          invoke: { src: 'fetcher', onDone: 'done', onError: 'broken' },
        },
        nested: {
          initial: 'inner',
          states: { inner: { type: 'final' } },
          onDone: 'done',
        },
        broken: { on: { RETRY: { target: 'loading' }, NOTHING: {} } },
        done: { type: 'final' },
      },
    });
    const chart = describeStatechart(machine);
    expect(chart.initial).toBe('idle');
    expect(edge(chart, 'idle', 'loading')?.events).toEqual(['after 500 ms']);
    expect(edge(chart, 'idle', 'waiting')?.events).toEqual(['after backoff']);
    expect(edge(chart, 'loading', 'done')?.events).toEqual(['done']);
    expect(edge(chart, 'loading', 'broken')?.events).toEqual(['error']);
    expect(edge(chart, 'nested', 'done')?.events).toEqual(['done']);
    expect(edge(chart, 'broken', 'loading')?.events).toEqual(['RETRY']);
    expect(chart.edges).toHaveLength(7);
    expect(chart.states.find((state) => state.name === 'nested')?.substates).toEqual(['inner']);
  });
});
