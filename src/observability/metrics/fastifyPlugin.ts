import type { Metrics } from './createMetrics.js';

/**
 * What `metricsPlugin` needs of a Fastify instance, written out so that the `/metrics` subpath's
 * types do not depend on Fastify (an optional peer): every `FastifyInstance` is one.
 */
export interface MetricsRouteHost {
  get(path: string, options: { schema: { hide: boolean } }, handler: (request: unknown, reply: MetricsReply) => Promise<unknown>): unknown;
}

/** The part of a Fastify reply `metricsPlugin` uses. */
export interface MetricsReply {
  type(contentType: string): { send(payload: string): unknown };
}

/**
 * A Fastify plugin answering `GET /metrics` with `metrics.metricsText()`.
 *
 * @example
 * ```ts
 * const app = Fastify();
 * await app.register(metricsPlugin(metrics));
 * (await app.inject({ method: 'GET', url: '/metrics' })).statusCode; // 200
 * ```
 */
export function metricsPlugin(metrics: Pick<Metrics, 'metricsText' | 'contentType'>): (app: MetricsRouteHost, opts: unknown) => Promise<void> {
  return (app) => {
    app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
      const text = await metrics.metricsText();
      return reply.type(metrics.contentType).send(text);
    });
    return Promise.resolve();
  };
}
