import type { FastifyPluginAsync } from 'fastify';
import { validatorCompiler } from 'fastify-type-provider-zod';
import { tenantWindowsOf } from '../queue/tenantWindow.js';
import { TenantBudgets } from '../tenants/TenantBudgets.js';
import { apiPlugin } from './apiPlugin.js';
import { checkedSerializerCompiler } from './checkedSerializerCompiler.js';
import { dashboardPlugin } from './dashboard/dashboardPlugin.js';
import { installErrorHandler, installNotFoundHandler } from './httpErrors.js';
import { acceptJsonBodiesOnly } from './jsonBody.js';
import { DOCS_PREFIX, registerDocs } from './registerDocs.js';
import { healthRoutes } from './routes/healthRoutes.js';
import { RunService } from './RunService.js';
import { WorkflowService } from './WorkflowService.js';
import { MAX_EXECUTION_ID_LENGTH } from './schemas.js';
import { resolveServerOptions, type OaoPluginOptions, type ResolvedServerOptions } from './serverOptions.js';

export type { OaoPluginOptions };

/**
 * The whole OAO HTTP API as one Fastify plugin, for your own Fastify app: the routes, the event
 * streams, the OpenAPI document and Swagger UI at `/docs`, the dashboard at `/dashboard/`, and
 * `/metrics` when `metrics` is given, under whatever prefix you register it with. Every URL it
 * answers with or serves (the `Location` and links of a started run, the document's `servers`,
 * the dashboard's API calls) includes that prefix.
 *
 * It is encapsulated (not wrapped in fastify-plugin): its error handler, JSON-only body parser, zod
 * compilers and API-key check apply to its own routes only, and your routes, hooks and error
 * handler stay as they are. Your app's hooks (CORS, a rate limiter, logging) run for its routes
 * too, and an error one of them raises with a 4xx status is answered by your error handler, not
 * reshaped into the API's error body. Under a prefix it also answers unknown URLs below the prefix
 * with its 404 body; without one, your app's not-found handler keeps every URL.
 *
 * Options are `createServer`'s, validated when the plugin loads (an `OaoError` naming the option),
 * except `logger`: the plugin logs with your app's logger. Closing your app cancels the runs
 * still live and ends open event streams. Two root-level settings are yours to choose: run ids
 * longer than your router's `maxParamLength` (100 by default; `createServer` uses 256) are refused
 * when a request gives one, and `oaoClientErrorHandler` answers malformed HTTP in the API's shape.
 *
 * @example
 * ```ts
 * import Fastify from 'fastify';
 * import cors from '@fastify/cors';
 * import { oaoPlugin } from 'open-agent-orchestrator/server';
 *
 * const app = Fastify({ routerOptions: { maxParamLength: 256 } });
 * await app.register(cors, { origin: 'https://console.example.com' });
 * app.get('/hello', () => ({ hello: 'world' }));
 * await app.register(oaoPlugin, { prefix: '/oao', agents: { echo: (task: string) => `echo: ${task}` }, apiKeys: ['s3cret'] });
 * await app.listen({ port: 3000 }); // POST /oao/run, GET /oao/docs, /oao/dashboard/, and your GET /hello
 * ```
 */
export const oaoPlugin: FastifyPluginAsync<OaoPluginOptions> = async (app, options) => {
  const resolved = resolveServerOptions(options);
  // The prefix of this context: the one it was registered with, after any of the app's own
  // (Fastify keeps a trailing slash of `prefix: '/oao/'`; the URLs built on it must not).
  const basePath = app.prefix.replace(/\/+$/, '');
  await mountApi(app, resolved, {
    basePath,
    // Registered with a prefix, this context has a not-found handler of its own to set; without
    // one, setting it would take over the whole app's (or clash with the app's own).
    ownNotFound: hasOwnPrefix(options),
  });
};

interface MountOptions {
  readonly basePath: string;
  readonly ownNotFound: boolean;
}

/** Builds the API in `app`'s context. */
async function mountApi(app: Parameters<FastifyPluginAsync>[0], resolved: ResolvedServerOptions, mount: MountOptions): Promise<void> {
  const { basePath } = mount;
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(checkedSerializerCompiler);
  acceptJsonBodiesOnly(app, resolved.limits.bodyLimit);
  // Errors of the app's own hooks go up to the app's error handler (createServer's root answers them).
  installErrorHandler(app, { bodyLimit: resolved.limits.bodyLimit, delegateForeignErrors: true });
  if (mount.ownNotFound) installNotFoundHandler(app, { docsUrl: `${basePath}${DOCS_PREFIX}` });

  const service = new RunService({
    agents: resolved.agents,
    policy: resolved.policy,
    tools: resolved.tools,
    maxConcurrency: resolved.maxConcurrency,
    maxTaskLength: resolved.limits.maxTaskLength,
    maxConcurrentRuns: resolved.limits.maxConcurrentRuns,
    maxExecutionIdLength: Math.min(MAX_EXECUTION_ID_LENGTH, routerMaxParamLength(app)),
    bodyLimit: resolved.limits.bodyLimit,
    store: resolved.store,
    runLeaseTtlMs: resolved.runLeaseTtlMs,
    resumeInterrupted: resolved.resumeInterrupted,
    queue: resolved.queue,
    clock: resolved.clock,
    metrics: resolved.metrics,
    inspect: resolved.inspect,
    ...(resolved.plugins === undefined ? {} : { plugins: resolved.plugins }),
    logError: (error, message) => app.log.error({ err: error }, message),
    logInfo: (message) => app.log.info(message),
  });
  // Interrupted runs are taken up once the app is ready: an app that is only built takes none.
  app.addHook('onReady', (done) => {
    service.startSweeping();
    done();
  });
  app.addHook('preClose', () => service.close());
  // Every tenant's spend in its current window, read from the store before the first request.
  const tenants =
    resolved.tenants.size === 0
      ? undefined
      : new TenantBudgets(resolved.tenants, resolved.store, () => resolved.clock?.now() ?? Date.now(), (error) =>
          app.log.error({ err: error }, "a tenant's spend could not be written to the run store"),
        );
  if (tenants !== undefined) {
    app.addHook('onReady', () => tenants.load());
    service.useTenantBudgets(tenants.accountFor);
    // Runs on a queue's workers: their tenants' windows are admitted and charged in its Redis.
    if (resolved.queue !== undefined) tenants.useQueue(tenantWindowsOf(resolved.queue));
  }

  const secured = resolved.apiKeys.length > 0;
  await registerDocs(app, { secured, basePath });
  await app.register(healthRoutes);
  const workflows =
    resolved.workflows.size === 0
      ? undefined
      : new WorkflowService({
          workflows: resolved.workflows,
          policy: resolved.policy,
          maxConcurrency: resolved.maxConcurrency,
          clock: resolved.clock,
          store: resolved.store,
          inspect: resolved.inspect,
        });
  await app.register(apiPlugin, {
    service,
    basePath,
    apiKeys: resolved.apiKeys,
    approverKeys: resolved.approverKeys,
    workflows,
    tenants,
    adminKeys: resolved.adminKeys,
  });
  if (resolved.dashboard) await app.register(dashboardPlugin, { secured, basePath });
}

function hasOwnPrefix(options: object): boolean {
  const prefix = (options as { prefix?: unknown }).prefix;
  return typeof prefix === 'string' && prefix.replace(/\/+$/, '').length > 0;
}

/** The longest path parameter the app's router matches (Fastify's `maxParamLength`). */
function routerMaxParamLength(app: Parameters<FastifyPluginAsync>[0]): number {
  const config = app.initialConfig as { routerOptions?: { maxParamLength?: unknown }; maxParamLength?: unknown };
  const length = config.routerOptions?.maxParamLength ?? config.maxParamLength;
  return typeof length === 'number' && length > 0 ? length : 100;
}
