import Fastify, { type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { apiPlugin } from './apiPlugin.js';
import { dashboardPlugin } from './dashboard/dashboardPlugin.js';
import { installErrorHandling } from './httpErrors.js';
import { registerDocs } from './registerDocs.js';
import { healthRoutes } from './routes/healthRoutes.js';
import { RunService } from './RunService.js';
import { resolveServerOptions, type ServerOptions } from './serverOptions.js';

/**
 * Builds the HTTP service, ready but not listening: call `listen()` on it, or `inject()` requests
 * in tests. Options are validated at once (a typed error naming the option). Closing the instance
 * cancels the runs still live and ends open event streams.
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
    bodyLimit: resolved.limits.bodyLimit,
    // Run ids are up to 128 characters; the default (100) would answer a long one 404 unseen.
    routerOptions: { maxParamLength: 256 },
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // JSON only: a text/plain body is refused (415 becomes OAO_ERR_INVALID_JSON), which also keeps
  // browsers' cross-site "simple" requests from starting runs on a server without API keys.
  app.removeContentTypeParser('text/plain');
  installErrorHandling(app, resolved.limits.bodyLimit);

  const service = new RunService({
    agents: resolved.agents,
    policy: resolved.policy,
    tools: resolved.tools,
    maxConcurrency: resolved.maxConcurrency,
    maxTaskLength: resolved.limits.maxTaskLength,
    maxConcurrentRuns: resolved.limits.maxConcurrentRuns,
    store: resolved.store,
    clock: resolved.clock,
    metrics: resolved.metrics,
    inspect: resolved.inspect,
    logError: (error, message) => app.log.error({ err: error }, message),
  });
  app.addHook('preClose', () => service.close());

  await registerDocs(app, { secured: resolved.apiKeys.length > 0 });
  await app.register(healthRoutes);
  await app.register(apiPlugin, { service, apiKeys: resolved.apiKeys });
  if (resolved.dashboard) await app.register(dashboardPlugin, { secured: resolved.apiKeys.length > 0 });
  await app.ready();
  return app;
}
