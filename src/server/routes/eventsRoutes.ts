import { z } from 'zod';
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import type { RunService } from '../RunService.js';
import { eventsHeadersSchema, eventsQuerySchema, runIdParamsSchema } from '../schemas.js';
import { streamRunEvents, type SseStream } from '../sse.js';
import { errorResponses } from './errorResponses.js';

/**
 * GET /runs/:id/events as Server-Sent Events: the events recorded so far, then live ones; the
 * stream ends after EXECUTION_COMPLETE (or, for an interrupted run this server does not take up,
 * after its last stored event).
 * Streams still open when the server closes are ended.
 */
export const eventsRoutes: FastifyPluginCallbackZod<{ service: RunService }> = (app, { service }, done) => {
  const streams = new Set<SseStream>();
  app.addHook('preClose', (closing) => {
    for (const stream of streams) stream.end();
    closing();
  });

  app.get(
    '/runs/:id/events',
    {
      schema: {
        operationId: 'streamRunEvents',
        tags: ['runs'],
        summary: 'Follow a run\'s events (Server-Sent Events)',
        description:
          'Each message is `id: <seq>`, `event: <type>`, `data: <the event as JSON>`. Replays the events already recorded, then streams ' +
          'live ones, and closes after EXECUTION_COMPLETE. Send `Last-Event-ID: <seq>` (or `?lastEventId=`) to resume after that event. ' +
          'Events come from the run store, so a stream resumes across a restart of the server. A run another process runs is followed ' +
          'in the store. An interrupted run (its process stopped) that this server takes up (resumeInterrupted) is followed until it ends; ' +
          'the stream of any other ends after its last stored event, and asking again past that event answers 204: nothing more will come.',
        params: runIdParamsSchema,
        querystring: eventsQuerySchema,
        headers: eventsHeadersSchema,
        response: {
          200: { description: 'An event stream', content: { 'text/event-stream': { schema: z.string() } } },
          ...errorResponses(400, 401, 404, 503),
        },
      },
    },
    async (request, reply) => {
      const resumeFrom = request.headers['last-event-id'] ?? request.query.lastEventId;
      const afterSeq = resumeFrom === undefined ? -1 : Number(resumeFrom);
      const source = await service.eventSource(request.params.id, afterSeq);
      reply.hijack();
      if ('interrupted' in source) {
        // 204 is how a server tells an EventSource to stop reconnecting: nothing more will come.
        reply.raw.writeHead(204, { 'cache-control': 'no-cache, no-transform' });
        reply.raw.end();
        return reply;
      }
      const stream = streamRunEvents(reply.raw, source.events$, afterSeq, (ended) => streams.delete(ended));
      if (!stream.ended) streams.add(stream);
      return reply;
    },
  );
  done();
};
