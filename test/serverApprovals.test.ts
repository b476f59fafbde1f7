// Tool calls that wait for a person, over HTTP: GET /approvals and POST /runs/:id/approvals/:callId.
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Orchestrator, createMemoryStore, type AgentContext, type ExecutionReport, type OaoEvent } from '../src/index.js';
import { createServer, type ServerOptions } from '../src/server/index.js';
import { openEventStream } from './sseMessages.js';

/** Sends one email (a tool that needs approval), then searches (one that does not). */
const mailer = {
  name: 'mailer',
  async invoke(_task: unknown, ctx: AgentContext) {
    const sent = await ctx.callTool('sendEmail', { to: 'ceo@example.com', body: 'hi' });
    const found = await ctx.callTool('search', { q: 'x' });
    return { output: { sent, found } };
  },
};

let sent: unknown[] = [];
const sendEmail = Object.assign((args: unknown) => (sent.push(args), 'sent'), { schema: z.object({ to: z.email(), body: z.string() }) });
const tools = { sendEmail, search: () => 'found' };
const policy = { tools: { approve: ['sendEmail'] } };

const apps: FastifyInstance[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
  sent = [];
});

async function serve(options: Partial<ServerOptions> = {}): Promise<FastifyInstance> {
  const app = await createServer({ agents: { mailer }, tools, policy, apiKeys: [], dashboard: false, ...options });
  apps.push(app);
  return app;
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

async function start(app: FastifyInstance, executionId: string, headers: Record<string, string> = {}): Promise<void> {
  const started = await app.inject({ method: 'POST', url: '/runs', payload: { agent: 'mailer', task: 't', executionId }, headers });
  expect(started.statusCode, started.body).toBe(202);
}

async function pending(app: FastifyInstance, headers: Record<string, string> = {}) {
  const answer = await app.inject({ method: 'GET', url: '/approvals', headers });
  expect(answer.statusCode, answer.body).toBe(200);
  return answer.json<{ approvals: { executionId: string; callId: string; tool: string; args: unknown; step: number; requestedAt: string; agentName: string }[] }>().approvals;
}

/** Polls (a turn of the event loop at a time) until the run's call waits. */
async function waiting(app: FastifyInstance, executionId: string, headers: Record<string, string> = {}): Promise<void> {
  while (!(await pending(app, headers)).some((a) => a.executionId === executionId)) await new Promise((resolve) => setImmediate(resolve));
}

function decide(app: FastifyInstance, executionId: string, callId: string, payload: unknown, headers: Record<string, string> = {}) {
  return app.inject({ method: 'POST', url: `/runs/${executionId}/approvals/${callId}`, payload: payload as object, headers });
}

async function reportOf(app: FastifyInstance, executionId: string, headers: Record<string, string> = {}): Promise<ExecutionReport> {
  for (;;) {
    const state = (await app.inject({ method: 'GET', url: `/runs/${executionId}`, headers })).json<{ report: ExecutionReport | null }>();
    if (state.report !== null) return state.report;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function expectError(answer: { statusCode: number; json(): unknown }, status: number, code: string, field?: string) {
  const body = answer.json() as { error: { code: string; details?: { field?: string } } };
  expect({ status: answer.statusCode, code: body.error.code }).toEqual({ status, code });
  if (field !== undefined) expect(body.error.details?.field).toBe(field);
}

describe('GET /approvals and POST /runs/:id/approvals/:callId', () => {
  it('lists a waiting call with its run, tool, arguments, step and time; approving it runs the tool once and the run ends SUCCESS', { timeout: 15_000 }, async () => {
    const app = await serve();
    await start(app, 'mail-1');
    await waiting(app, 'mail-1');
    const [listed] = await pending(app);
    expect(listed).toEqual({
      executionId: 'mail-1',
      agentName: 'mailer',
      callId: 't1',
      tool: 'sendEmail',
      args: { to: 'ceo@example.com', body: 'hi' },
      step: 1,
      requestedAt: expect.any(String),
    });
    expect(Number.isNaN(Date.parse(listed?.requestedAt ?? ''))).toBe(false);
    const state = (await app.inject({ method: 'GET', url: '/runs/mail-1' })).json<{ state: string }>();
    expect(state.state).toBe('EXECUTE');
    expect(sent).toEqual([]);

    const answer = await decide(app, 'mail-1', 't1', { decision: 'approve', by: 'alice', reason: 'looks fine' });
    expect(answer.statusCode, answer.body).toBe(200);
    expect(answer.json()).toEqual({ executionId: 'mail-1', callId: 't1', decision: 'approved', by: 'alice', reason: 'looks fine', applied: 'live' });
    const report = await reportOf(app, 'mail-1');
    expect(report.status).toBe('SUCCESS');
    expect(sent).toEqual([{ to: 'ceo@example.com', body: 'hi' }]);
    expect(report.approvals).toEqual([{ callId: 't1', tool: 'sendEmail', decision: 'approved', by: 'alice', reason: 'looks fine', decidedAt: expect.any(String) }]);
    expect(await pending(app)).toEqual([]);
  });

  it('a denial: the tool never runs and the run ends policy_violation (approval_denied); the reason is in the report', { timeout: 15_000 }, async () => {
    const app = await serve();
    await start(app, 'mail-2');
    await waiting(app, 'mail-2');
    const answer = await decide(app, 'mail-2', 't1', { decision: 'deny', reason: 'not to the CEO' });
    expect(answer.json()).toEqual({ executionId: 'mail-2', callId: 't1', decision: 'denied', by: null, reason: 'not to the CEO', applied: 'live' });
    const report = await reportOf(app, 'mail-2');
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'approval_denied' });
    expect(report.approvals?.[0]).toMatchObject({ decision: 'denied', by: null, reason: 'not to the CEO' });
    expect(sent).toEqual([]);
  });

  it('edited arguments: the tool gets them and the report records them; ones the tool schema refuses are 400 body.args and no decision', { timeout: 15_000 }, async () => {
    const app = await serve();
    await start(app, 'mail-3');
    await waiting(app, 'mail-3');
    expectError(await decide(app, 'mail-3', 't1', { decision: 'approve', args: { to: 'not an address', body: 'hi' } }), 400, 'OAO_ERR_INVALID_ARGUMENT', 'body.args');
    expect(await pending(app)).toHaveLength(1);
    const answer = await decide(app, 'mail-3', 't1', { decision: 'approve', args: { to: 'team@example.com', body: 'hi all' } });
    expect(answer.statusCode, answer.body).toBe(200);
    const report = await reportOf(app, 'mail-3');
    expect(sent).toEqual([{ to: 'team@example.com', body: 'hi all' }]);
    expect(report.approvals?.[0]?.args).toEqual({ to: 'team@example.com', body: 'hi all' });
  });

  it('unknown run 404 OAO_ERR_RUN_NOT_FOUND, unknown call 404 OAO_ERR_UNKNOWN_APPROVAL, decided call and finished run 409 OAO_ERR_ALREADY_DECIDED', { timeout: 15_000 }, async () => {
    const app = await serve();
    await start(app, 'mail-4');
    await waiting(app, 'mail-4');
    expectError(await decide(app, 'no-such-run', 't1', { decision: 'approve' }), 404, 'OAO_ERR_RUN_NOT_FOUND');
    const unknown = await decide(app, 'mail-4', 't9', { decision: 'approve' });
    expectError(unknown, 404, 'OAO_ERR_UNKNOWN_APPROVAL');
    expect(unknown.json<{ error: { details: { pending: string[] } } }>().error.details.pending).toEqual(['t1']);
    expect((await decide(app, 'mail-4', 't1', { decision: 'approve' })).statusCode).toBe(200);
    await reportOf(app, 'mail-4');
    expectError(await decide(app, 'mail-4', 't1', { decision: 'deny' }), 409, 'OAO_ERR_ALREADY_DECIDED');
    expectError(await decide(app, 'mail-4', 't2', { decision: 'approve' }), 409, 'OAO_ERR_ALREADY_DECIDED');
    expect((await reportOf(app, 'mail-4')).approvals).toHaveLength(1);
  });

  it('a body that is not a decision is 400 with a code naming the field, and decides nothing', { timeout: 15_000 }, async () => {
    const app = await serve();
    await start(app, 'mail-5');
    await waiting(app, 'mail-5');
    expectError(await decide(app, 'mail-5', 't1', {}), 400, 'OAO_ERR_INVALID_ARGUMENT', 'body.decision');
    expectError(await decide(app, 'mail-5', 't1', { decision: 'maybe' }), 400, 'OAO_ERR_INVALID_ARGUMENT', 'body.decision');
    expectError(await decide(app, 'mail-5', 't1', { decision: 'approve', by: 'me', extra: 1 }), 400, 'OAO_ERR_INVALID_ARGUMENT', 'body.extra');
    expectError(await decide(app, 'mail-5', 't1', { decision: 'deny', args: { to: 'x@example.com' } }), 400, 'OAO_ERR_INVALID_ARGUMENT', 'body.args');
    expectError(await decide(app, 'mail-5', 't1', { decision: 'approve', reason: 'x'.repeat(1_001) }), 400, 'OAO_ERR_INVALID_ARGUMENT', 'body.reason');
    expectError(await decide(app, 'mail-5', 't1', { decision: 'approve', by: '' }), 400, 'OAO_ERR_INVALID_ARGUMENT', 'body.by');
    expectError(await decide(app, 'mail-5', 't1', ['approve']), 400, 'OAO_ERR_INVALID_JSON');
    const notJson = await app.inject({ method: 'POST', url: '/runs/mail-5/approvals/t1', payload: '{"decision":', headers: { 'content-type': 'application/json' } });
    expectError(notJson, 400, 'OAO_ERR_INVALID_JSON');
    const text = await app.inject({ method: 'POST', url: '/runs/mail-5/approvals/t1', payload: 'approve', headers: { 'content-type': 'text/plain' } });
    expectError(text, 415, 'OAO_ERR_UNSUPPORTED_MEDIA_TYPE');
    expectError(await decide(app, 'bad id!', 't1', { decision: 'approve' }), 400, 'OAO_ERR_INVALID_ARGUMENT', 'params.id');
    expect(await pending(app)).toHaveLength(1);
    expect(sent).toEqual([]);
  });

  it('two approvers racing over real sockets: exactly one 200 and one 409, and one decision in the report', { timeout: 15_000 }, async () => {
    const app = await serve();
    await app.listen({ port: 0, host: '127.0.0.1' });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    for (const [index, verbs] of [
      ['approve', 'approve'],
      ['approve', 'deny'],
    ].entries()) {
      const id = `race-${index}`;
      await start(app, id);
      await waiting(app, id);
      const post = (decision: string, by: string) =>
        fetch(`${base}/runs/${id}/approvals/t1`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ decision, by }) });
      const answers = await Promise.all([post(verbs[0] as string, 'first'), post(verbs[1] as string, 'second')]);
      expect(answers.map((answer) => answer.status).sort()).toEqual([200, 409]);
      const lost = answers.find((answer) => answer.status === 409) as Response;
      expect(((await lost.json()) as { error: { code: string } }).error.code).toBe('OAO_ERR_ALREADY_DECIDED');
      const won = (await (answers.find((answer) => answer.status === 200) as Response).json()) as { by: string; decision: string };
      const report = await reportOf(app, id);
      expect(report.approvals).toHaveLength(1);
      expect(report.approvals?.[0]?.by).toBe(won.by);
      const decisions = (await readEvents(app, id)).filter((event) => event.type === 'APPROVAL_GRANTED' || event.type === 'APPROVAL_DENIED');
      expect(decisions).toHaveLength(1);
    }
    // Only the approvals went through: the first race's approval and, of the second, at most one.
    expect(sent.length).toBeLessThanOrEqual(2);
    expect(sent.length).toBeGreaterThanOrEqual(1);
  });
});

async function readEvents(app: FastifyInstance, executionId: string): Promise<OaoEvent[]> {
  const answer = await app.inject({ method: 'GET', url: `/runs/${executionId}/events` });
  return answer.body
    .split('\n')
    .filter((line) => line.startsWith('data: '))
    .map((line) => JSON.parse(line.slice('data: '.length)) as OaoEvent);
}

describe('who decided: named API keys and approverKeys', () => {
  const apiKeys = [{ name: 'ops', key: 'key-ops' }, { name: 'viewer', key: 'key-viewer' }, 'plain-key'];

  it('by defaults to the key\'s name; with a body `by` the record says both; a key without a name leaves the body\'s `by` as it is', { timeout: 15_000 }, async () => {
    const app = await serve({ apiKeys });
    const cases: [string, string, Record<string, string>, string | null][] = [
      ['by-1', 'key-ops', {}, 'ops'],
      ['by-2', 'key-ops', { by: 'alice' }, 'alice (key ops)'],
      ['by-3', 'plain-key', { by: 'bob' }, 'bob'],
      ['by-4', 'plain-key', {}, null],
    ];
    for (const [id, key, body, by] of cases) {
      await start(app, id, bearer(key));
      await waiting(app, id, bearer(key));
      const answer = await decide(app, id, 't1', { decision: 'approve', ...body }, bearer(key));
      expect(answer.statusCode, answer.body).toBe(200);
      expect(answer.json<{ by: string | null }>().by).toBe(by);
      expect((await reportOf(app, id, bearer(key))).approvals?.[0]?.by).toBe(by);
    }
    expectError(await app.inject({ method: 'GET', url: '/approvals' }), 401, 'OAO_ERR_UNAUTHORIZED');
    expectError(await decide(app, 'by-1', 't1', { decision: 'approve' }, bearer('wrong')), 401, 'OAO_ERR_UNAUTHORIZED');
  });

  it('approverKeys: other keys list pending calls but deciding is 403 OAO_ERR_FORBIDDEN (before anything about the run is told)', { timeout: 15_000 }, async () => {
    const app = await serve({ apiKeys, approverKeys: ['ops', 'plain-key'] });
    await start(app, 'gate-1', bearer('key-viewer'));
    await waiting(app, 'gate-1', bearer('key-viewer'));
    const refused = await decide(app, 'gate-1', 't1', { decision: 'approve', by: 'mallory' }, bearer('key-viewer'));
    expectError(refused, 403, 'OAO_ERR_FORBIDDEN');
    expect(refused.json<{ error: { details: { key: string } } }>().error.details.key).toBe('viewer');
    expectError(await decide(app, 'no-such-run', 't1', { decision: 'approve' }, bearer('key-viewer')), 403, 'OAO_ERR_FORBIDDEN');
    expect(await pending(app, bearer('key-viewer'))).toHaveLength(1);
    expect(sent).toEqual([]);
    const allowed = await decide(app, 'gate-1', 't1', { decision: 'approve' }, bearer('plain-key'));
    expect(allowed.statusCode, allowed.body).toBe(200);
    expect((await reportOf(app, 'gate-1', bearer('key-ops'))).status).toBe('SUCCESS');
  });

  it('an empty approverKeys lets no key decide', { timeout: 15_000 }, async () => {
    const app = await serve({ apiKeys, approverKeys: [] });
    await start(app, 'gate-2', bearer('key-ops'));
    await waiting(app, 'gate-2', bearer('key-ops'));
    expectError(await decide(app, 'gate-2', 't1', { decision: 'deny' }, bearer('key-ops')), 403, 'OAO_ERR_FORBIDDEN');
  });

  it('the options are checked at startup, naming the field; plain string keys keep working', async () => {
    const refusal = (options: Partial<ServerOptions>) => serve(options).then(
      () => undefined,
      (error: { code: string; details?: { field?: string }; message: string }) => ({ code: error.code, field: error.details?.field, message: error.message }),
    );
    expect(await refusal({ approverKeys: ['ops'] })).toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', field: 'approverKeys' });
    const unknown = await refusal({ apiKeys, approverKeys: ['ops', 'a-secret-typo'] });
    expect(unknown).toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', field: 'approverKeys.1' });
    expect(unknown?.message).not.toContain('a-secret-typo');
    expect(await refusal({ apiKeys, approverKeys: 'ops' as never })).toMatchObject({ field: 'approverKeys' });
    expect(await refusal({ apiKeys: [{ name: '', key: 'k' }] })).toMatchObject({ field: 'apiKeys.0.name' });
    expect(await refusal({ apiKeys: [{ name: 'tab\there', key: 'k' }] })).toMatchObject({ field: 'apiKeys.0.name' });
    expect(await refusal({ apiKeys: [{ name: 'ops', key: 'has space' }] })).toMatchObject({ field: 'apiKeys.0.key' });
    expect(await refusal({ apiKeys: ['k', { name: 'ops', key: 'k' }] })).toMatchObject({ field: 'apiKeys.1.name' });
    const app = await serve({ apiKeys: ['just-a-string'] });
    expect((await app.inject({ method: 'GET', url: '/approvals', headers: bearer('just-a-string') })).statusCode).toBe(200);
  });
});

describe('a run no process holds', () => {
  /** The log of a run whose call waits (recorded by another process), in `store`, never leased. */
  async function cutWhileWaiting(store: ReturnType<typeof createMemoryStore>, executionId: string): Promise<void> {
    const elsewhere = createMemoryStore();
    const orch = new Orchestrator({ store: elsewhere, owner: 'elsewhere', policy });
    const handle = orch.start({ agent: mailer, agentName: 'mailer', task: 't', tools, executionId });
    while (handle.pendingApprovals().length === 0) await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    const events = elsewhere.events(executionId);
    expect(events.at(-1)?.type).toBe('APPROVAL_REQUESTED');
    store.append(executionId, events);
    handle.cancel('test over');
    await handle.report;
    sent = [];
  }

  it('with resumeInterrupted, the decision goes into its log and this server resumes it: it ends SUCCESS and the tool runs once', { timeout: 15_000 }, async () => {
    const store = createMemoryStore();
    await cutWhileWaiting(store, 'held-1');
    const app = await serve({ store, resumeInterrupted: true });
    expect(await pending(app)).toEqual([]);
    const answer = await decide(app, 'held-1', 't1', { decision: 'approve', by: 'carol' });
    expect(answer.statusCode, answer.body).toBe(200);
    expect(answer.json<{ applied: string }>().applied).toBe('resumed');
    const report = await reportOf(app, 'held-1');
    expect(report.status).toBe('SUCCESS');
    expect(report.approvals).toEqual([expect.objectContaining({ decision: 'approved', by: 'carol' })]);
    expect(sent).toEqual([{ to: 'ceo@example.com', body: 'hi' }]);
    expect(store.events('held-1').filter((event) => event.type === 'APPROVAL_REQUESTED')).toHaveLength(1);
    expectError(await decide(app, 'held-1', 't1', { decision: 'deny' }), 409, 'OAO_ERR_ALREADY_DECIDED');
  });

  it('two approvers racing on it: one decides (and the run is resumed), the other is 409 OAO_ERR_ALREADY_DECIDED', { timeout: 15_000 }, async () => {
    const store = createMemoryStore();
    await cutWhileWaiting(store, 'held-race');
    // A store that takes its time to answer (as a database does): the two decisions overlap.
    const slow = new Proxy(store, {
      get(target, property) {
        const value: unknown = Reflect.get(target, property, target);
        if (property === 'synchronous') return undefined;
        if (typeof value !== 'function') return value;
        return async (...args: unknown[]) => {
          await new Promise((resolve) => setTimeout(resolve, 5));
          return (value as (...rest: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const app = await serve({ store: slow, resumeInterrupted: true });
    const answers = await Promise.all([
      decide(app, 'held-race', 't1', { decision: 'approve', by: 'first' }),
      decide(app, 'held-race', 't1', { decision: 'deny', by: 'second' }),
    ]);
    expect(answers.map((answer) => answer.statusCode)).toEqual([200, 409]);
    expect(answers[0]?.json<{ applied: string }>().applied).toBe('resumed');
    expectError(answers[1], 409, 'OAO_ERR_ALREADY_DECIDED');
    const report = await reportOf(app, 'held-race');
    expect(report.status).toBe('SUCCESS');
    expect(store.events('held-race').filter((event) => event.type === 'APPROVAL_GRANTED' || event.type === 'APPROVAL_DENIED')).toHaveLength(1);
    expect(sent).toHaveLength(1);
  });

  it('without it, the decision is only logged; a second one is 409, an unknown call 404', { timeout: 15_000 }, async () => {
    const store = createMemoryStore();
    await cutWhileWaiting(store, 'held-2');
    const app = await serve({ store, resumeInterrupted: false });
    expectError(await decide(app, 'held-2', 't7', { decision: 'approve' }), 404, 'OAO_ERR_UNKNOWN_APPROVAL');
    const answer = await decide(app, 'held-2', 't1', { decision: 'deny', reason: 'no' });
    expect(answer.json<{ applied: string }>().applied).toBe('logged');
    expect(store.events('held-2').at(-1)).toMatchObject({ type: 'APPROVAL_DENIED', payload: { callId: 't1', reason: 'no' } });
    expect(store.get('held-2')?.status).toBe('interrupted');
    expectError(await decide(app, 'held-2', 't1', { decision: 'approve' }), 409, 'OAO_ERR_ALREADY_DECIDED');
    expect(sent).toEqual([]);
  });

  it('a run another live process holds is 409 OAO_ERR_LEASE_HELD, and nothing is written to its log', { timeout: 15_000 }, async () => {
    const store = createMemoryStore();
    await cutWhileWaiting(store, 'held-3');
    const lease = store.acquireLease('held-3', 'another live server', 60_000);
    expect(lease).toBeDefined();
    const app = await serve({ store, resumeInterrupted: true });
    const before = store.events('held-3').length;
    expectError(await decide(app, 'held-3', 't1', { decision: 'approve' }), 409, 'OAO_ERR_LEASE_HELD');
    expect(store.events('held-3')).toHaveLength(before);
  });
});

describe('runs of POST /run-multi', () => {
  it('are not listed, and deciding on one is refused without touching its log', { timeout: 15_000 }, async () => {
    const app = await serve();
    await app.listen({ port: 0, host: '127.0.0.1' });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const batch = fetch(`${base}/run-multi`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ agents: ['mailer'], task: 't' }) });
    let id: string | undefined;
    while (id === undefined) {
      const runs = (await app.inject({ method: 'GET', url: '/runs' })).json<{ runs: { executionId: string }[] }>();
      id = runs.runs[0]?.executionId;
      await new Promise((resolve) => setImmediate(resolve));
    }
    const stream = await openEventStream(`${base}/runs/${id}/events`);
    const seen: OaoEvent[] = [];
    while (seen.at(-1)?.type !== 'APPROVAL_REQUESTED') {
      const message = await stream.next();
      if (message === null) throw new Error('the stream ended before the call waited');
      seen.push(message.data);
    }
    expect(await pending(app)).toEqual([]);
    expectError(await decide(app, id, 't1', { decision: 'approve' }), 400, 'OAO_ERR_INVALID_ARGUMENT', 'params.id');
    await app.inject({ method: 'POST', url: `/runs/${id}/cancel`, payload: {} });
    for (let message = await stream.next(); message !== null; message = await stream.next()) seen.push(message.data);
    expect((await batch).status).toBe(200);
    expect(seen.some((event) => event.type === 'APPROVAL_GRANTED' || event.type === 'APPROVAL_DENIED')).toBe(false);
    expect(seen.at(-1)?.payload).toMatchObject({ report: { termination: { reason: 'cancelled' } } });
    expect(sent).toEqual([]);
  });
});
