import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { agentLifecycleMachine } from '../../machines/agentLifecycleMachine.js';
import { RUNTIME_VERSION } from '../../version.js';
import { describeStatechart } from './describeStatechart.js';
import { DASHBOARD_DIR, etagOf, loadDashboardAssets } from './loadDashboardAssets.js';

export interface DashboardPluginOptions {
  /** True when the API needs an API key: the page then asks for one. */
  readonly secured: boolean;
  /** Where the API is mounted ('' at the root); the dashboard is at `${basePath}/dashboard/`. @default '' */
  readonly basePath?: string;
}

/**
 * Where the dashboard lives, below the API's mount point; its page is at `${DASHBOARD_PREFIX}/`.
 * The page finds the API one level up from its own URL, so it works under any prefix.
 */
export const DASHBOARD_PREFIX = '/dashboard';

/**
 * The page runs only the server's own scripts and styles, talks only to the server, and cannot be
 * framed. Agent outputs are shown in it, so no inline script may ever run, whatever they contain.
 */
export const DASHBOARD_CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS = {
  'content-security-policy': DASHBOARD_CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
} as const;

/** A cacheable answer: the bytes, their type and a validator. */
interface Cached {
  readonly body: Buffer | string;
  readonly contentType: string;
  readonly etag: string;
}

/**
 * Serves the live dashboard: its static page at `/dashboard/` (HTML, CSS and plain ES modules,
 * read once from the package's `dashboard/` folder), the lifecycle statechart derived from
 * `agentLifecycleMachine`, and the little the page must know before it can call the API. All
 * run data comes from the API itself, with its API keys; nothing here needs one, and nothing here
 * reveals a run.
 *
 * Registered by `createServer` unless `dashboard: false`.
 */
export const dashboardPlugin: FastifyPluginAsync<DashboardPluginOptions> = async (app, { secured, basePath = '' }) => {
  const assets = await loadDashboardAssets(DASHBOARD_DIR);
  const statechart = json(describeStatechart(agentLifecycleMachine));
  const config = json({ secured, version: RUNTIME_VERSION });

  app.addHook('onRequest', (_request, reply, done) => {
    reply.headers(SECURITY_HEADERS);
    done();
  });

  const hidden = { schema: { hide: true } };
  // Without the slash the page's relative asset URLs would resolve against `/`.
  app.get(DASHBOARD_PREFIX, hidden, (_request, reply) => reply.redirect(`${basePath}${DASHBOARD_PREFIX}/`, 301));

  const index = assets.get('index.html');
  if (index !== undefined) app.get(`${DASHBOARD_PREFIX}/`, hidden, (request, reply) => sendCached(request, reply, index));
  for (const asset of assets.values()) {
    app.get(`${DASHBOARD_PREFIX}/${asset.name}`, hidden, (request, reply) => sendCached(request, reply, asset));
  }
  app.get(`${DASHBOARD_PREFIX}/statechart.json`, hidden, (request, reply) => sendCached(request, reply, statechart));
  app.get(`${DASHBOARD_PREFIX}/config.json`, hidden, (request, reply) => sendCached(request, reply, config));
};

function json(value: unknown): Cached {
  const body = JSON.stringify(value);
  return { body, contentType: 'application/json; charset=utf-8', etag: etagOf(body) };
}

/**
 * The file names carry no version, so browsers keep a copy but check it on every load
 * (`no-cache`): unchanged files cost a 304, and an upgraded server is picked up at once.
 */
function sendCached(request: FastifyRequest, reply: FastifyReply, { body, contentType, etag }: Cached): FastifyReply {
  reply.header('cache-control', 'no-cache').header('etag', etag);
  if (matchesEtag(request.headers['if-none-match'], etag)) return reply.code(304).send();
  return reply.type(contentType).send(body);
}

function matchesEtag(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((candidate) => {
    const tag = candidate.trim();
    return tag === '*' || tag === etag || tag === `W/${etag}`;
  });
}
