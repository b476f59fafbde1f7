import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import type { InspectionEvent } from 'xstate';
import { MultiAgentOrchestrator, OaoError, Orchestrator } from '../src/index.js';
import { createRunInspector, inspectRuns, type RunInspector } from '../src/observability/inspect/index.js';

interface Message {
  readonly type: string;
  readonly sessionId: string;
  readonly parentId?: string;
  readonly rootId?: string;
  readonly name?: string;
  readonly definition?: string;
  readonly event?: { readonly type: string };
  readonly snapshot?: { readonly value?: unknown; readonly status?: string; readonly context?: Record<string, unknown> };
}

/** A local WebSocket endpoint standing in for the inspector: it records every message it receives. */
async function startEndpoint(port = 0): Promise<{ url: string; port: number; messages: Message[]; sockets: Set<WebSocket>; close(): Promise<void> }> {
  const server = new WebSocketServer({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const messages: Message[] = [];
  const sockets = new Set<WebSocket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('message', (data: Buffer) => messages.push(JSON.parse(data.toString('utf8')) as Message));
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `ws://127.0.0.1:${bound}`,
    port: bound,
    messages,
    sockets,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.terminate();
        server.close(() => resolve());
      }),
  };
}

async function waitFor(check: () => boolean, what: string, ms = 5_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function connected(): Promise<{ endpoint: Awaited<ReturnType<typeof startEndpoint>>; inspector: RunInspector }> {
  const endpoint = await startEndpoint();
  cleanups.push(() => endpoint.close());
  const inspector = createRunInspector({ url: endpoint.url, onError: () => undefined });
  cleanups.push(() => inspector.stop());
  await inspector.ready();
  return { endpoint, inspector };
}

const echo = { name: 'echo', invoke: (task: string) => ({ output: `echo: ${task}`, usage: { input: 3, output: 2 } }) };

describe('createRunInspector: streaming runs to an @statelyai/inspect WebSocket inspector', () => {
  it('sends the actor, event and snapshot messages of a run, ending in its final state', async () => {
    const { endpoint, inspector } = await connected();
    const orch = new Orchestrator({ inspect: inspector.inspect });
    const handle = orch.start({ agent: echo, task: 'hi' });
    await handle.report;
    const runSession = handle.actor.sessionId;
    await waitFor(() => endpoint.messages.some((m) => m.type === '@xstate.snapshot' && m.sessionId === runSession && m.snapshot?.status === 'done'), 'the final snapshot');

    const ofRun = endpoint.messages.filter((m) => m.sessionId === runSession);
    const actor = ofRun.find((m) => m.type === '@xstate.actor');
    expect(actor).toMatchObject({ name: handle.executionId });
    // The definition is the lifecycle statechart, so the inspector can draw it.
    expect(JSON.parse(actor?.definition ?? '{}')).toMatchObject({ id: 'agentLifecycle', initial: 'INIT' });
    expect(ofRun.filter((m) => m.type === '@xstate.event').map((m) => m.event?.type)).toEqual(expect.arrayContaining(['xstate.init', 'START', 'AGENT.DONE']));
    const snapshots = ofRun.filter((m) => m.type === '@xstate.snapshot');
    expect(snapshots[0]?.snapshot?.value).toBe('INIT');
    expect(snapshots.at(-1)?.snapshot).toMatchObject({ value: 'TERMINATE', status: 'done' });
    // Every message follows the Stately protocol: a version and a creation time.
    for (const message of endpoint.messages) expect(message).toMatchObject({ _version: expect.any(String), createdAt: expect.any(String) });
  });

  it('shows the run ledger as a summary: state, counters and limits, never the agent, its tools or its events', async () => {
    const { endpoint, inspector } = await connected();
    const secretTool = Object.assign(() => 'ok', { apiKey: 'sk-do-not-send' });
    const orch = new Orchestrator({ inspect: inspector.inspect, policy: { maxSteps: 4 } });
    const handle = orch.start({
      agent: { name: 'tooling', invoke: async (_task: string, ctx) => ({ output: await ctx.callTool('lookup', { q: 1 }) }) },
      task: 'look it up',
      tools: { lookup: secretTool },
    });
    await handle.report;
    const runSession = handle.actor.sessionId;
    // Other messages (an actor's, an event's) carry a snapshot too: wait for the snapshot message itself.
    await waitFor(() => endpoint.messages.some((m) => m.type === '@xstate.snapshot' && m.sessionId === runSession && m.snapshot?.status === 'done'), 'the final snapshot');
    const final = endpoint.messages.filter((m) => m.sessionId === runSession && m.type === '@xstate.snapshot').at(-1);
    expect(final?.snapshot?.context?.session).toEqual({
      executionId: handle.executionId,
      agentName: 'tooling',
      state: 'TERMINATE',
      steps: 1,
      tokens: { input: 0, output: 0, total: 0 },
      toolCalls: 1,
      limits: expect.objectContaining({ maxSteps: 4 }),
      termination: null,
    });
    const everything = JSON.stringify(endpoint.messages);
    expect(everything).not.toContain('sk-do-not-send');
    expect(everything).not.toContain('EXECUTION_START');
  });

  it('sends the supervisor with its children: run actors are parented under the supervisor\'s pool', async () => {
    const { endpoint, inspector } = await connected();
    const multi = new MultiAgentOrchestrator({ inspect: inspector.inspect, maxConcurrency: 2 });
    const handle = multi.submit([
      { name: 'a', agent: echo, task: 'one' },
      { name: 'b', agent: echo, task: 'two' },
    ]);
    const reports = await handle.reports;
    const ids = new Set(reports.map((report) => report.executionId));
    await waitFor(() => endpoint.messages.filter((m) => m.type === '@xstate.snapshot' && m.snapshot?.status === 'done').length >= 3, 'every actor to finish');

    const actors = endpoint.messages.filter((m) => m.type === '@xstate.actor');
    const supervisor = actors.find((m) => JSON.parse(m.definition ?? '{}').id === 'supervisor');
    expect(supervisor).toBeDefined();
    const runs = actors.filter((m) => ids.has(m.name ?? ''));
    expect(runs).toHaveLength(2);
    for (const run of runs) {
      const pool = actors.find((m) => m.sessionId === run.parentId);
      expect(pool?.parentId).toBe(supervisor?.sessionId);
      expect(run.rootId).toBe(supervisor?.sessionId);
    }
    const batchSnapshot = endpoint.messages.find((m) => m.sessionId === supervisor?.sessionId && m.snapshot?.context?.batch !== undefined);
    expect(batchSnapshot?.snapshot?.context?.batch).toMatchObject({ batchId: handle.batchId, total: 2, maxConcurrency: 2 });
  });

  it('holds what happens before the socket opens and sends it, in order, once it does', async () => {
    const endpoint = await startEndpoint();
    const port = endpoint.port;
    await endpoint.close();
    const errors: Error[] = [];
    const inspector = createRunInspector({ url: `ws://127.0.0.1:${port}`, onError: (error) => errors.push(error) });
    cleanups.push(() => inspector.stop());
    const report = await new Orchestrator({ inspect: inspector.inspect }).run({ agent: echo, task: 'early' });
    await waitFor(() => errors.length > 0, 'the connection error');
    expect(errors[0]?.message).toContain(`cannot reach the inspector at ws://127.0.0.1:${port}`);
    expect(inspector.connected).toBe(false);

    const revived = await startEndpoint(port);
    cleanups.push(() => revived.close());
    await inspector.ready();
    await waitFor(() => revived.messages.some((m) => m.snapshot?.status === 'done'), 'the buffered messages');
    const types = revived.messages.map((m) => m.type);
    expect(types[0]).toBe('@xstate.actor');
    expect(revived.messages.find((m) => m.type === '@xstate.actor')?.name).toBe(report.executionId);
    expect(inspector.dropped).toBe(0);
  });

  it('keeps a bounded buffer while disconnected and counts what it dropped', async () => {
    const endpoint = await startEndpoint();
    const port = endpoint.port;
    await endpoint.close();
    const inspector = createRunInspector({ url: `ws://127.0.0.1:${port}`, maxBufferedMessages: 5, onError: () => undefined });
    cleanups.push(() => inspector.stop());
    await new Orchestrator({ inspect: inspector.inspect }).run({ agent: echo, task: 'lots' });
    await waitFor(() => inspector.dropped > 0, 'dropped messages');
  });

  it('stop() delivers what is queued, closes the socket and ignores later events', async () => {
    const endpoint = await startEndpoint();
    cleanups.push(() => endpoint.close());
    const inspector = createRunInspector({ url: endpoint.url, onError: () => undefined });
    // Not awaiting ready(): a run that ends before the socket opens is still delivered by stop().
    const orch = new Orchestrator({ inspect: inspector.inspect });
    await orch.run({ agent: echo, task: 'before stop' });
    await inspector.stop();
    await waitFor(() => endpoint.sockets.size === 0, 'the socket to close');
    expect(endpoint.messages.some((m) => m.snapshot?.status === 'done')).toBe(true);
    const count = endpoint.messages.length;
    await orch.run({ agent: echo, task: 'after stop' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(endpoint.messages).toHaveLength(count);
    await expect(inspector.ready()).rejects.toMatchObject({ code: 'OAO_ERR_INSPECTOR_STOPPED' });
    await inspector.stop();
  });

  it('refuses bad options with a typed error naming the option', () => {
    const attempt = (options: unknown) => {
      try {
        createRunInspector(options as never);
      } catch (error) {
        return error;
      }
      throw new Error('expected an error');
    };
    expect(attempt({ url: 'http://localhost:8080' })).toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'url' } });
    expect(attempt({ url: 'ws://', maxBufferedMessages: 0 })).toBeInstanceOf(OaoError);
    expect(attempt({ maxBufferedMessages: 1.5 })).toMatchObject({ details: { field: 'maxBufferedMessages' } });
    expect(attempt({ filter: 'yes' })).toMatchObject({ details: { field: 'filter' } });
    expect(attempt(null)).toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT' });
  });
});

describe('inspectRuns: any XState inspector, without OAO\'s ledgers', () => {
  it('passes every event through, with run and batch ledgers summarized', async () => {
    const seen: InspectionEvent[] = [];
    const orch = new Orchestrator({ inspect: inspectRuns((event) => seen.push(event)) });
    const handle = orch.start({ agent: echo, task: 't' });
    await handle.report;
    const snapshots = seen.filter((e) => e.type === '@xstate.snapshot' && e.actorRef === handle.actor);
    const context = ((snapshots.at(-1) as { snapshot?: unknown } | undefined)?.snapshot as { context?: { session?: unknown } } | undefined)?.context;
    expect(context?.session).toMatchObject({ executionId: handle.executionId, state: 'TERMINATE', tokens: { total: 5 } });
    // The actor itself is untouched: only what the inspector is handed is summarized.
    expect((handle.actor.getSnapshot().context as { session: object }).session.constructor.name).toBe('RunSession');
    const registered = seen.find((e) => e.type === '@xstate.actor' && e.actorRef.sessionId === handle.actor.sessionId);
    expect((registered?.actorRef.getSnapshot() as { context: { session: unknown } }).context.session).toMatchObject({ agentName: 'echo' });
    expect(seen.some((e) => e.type === '@xstate.event')).toBe(true);
  });

  it('accepts an observer as well as a function', async () => {
    const types: string[] = [];
    await new Orchestrator({ inspect: inspectRuns({ next: (event: InspectionEvent) => types.push(event.type) }) }).run({ agent: echo, task: 't' });
    expect(types).toEqual(expect.arrayContaining(['@xstate.actor', '@xstate.event', '@xstate.snapshot']));
  });
});
