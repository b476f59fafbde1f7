import type { FastifyInstance } from 'fastify';
import type { Metrics } from './createMetrics.js';

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
export function metricsPlugin(metrics: Pick<Metrics, 'metricsText' | 'contentType'>): (app: FastifyInstance, opts: unknown) => Promise<void> {
  return (app) => {
    app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
      const text = await metrics.metricsText();
      return reply.type(metrics.contentType).send(text);
    });
    return Promise.resolve();
  };
}
