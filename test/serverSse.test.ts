import { request as httpRequest, type IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { oaoEventSchema, type AgentContext, type OaoEvent } from '../src/index.js';
import { startServer, type StartedServer } from '../src/server/index.js';
import { createGates } from './helpers.js';

/**
 * GET /runs/:id/events over a real socket: a listening server on port 0, read with fetch() (and
 * node:http where the test needs to own the connection).
 */

const gates = createGates();
const gate = gates.gate;

const agents = {
  echo: (task: string) => ({ output: `echo: ${task}`, usage: { input: 2, output: 3 } }),
  gated: {
    name: 'gated',
    async invoke(task: string, ctx: AgentContext) {
      ctx.usage({ input: 1, output: 1 });
      await new Promise<void>((resolve, reject) => {
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason));
        void gate(task).promise.then(resolve);
      });
      ctx.usage({ input: 1, output: 1 });
      return { output: `done: ${task}` };
    },
  },
};

const started: StartedServer[] = [];

async function serve(apiKeys: string[] = []): Promise<StartedServer> {
  const server = await startServer({ agents, apiKeys, port: 0 });
  started.push(server);
  return server;
}

afterEach(async () => {
  gates.openAll();
  gates.clear();
  await Promise.all(started.splice(0).map((server) => server.close()));
});

interface SseMessage {
  readonly id: string | undefined;
  readonly event: string | undefined;
  readonly data: OaoEvent;
}

/** Reads an SSE response message by message; `next()` is null once the server ends the stream. */
function sseReader(body: ReadableStream<Uint8Array>) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  async function next(): Promise<SseMessage | null> {
    for (;;) {
      const end = buffer.indexOf('\n\n');
      if (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = new Map<string, string>();
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          fields.set(line.slice(0, colon), line.slice(colon + 1).trimStart());
        }
        const data = fields.get('data');
        if (data === undefined) continue; // retry: and comments
        return { id: fields.get('id'), event: fields.get('event'), data: oaoEventSchema.parse(JSON.parse(data)) };
      }
      const { value, done } = await reader.read();
      if (done) return null;
      buffer += decoder.decode(value, { stream: true });
    }
  }
  async function until(type: string): Promise<SseMessage[]> {
    const messages: SseMessage[] = [];
    for (;;) {
      const message = await next();
      if (message === null) throw new Error(`the stream ended before ${type}`);
      messages.push(message);
      if (message.event === type) return messages;
    }
  }
  async function rest(): Promise<SseMessage[]> {
    const messages: SseMessage[] = [];
    for (let message = await next(); message !== null; message = await next()) messages.push(message);
    return messages;
  }
  return { next, until, rest };
}

async function openEvents(server: StartedServer, id: string, headers: Record<string, string> = {}, query = '') {
  const response = await fetch(`${server.url}/runs/${id}/events${query}`, { headers });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
  expect(response.headers.get('cache-control')).toContain('no-cache');
  return sseReader(response.body as ReadableStream<Uint8Array>);
}

/**
 * Opens the stream over a connection of its own (node:http, no pooling), so that the test decides
 * when it closes: fetch() keeps sockets of its own around after an abort.
 */
async function openRawEvents(server: StartedServer, id: string, headers: Record<string, string> = {}) {
  const { port } = new URL(server.url);
  const response = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: `/runs/${id}/events`, headers, agent: false }, resolve);
    req.on('error', reject);
    req.end();
  });
  expect(response.statusCode).toBe(200);
  return { ...sseReader(Readable.toWeb(response) as ReadableStream<Uint8Array>), destroy: () => response.destroy() };
}

function connections(server: StartedServer): Promise<number> {
  return new Promise<number>((resolve, reject) => server.app.server.getConnections((error, count) => (error ? reject(error) : resolve(count))));
}

async function startGated(server: StartedServer, task: string): Promise<string> {
  const response = await server.app.inject({ method: 'POST', url: '/runs', payload: { agent: 'gated', task } });
  const { executionId } = response.json<{ executionId: string }>();
  await waitFor(async () => (await runState(server, executionId)).state === 'EXECUTE', 'the step to start');
  return executionId;
}

async function runState(server: StartedServer, id: string): Promise<{ state: string; status: string; events: number }> {
  return (await server.app.inject({ method: 'GET', url: `/runs/${id}` })).json();
}

async function waitFor(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function expectWellFormed(messages: readonly SseMessage[], firstSeq = 0): void {
  messages.forEach((message, index) => {
    expect(message.data.seq).toBe(firstSeq + index);
    expect(message.id).toBe(String(message.data.seq));
    expect(message.event).toBe(message.data.type);
  });
}

describe('GET /runs/:id/events (Server-Sent Events)', () => {
  it('replays the events already recorded, streams live ones, and closes after EXECUTION_COMPLETE', async () => {
    const server = await serve();
    const id = await startGated(server, 'live');
    const recorded = (await runState(server, id)).events;
    const stream = await openEvents(server, id);

    const replayed: SseMessage[] = [];
    for (let i = 0; i < recorded; i++) replayed.push((await stream.next()) as SseMessage);
    expect(replayed[0]?.event).toBe('EXECUTION_START');
    expect(replayed.map((m) => m.event)).toContain('STEP_START');
    expect(replayed.map((m) => m.event)).not.toContain('STEP_COMPLETE');

    gate('live').resolve();
    const live = await stream.rest();
    expect(live.map((m) => m.event)).toContain('STEP_COMPLETE');
    expect(live.at(-1)?.event).toBe('EXECUTION_COMPLETE');
    const complete = live.at(-1)?.data;
    expect(complete?.type === 'EXECUTION_COMPLETE' && complete.payload.report.status).toBe('SUCCESS');
    expectWellFormed([...replayed, ...live]);
    expect(replayed.length + live.length).toBe((await runState(server, id)).events);
  });

  it('replays every event of a finished run, then closes', async () => {
    const server = await serve();
    const report = (await server.app.inject({ method: 'POST', url: '/run', payload: { agent: 'echo', task: 'hi', executionId: 'done-run' } })).json();
    expect(report.status).toBe('SUCCESS');
    const stream = await openEvents(server, 'done-run');
    const messages = await stream.rest();
    expectWellFormed(messages);
    expect(messages[0]?.event).toBe('EXECUTION_START');
    expect(messages.at(-1)?.event).toBe('EXECUTION_COMPLETE');
    expect(messages).toHaveLength((await runState(server, 'done-run')).events);
  });

  it('honours Last-Event-ID (header or query) to resume after an event', async () => {
    const server = await serve();
    await server.app.inject({ method: 'POST', url: '/run', payload: { agent: 'echo', task: 'hi', executionId: 'resume-me' } });
    const total = (await runState(server, 'resume-me')).events;

    const fromHeader = await (await openEvents(server, 'resume-me', { 'last-event-id': '5' })).rest();
    expectWellFormed(fromHeader, 6);
    expect(fromHeader).toHaveLength(total - 6);

    const fromQuery = await (await openEvents(server, 'resume-me', {}, '?lastEventId=3')).rest();
    expectWellFormed(fromQuery, 4);

    const headerWins = await (await openEvents(server, 'resume-me', { 'last-event-id': '10' }, '?lastEventId=3')).rest();
    expectWellFormed(headerWins, 11);

    expect(await (await openEvents(server, 'resume-me', { 'last-event-id': String(total + 5) })).rest()).toEqual([]);
  });

  it('resumes a live run without losing or repeating an event', async () => {
    const server = await serve();
    const id = await startGated(server, 'resume-live');
    const first = await openRawEvents(server, id);
    const seen = [(await first.next()) as SseMessage, (await first.next()) as SseMessage, (await first.next()) as SseMessage];
    first.destroy();
    await waitFor(async () => (await connections(server)) === 0, 'the first stream to close');

    const second = await openEvents(server, id, { 'last-event-id': seen.at(-1)?.id ?? '' });
    const next = (await second.next()) as SseMessage;
    expect(next.data.seq).toBe(3);
    gate('resume-live').resolve();
    const rest = await second.rest();
    expectWellFormed([...seen, next, ...rest]);
    expect(rest.at(-1)?.event).toBe('EXECUTION_COMPLETE');
  });

  it('answers bad requests in the error shape, before any stream starts', async () => {
    const server = await serve();
    const unknown = await fetch(`${server.url}/runs/nope/events`);
    expect(unknown.status).toBe(404);
    expect((await unknown.json() as { error: { code: string } }).error.code).toBe('OAO_ERR_RUN_NOT_FOUND');

    await server.app.inject({ method: 'POST', url: '/run', payload: { agent: 'echo', task: 'x', executionId: 'bad-id-run' } });
    const badHeader = await fetch(`${server.url}/runs/bad-id-run/events`, { headers: { 'last-event-id': 'abc' } });
    expect(badHeader.status).toBe(400);
    expect((await badHeader.json() as { error: unknown }).error).toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'headers.last-event-id' } });
    const badQuery = await fetch(`${server.url}/runs/bad-id-run/events?lastEventId=-1`);
    expect(badQuery.status).toBe(400);
  });

  it('needs the API key when the server has keys', async () => {
    const server = await serve(['sse-key']);
    await server.app.inject({ method: 'POST', url: '/run', payload: { agent: 'echo', task: 'x', executionId: 'keyed' }, headers: { authorization: 'Bearer sse-key' } });
    const refused = await fetch(`${server.url}/runs/keyed/events`);
    expect(refused.status).toBe(401);
    expect((await refused.json() as { error: { code: string } }).error.code).toBe('OAO_ERR_UNAUTHORIZED');
    const stream = await openEvents(server, 'keyed', { authorization: 'Bearer sse-key' });
    expect((await stream.rest()).at(-1)?.event).toBe('EXECUTION_COMPLETE');
  });

  it('lets go cleanly when the client disconnects; the run goes on', async () => {
    const server = await serve();
    const id = await startGated(server, 'walk-away');
    const stream = await openRawEvents(server, id);
    expect((await stream.next())?.event).toBe('EXECUTION_START');
    expect(await connections(server)).toBe(1);

    stream.destroy();
    await waitFor(async () => (await connections(server)) === 0, 'the server to drop the connection');

    gate('walk-away').resolve();
    await waitFor(async () => (await runState(server, id)).status === 'SUCCESS', 'the run to finish');
  });

  it('streams the runs of a batch one by one', async () => {
    const server = await serve();
    const batch = server.app.inject({ method: 'POST', url: '/run-multi', payload: { agents: { a: 'gated', b: 'gated' }, task: 'batch' } });
    let ids: string[] = [];
    await waitFor(async () => {
      const page = (await server.app.inject({ method: 'GET', url: '/runs?status=running' })).json<{ runs: { executionId: string }[] }>();
      ids = page.runs.map((run) => run.executionId);
      return ids.length === 2 && (await runState(server, ids[0] as string)).state === 'EXECUTE';
    }, 'the batch to run');
    const stream = await openEvents(server, ids[0] as string);
    await stream.until('STEP_START');
    gate('batch').resolve();
    const rest = await stream.rest();
    expect(rest.at(-1)?.event).toBe('EXECUTION_COMPLETE');
    expect(rest.at(-1)?.data.executionId).toBe(ids[0]);
    expect((await batch).statusCode).toBe(200);

    // Once filed, the child's events are still there to replay.
    const replay = await (await openEvents(server, ids[1] as string)).rest();
    expectWellFormed(replay);
    expect(replay.at(-1)?.event).toBe('EXECUTION_COMPLETE');
  });

  it('closing the server cancels live runs and ends their streams', async () => {
    const server = await startServer({ agents, apiKeys: [], port: 0 });
    const id = await startGated(server, 'shutdown');
    const stream = await openEvents(server, id);
    await stream.until('STEP_START');
    await server.close();
    const rest = await stream.rest();
    const last = rest.at(-1)?.data;
    expect(last?.type).toBe('EXECUTION_COMPLETE');
    expect(last?.type === 'EXECUTION_COMPLETE' && last.payload.report.termination).toEqual({ reason: 'cancelled', message: 'the server is shutting down' });
  });
});
