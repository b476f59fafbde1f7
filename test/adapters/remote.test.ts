import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { Orchestrator, createMemoryStore, type OaoEvent } from '../../src/index.js';
import { fromRemoteAgent } from '../../src/adapters/remote/index.js';
import { startA2AAgentServer, type A2AAgentServer } from '../../examples/support/a2aAgentServer.js';
import { deferred, expectValidEvents, expectValidReport } from '../helpers.js';

const TEST_TIMEOUT_MS = 15_000;

// ---- a plain HTTP agent (node:http) -----------------------------------------------------------

type HttpAnswer = { readonly status?: number; readonly body: string } | 'hang';

interface HttpAgentServer {
  readonly url: string;
  readonly bodies: Record<string, unknown>[];
  readonly headers: IncomingMessage['headers'][];
  /** Resolves once a request that will never be answered has arrived. */
  readonly hanging: Promise<void>;
  close(): Promise<void>;
}

async function startHttpAgent(answer: (body: Record<string, unknown>) => HttpAnswer): Promise<HttpAgentServer> {
  const bodies: Record<string, unknown>[] = [];
  const headers: IncomingMessage['headers'][] = [];
  const hanging = deferred();
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      bodies.push(body);
      headers.push(req.headers);
      const reply = answer(body);
      if (reply === 'hang') {
        hanging.resolve();
        return;
      }
      res.writeHead(reply.status ?? 200, { 'content-type': 'application/json' });
      res.end(reply.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/agent`,
    bodies,
    headers,
    hanging: hanging.promise,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((server) => server.close()));
});

async function a2aAgent(options: Parameters<typeof startA2AAgentServer>[0]): Promise<A2AAgentServer> {
  const server = await startA2AAgentServer(options);
  open.push(server);
  return server;
}

async function httpAgent(answer: (body: Record<string, unknown>) => HttpAnswer): Promise<HttpAgentServer> {
  const server = await startHttpAgent(answer);
  open.push(server);
  return server;
}

function recorder(orch: Orchestrator): OaoEvent[] {
  const events: OaoEvent[] = [];
  orch.events$.subscribe((event) => events.push(event));
  return events;
}

// ---- A2A ----------------------------------------------------------------------------------------

describe('fromRemoteAgent over A2A (a real @a2a-js/sdk server on loopback)', () => {
  it('one turn is one step; the reported usage is charged through a governed model call', { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await a2aAgent({ name: 'crew', answer: (text) => ({ text: `Summary of: ${text}`, usage: { inputTokens: 12, outputTokens: 7, model: 'crew-model' } }) });
    const orch = new Orchestrator({ policy: { maxTokens: 5_000 } });
    const events = recorder(orch);
    const agent = fromRemoteAgent({ name: 'crew', transport: { kind: 'a2a', url: server.url }, timeoutMs: 5_000, maxOutputTokens: 200 });
    const report = expectValidReport(await orch.run({ agent, task: 'Q3 sales' }));
    expect(report.status).toBe('SUCCESS');
    expect(report.agentName).toBe('crew');
    expect(report.finalOutput).toBe('Summary of: Q3 sales');
    expect(report.totalSteps).toBe(1);
    expect(report.tokenUsage).toEqual({ input: 12, output: 7, total: 19 });
    expect(server.received).toHaveLength(1);
    expectValidEvents(events);
    const call = events.find((event) => event.type === 'MODEL_CALL');
    expect(call?.payload).toMatchObject({ model: 'crew', reserved: { output: 200, estimated: true } });
    const result = events.find((event) => event.type === 'MODEL_RESULT');
    expect(result?.payload).toMatchObject({ ok: true, usage: { input: 12, output: 7, total: 19 }, output: { done: true, state: 'completed', usage: { model: 'crew-model' } } });
    expect(result?.payload).not.toHaveProperty('unmetered');
  });

  it('a turn that reports no usage is charged its reservation, flagged unmetered', { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await a2aAgent({ name: 'quiet', answer: () => ({ text: 'ok' }) });
    const orch = new Orchestrator();
    const events = recorder(orch);
    const report = await orch.run({ agent: fromRemoteAgent({ name: 'quiet', transport: { kind: 'a2a', url: server.url }, maxOutputTokens: 100 }), task: 'abcdefgh' });
    expect(report.status).toBe('SUCCESS');
    const result = events.find((event) => event.type === 'MODEL_RESULT');
    expect(result?.payload).toMatchObject({ unmetered: true });
    const reserved = (events.find((event) => event.type === 'MODEL_CALL')?.payload as { reserved: { input: number; output: number } }).reserved;
    expect(reserved.output).toBe(100);
    expect(report.tokenUsage.total).toBe(reserved.input + reserved.output);
  });

  it('a completed task answers with its artifacts; a card at its own URL and a non-streaming agent work', { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await a2aAgent({ name: 'writer', streaming: false, answer: () => ({ text: 'The report.', asArtifact: true, usage: { inputTokens: 1, outputTokens: 2 } }) });
    const agent = fromRemoteAgent({ name: 'writer', transport: { kind: 'a2a', agentCardUrl: `${server.url}/.well-known/agent-card.json` } });
    const report = await new Orchestrator().run({ agent, task: { topic: 'governance' } });
    expect(report.status).toBe('SUCCESS');
    expect(report.finalOutput).toBe('The report.');
    // A task that is not a string goes as a JSON data part.
    expect(server.received[0]?.text).toBe('{"topic":"governance"}');
  });

  it('input-required continues the same remote task as the next step, with onInputRequired\'s answer', { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await a2aAgent({
      name: 'planner',
      answer: (text, seen) =>
        seen.continued
          ? { text: `Plan for ${text}`, usage: { inputTokens: 30, outputTokens: 10 } }
          : { text: 'Which quarter?', state: 'input-required', usage: { inputTokens: 20, outputTokens: 5 } },
    });
    const questions: unknown[] = [];
    const agent = fromRemoteAgent({
      name: 'planner',
      transport: { kind: 'a2a', url: server.url },
      onInputRequired: (request) => {
        questions.push(request.question);
        return 'Q3';
      },
    });
    const report = await new Orchestrator().run({ agent, task: 'Plan the launch' });
    expect(report.status).toBe('SUCCESS');
    expect(report.finalOutput).toBe('Plan for Q3');
    expect(report.totalSteps).toBe(2);
    expect(report.tokenUsage).toEqual({ input: 50, output: 15, total: 65 });
    expect(questions).toEqual(['Which quarter?']);
    expect(server.received.map((r) => r.continued)).toEqual([false, true]);
    expect(server.received[1]?.taskId).toBe(server.received[0]?.taskId);
  });

  it('input-required that nobody answers fails the run with a typed error (after charging the turn)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await a2aAgent({ name: 'asker', answer: () => ({ text: 'Which account?', state: 'input-required', usage: { inputTokens: 3, outputTokens: 4 } }) });
    const report = await new Orchestrator().run({ agent: fromRemoteAgent({ name: 'asker', transport: { kind: 'a2a', url: server.url } }), task: 'Refund me' });
    expect(report.status).toBe('FAILED');
    expect(report.termination.reason).toBe('error');
    expect(report.error).toMatchObject({ code: 'OAO_ERR_REMOTE_AGENT', details: { reason: 'input_required', question: 'Which account?', transport: 'a2a' } });
    expect(report.tokenUsage.total).toBe(7);
  });

  it('a task that ends failed is OAO_ERR_REMOTE_AGENT with the remote\'s message', { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await a2aAgent({ name: 'broken', answer: () => ({ text: 'the crew crashed', state: 'failed' }) });
    const report = await new Orchestrator().run({ agent: fromRemoteAgent({ name: 'broken', transport: { kind: 'a2a', url: server.url } }), task: 't' });
    expect(report.error).toMatchObject({ code: 'OAO_ERR_REMOTE_AGENT', details: { reason: 'task_failed', state: 'failed' } });
    expect(report.error?.message).toContain('the crew crashed');
  });

  it('an agent whose card cannot be read is OAO_ERR_REMOTE_AGENT (unreachable, retryable)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await a2aAgent({ name: 'gone', answer: () => ({ text: 'never' }) });
    await server.close();
    const report = await new Orchestrator().run({ agent: fromRemoteAgent({ name: 'gone', transport: { kind: 'a2a', url: server.url } }), task: 't' });
    expect(report.error).toMatchObject({ code: 'OAO_ERR_REMOTE_AGENT', details: { transport: 'a2a', reason: 'unreachable', turn: 1 } });
  });

  it('the step limit applies before a turn is sent: a remote that keeps asking gets exactly maxSteps turns', { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await a2aAgent({ name: 'chatty', answer: () => ({ text: 'More detail?', state: 'input-required', usage: { inputTokens: 1, outputTokens: 1 } }) });
    const agent = fromRemoteAgent({ name: 'chatty', transport: { kind: 'a2a', url: server.url }, onInputRequired: () => 'yes' });
    const report = await new Orchestrator({ policy: { maxSteps: 3 } }).run({ agent, task: 't' });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps' });
    expect(report.totalSteps).toBe(3);
    expect(server.received).toHaveLength(3);
  });

  it('a turn whose reservation does not fit the token budget is refused before anything is sent', { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await a2aAgent({ name: 'big', answer: () => ({ text: 'never' }) });
    const orch = new Orchestrator({ policy: { maxTokens: 500 } });
    const events = recorder(orch);
    const agent = fromRemoteAgent({ name: 'big', transport: { kind: 'a2a', url: server.url }, maxOutputTokens: 1_000 });
    const report = await orch.run({ agent, task: 'write a novel' });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens' });
    expect(events.some((event) => event.type === 'MODEL_CALL_DENIED')).toBe(true);
    expect(server.received).toHaveLength(0);
    expect(report.tokenUsage.total).toBe(0);
  });

  it('cancelling the run aborts the request and sends tasks/cancel: the executor observes cancelTask', { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await a2aAgent({ name: 'slow', answer: () => ({ text: '', hang: true }) });
    const handle = new Orchestrator().start({ agent: fromRemoteAgent({ name: 'slow', transport: { kind: 'a2a', url: server.url } }), task: 'long job' });
    const taskId = await server.hanging;
    handle.cancel('user left');
    const report = await handle.report;
    expect(report.termination.reason).toBe('cancelled');
    expect(await server.firstCancel).toBe(taskId);
    expect(server.cancelled).toEqual([taskId]);
  });

  it('a remote that never answers times out with OAO_ERR_REMOTE_TIMEOUT (simulated clock), and its task is cancelled', { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await a2aAgent({ name: 'stuck', answer: () => ({ text: '', hang: true }) });
    const clock = new SimulatedClock();
    const agent = fromRemoteAgent({ name: 'stuck', transport: { kind: 'a2a', url: server.url }, timeoutMs: 30_000, clock });
    const handle = new Orchestrator().start({ agent, task: 't' });
    const taskId = await server.hanging;
    clock.increment(29_999);
    expect(server.cancelled).toEqual([]);
    clock.increment(1);
    const report = await handle.report;
    expect(report.status).toBe('FAILED');
    expect(report.error).toMatchObject({ code: 'OAO_ERR_REMOTE_TIMEOUT', details: { transport: 'a2a', turn: 1, timeoutMs: 30_000 } });
    expect(await server.firstCancel).toBe(taskId);
  });

  it('verify-replay serves every turn from the log: zero network calls (the server is gone)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await a2aAgent({
      name: 'planner',
      answer: (text, seen) => (seen.continued ? { text: `Plan for ${text}`, usage: { inputTokens: 9, outputTokens: 3 } } : { text: 'Which quarter?', state: 'input-required' }),
    });
    const agent = fromRemoteAgent({ name: 'planner', transport: { kind: 'a2a', url: server.url }, onInputRequired: () => 'Q4', maxOutputTokens: 50 });
    const orch = new Orchestrator({ store: createMemoryStore() });
    const report = await orch.run({ agent, task: 'Plan' });
    expect(report.status).toBe('SUCCESS');
    await server.close();
    const replayed = await orch.replay(report.executionId, { agent, verify: true });
    expect(replayed.finalOutput).toBe('Plan for Q4');
    expect(replayed.tokenUsage).toEqual(report.tokenUsage);
    expect(server.received).toHaveLength(2);
    // A fresh agent (no client, no card read yet) replays too.
    const fresh = fromRemoteAgent({ name: 'planner', transport: { kind: 'a2a', url: server.url }, onInputRequired: () => 'Q4', maxOutputTokens: 50 });
    expect((await orch.replay(report.executionId, { agent: fresh, verify: true })).finalOutput).toBe('Plan for Q4');
  });
});

// ---- plain HTTP ---------------------------------------------------------------------------------

describe('fromRemoteAgent over plain HTTP (a node:http server on loopback)', () => {
  it('posts { task, runId, turn, history } and charges the response\'s usage; done: false asks for another turn', { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await httpAgent((body) =>
      body.turn === 1
        ? { body: JSON.stringify({ output: 'draft', usage: { inputTokens: 10, outputTokens: 20 }, done: false }) }
        : { body: JSON.stringify({ output: { final: 'polished' }, usage: { inputTokens: 15, outputTokens: 5 } }) },
    );
    const agent = fromRemoteAgent({ name: 'autogen', transport: { kind: 'http', url: server.url, headers: { authorization: 'Bearer t0k' } }, maxOutputTokens: 100 });
    const report = await new Orchestrator().run({ agent, task: 'Write a haiku' });
    expect(report.status).toBe('SUCCESS');
    expect(report.finalOutput).toEqual({ final: 'polished' });
    expect(report.totalSteps).toBe(2);
    expect(report.tokenUsage).toEqual({ input: 25, output: 25, total: 50 });
    expect(server.bodies).toEqual([
      { task: 'Write a haiku', runId: report.executionId, turn: 1, history: [] },
      { task: 'Write a haiku', runId: report.executionId, turn: 2, history: [{ turn: 1, output: 'draft' }] },
    ]);
    expect(server.headers[0]?.authorization).toBe('Bearer t0k');
  });

  it('maxSteps bounds the turns of a remote that never says done; maxTurns fails it with a typed error', { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await httpAgent(() => ({ body: JSON.stringify({ output: 'again', usage: { inputTokens: 1, outputTokens: 1 }, done: false }) }));
    const stepped = await new Orchestrator({ policy: { maxSteps: 4 } }).run({ agent: fromRemoteAgent({ name: 'loop', transport: { kind: 'http', url: server.url } }), task: 't' });
    expect(stepped.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps' });
    expect(server.bodies).toHaveLength(4);
    const turned = await new Orchestrator().run({ agent: fromRemoteAgent({ name: 'loop', transport: { kind: 'http', url: server.url }, maxTurns: 2 }), task: 't' });
    expect(turned.error).toMatchObject({ code: 'OAO_ERR_REMOTE_AGENT', details: { reason: 'max_turns', maxTurns: 2 } });
    expect(server.bodies).toHaveLength(6);
  });

  it('a token budget spent by earlier turns refuses the next turn before it is sent', { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await httpAgent(() => ({ body: JSON.stringify({ output: 'x', usage: { inputTokens: 300, outputTokens: 300 }, done: false }) }));
    const agent = fromRemoteAgent({ name: 'spender', transport: { kind: 'http', url: server.url }, maxOutputTokens: 300 });
    const report = await new Orchestrator({ policy: { maxTokens: 1_500 } }).run({ agent, task: 't' });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens' });
    expect(server.bodies).toHaveLength(2);
    expect(report.tokenUsage.total).toBe(1_200);
  });

  it('HTTP 500, a body that is not JSON, a body without output, bad usage and a closed port are typed errors', { timeout: TEST_TIMEOUT_MS }, async () => {
    const cases: [HttpAnswer, Record<string, unknown>, boolean][] = [
      [{ status: 500, body: 'boom' }, { reason: 'http_status', status: 500 }, true],
      [{ status: 404, body: '' }, { reason: 'http_status', status: 404 }, false],
      [{ body: '<html>' }, { reason: 'malformed_response' }, false],
      [{ body: JSON.stringify({ result: 'x' }) }, { reason: 'malformed_response' }, false],
      [{ body: JSON.stringify({ output: 'x', usage: { inputTokens: -1, outputTokens: 2 } }) }, { reason: 'malformed_response' }, false],
    ];
    for (const [answer, details, retryable] of cases) {
      const server = await httpAgent(() => answer);
      const report = await new Orchestrator().run({ agent: fromRemoteAgent({ name: 'bad', transport: { kind: 'http', url: server.url } }), task: 't' });
      expect(report.status).toBe('FAILED');
      expect(report.error).toMatchObject({ code: 'OAO_ERR_REMOTE_AGENT', details: { transport: 'http', turn: 1, ...details } });
      expect(report.tokenUsage.total).toBe(0);
      // A 5xx may be retried by the policy; a malformed answer never is.
      const retried = await new Orchestrator({ policy: { retry: { maxRetries: 1, initialDelayMs: 1 } } }).run({
        agent: fromRemoteAgent({ name: 'bad', transport: { kind: 'http', url: server.url } }),
        task: 't',
      });
      expect(retried.status).toBe('FAILED');
      expect(server.bodies).toHaveLength(retryable ? 3 : 2);
    }
    const gone = await httpAgent(() => ({ body: '{}' }));
    await gone.close();
    const report = await new Orchestrator().run({ agent: fromRemoteAgent({ name: 'gone', transport: { kind: 'http', url: gone.url } }), task: 't' });
    expect(report.error).toMatchObject({ code: 'OAO_ERR_REMOTE_AGENT', details: { reason: 'unreachable' } });
  });

  it('a server that never answers times out with OAO_ERR_REMOTE_TIMEOUT (simulated clock)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await httpAgent(() => 'hang');
    const clock = new SimulatedClock();
    const handle = new Orchestrator().start({ agent: fromRemoteAgent({ name: 'mute', transport: { kind: 'http', url: server.url }, timeoutMs: 2_000, clock }), task: 't' });
    await server.hanging;
    clock.increment(2_000);
    const report = await handle.report;
    expect(report.error).toMatchObject({ code: 'OAO_ERR_REMOTE_TIMEOUT', details: { transport: 'http', turn: 1, timeoutMs: 2_000 } });
    expect(report.tokenUsage.total).toBe(0);
  });

  it('a small real timeoutMs ends a turn against a server that never answers', { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await httpAgent(() => 'hang');
    const report = await new Orchestrator().run({ agent: fromRemoteAgent({ name: 'mute', transport: { kind: 'http', url: server.url }, timeoutMs: 50 }), task: 't' });
    expect(report.error).toMatchObject({ code: 'OAO_ERR_REMOTE_TIMEOUT' });
  });

  it('verify-replay serves the turns (and a recorded failure) from the log with zero requests', { timeout: TEST_TIMEOUT_MS }, async () => {
    let fail = false;
    const server = await httpAgent((body) =>
      fail ? { status: 503, body: 'down' } : { body: JSON.stringify({ output: `turn ${String(body.turn)}`, usage: { inputTokens: 2, outputTokens: 2 }, done: body.turn === 2 }) },
    );
    const orch = new Orchestrator({ store: createMemoryStore() });
    const agent = fromRemoteAgent({ name: 'svc', transport: { kind: 'http', url: server.url } });
    const ok = await orch.run({ agent, task: 't' });
    fail = true;
    const failed = await orch.run({ agent, task: 't' });
    expect(failed.error).toMatchObject({ code: 'OAO_ERR_REMOTE_AGENT', details: { status: 503 } });
    const requests = server.bodies.length;
    await server.close();
    expect((await orch.replay(ok.executionId, { agent, verify: true })).finalOutput).toBe('turn 2');
    const replayedFailure = await orch.replay(failed.executionId, { agent, verify: true });
    expect(replayedFailure.error).toMatchObject({ code: 'OAO_ERR_REMOTE_AGENT', details: { status: 503 } });
    expect(server.bodies).toHaveLength(requests);
  });

  it('cancelling aborts the HTTP request at once', { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await httpAgent(() => 'hang');
    const controller = new AbortController();
    const run = new Orchestrator().run({ agent: fromRemoteAgent({ name: 'mute', transport: { kind: 'http', url: server.url } }), task: 't', signal: controller.signal });
    await server.hanging;
    controller.abort('stop');
    expect((await run).termination.reason).toBe('cancelled');
  });
});

describe('fromRemoteAgent options', () => {
  it('bad options are OAO_ERR_INVALID_ARGUMENT naming the field', () => {
    const bad: [unknown, string][] = [
      [{ transport: { kind: 'http', url: 'http://x' } }, 'name'],
      [{ name: 'a', transport: { kind: 'grpc', url: 'http://x' } }, 'transport.kind'],
      [{ name: 'a', transport: { kind: 'http', url: 'not a url' } }, 'transport.url'],
      [{ name: 'a', transport: { kind: 'a2a' } }, 'transport'],
      [{ name: 'a', transport: { kind: 'a2a', url: 'http://x', agentCardUrl: 'http://x/card' } }, 'transport'],
      [{ name: 'a', transport: { kind: 'http', url: 'http://x', headers: { a: 1 } } }, 'transport.headers'],
      [{ name: 'a', transport: { kind: 'http', url: 'http://x' }, timeoutMs: 0 }, 'timeoutMs'],
      [{ name: 'a', transport: { kind: 'http', url: 'http://x' }, maxTurns: 1.5 }, 'maxTurns'],
      [{ name: 'a', transport: { kind: 'http', url: 'http://x' }, onInputRequired: 'yes' }, 'onInputRequired'],
      [{ name: 'a' }, 'transport'],
    ];
    for (const [options, field] of bad) {
      expect(() => fromRemoteAgent(options as never), field).toThrow(expect.objectContaining({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field } }) as Error);
    }
  });
});
