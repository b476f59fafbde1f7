import Fastify, { type FastifyInstance } from 'fastify';
import { oaoCheckExpectation, oaoClientErrorHandler, oaoFrameworkErrors } from './clientErrorHandler.js';
import { installErrorHandler, installNotFoundHandler } from './httpErrors.js';
import { oaoPlugin } from './oaoPlugin.js';
import { DOCS_PREFIX } from './registerDocs.js';
import { resolveServerOptions, type ServerOptions } from './serverOptions.js';

/**
 * Builds the HTTP service on a Fastify instance of its own, ready but not listening: call
 * `listen()` on it, or `inject()` requests in tests. It is {@link oaoPlugin} at the root, plus
 * what only the root can set: the logger, a router that matches run ids of up to 128 characters,
 * the API's error body for malformed HTTP (`oaoClientErrorHandler`) and for unknown URLs.
 *
 * Options are validated at once (a typed error naming the option), and the instance is booted
 * (`ready()`) before it is returned, so a broken installation fails here and not at the first
 * request. A booted instance takes no more routes or plugins: to add your own (CORS, a rate
 * limiter, routes of your app), register `oaoPlugin` in your own Fastify app instead. Closing the
 * instance cancels the runs still live and ends open event streams.
 *
 * @example
 * ```ts
 * import { createServer } from 'open-agent-orchestrator/server';
 * const app = await createServer({ agents: { echo: (task: string) => `echo: ${task}` }, policy: { maxSteps: 3 } });
 * const answer = await app.inject({ method: 'POST', url: '/run', payload: { agent: 'echo', task: 'hi' } });
 * answer.json().finalOutput; // 'echo: hi'
 * await app.close();
 * ```
 */
export async function createServer(options: ServerOptions): Promise<FastifyInstance> {
  const resolved = resolveServerOptions(options);
  const app = Fastify({
    logger: resolved.logger,
    // Run ids are up to 128 characters; the default (100) would answer a long one 404 unseen.
    routerOptions: { maxParamLength: 256 },
    clientErrorHandler: oaoClientErrorHandler,
    frameworkErrors: oaoFrameworkErrors,
    // A request without Host is answered by the routes (like any other) instead of an empty 400.
    http: { requireHostHeader: false },
  });
  app.server.on('checkExpectation', oaoCheckExpectation);
  // The root's handlers answer what no route of the plugin does: unknown URLs, and errors the
  // plugin hands up (at the root there is no app of the user's to hand them to).
  installErrorHandler(app, { bodyLimit: resolved.limits.bodyLimit, delegateForeignErrors: false });
  installNotFoundHandler(app, { docsUrl: DOCS_PREFIX });
  await app.register(oaoPlugin, options);
  await app.ready();
  return app;
}
