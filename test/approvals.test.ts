// Tool calls that wait for a person's decision: policy tools.approve, AWAITING_APPROVAL, decisions.
import { SimulatedClock } from 'xstate';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { canonicalJson, Orchestrator, StrictPolicy, type AgentContext, type OaoEvent } from '../src/index.js';
import { createMemoryStore } from '../src/store/createMemoryStore.js';
import { waitFor } from './helpers.js';

/** Sends one email (a tool that needs approval), then searches (one that does not). */
function mailer() {
  return {
    name: 'mailer',
    async invoke(_task: unknown, ctx: AgentContext) {
      const sent = await ctx.callTool('sendEmail', { to: 'ceo@example.com', body: 'hi' });
      const found = await ctx.callTool('search', { q: 'x' });
      return { output: { sent, found } };
    },
  };
}

function tools(calls: unknown[]) {
  return {
    sendEmail: (args: unknown) => (calls.push(args), 'sent'),
    search: () => 'found',
  };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));


const types = (events: readonly OaoEvent[]) => events.map((e) => e.type).filter((t) => t.startsWith('APPROVAL') || t.startsWith('TOOL'));

describe('a tool call that needs approval', () => {
  it('waits in EXECUTE.running.AWAITING_APPROVAL until approved; then its body runs and the report lists the decision', async () => {
    const calls: unknown[] = [];
    const orch = new Orchestrator({ policy: { tools: { approve: ['sendEmail'] } } });
    const handle = orch.start({ agent: mailer(), task: 't', tools: tools(calls) });
    await waitFor(() => handle.pendingApprovals().length === 1);
    expect(handle.actor.getSnapshot().value).toEqual({ EXECUTE: { running: 'AWAITING_APPROVAL' } });
    const [pending] = handle.pendingApprovals();
    expect(pending).toMatchObject({ callId: 't1', tool: 'sendEmail', args: { to: 'ceo@example.com', body: 'hi' }, step: 1 });
    expect(calls).toEqual([]);
    handle.approve('t1', { by: 'alice', reason: 'looks fine' });
    const report = await handle.report;
    expect(report.status).toBe('SUCCESS');
    expect(calls).toEqual([{ to: 'ceo@example.com', body: 'hi' }]);
    expect(report.toolUsage).toEqual({ total: 2, byTool: { search: 1, sendEmail: 1 } });
    expect(report.approvals).toEqual([
      { callId: 't1', tool: 'sendEmail', decision: 'approved', by: 'alice', reason: 'looks fine', decidedAt: expect.any(String) },
    ]);
    expect(types(handle.events())).toEqual(['APPROVAL_REQUESTED', 'APPROVAL_GRANTED', 'TOOL_CALL', 'TOOL_RESULT', 'TOOL_CALL', 'TOOL_RESULT']);
    // The call id of the request is the call id of the call.
    expect(handle.events().filter((e) => e.type === 'TOOL_CALL').map((e) => (e.payload as { callId: string }).callId)).toEqual(['t1', 't2']);
  });

  it('denied: the body never runs and the run ends policy_violation with rule approval_denied', async () => {
    const calls: unknown[] = [];
    const orch = new Orchestrator({ policy: { tools: { approve: ['sendEmail'] } } });
    const handle = orch.start({ agent: mailer(), task: 't', tools: tools(calls) });
    await waitFor(() => handle.pendingApprovals().length === 1);
    handle.deny('t1', { by: 'bob', reason: 'not to the CEO' });
    const report = await handle.report;
    expect(calls).toEqual([]);
    expect(report.status).toBe('FAILED');
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'approval_denied' });
    expect(report.termination.message).toContain('bob');
    expect(report.toolUsage.total).toBe(0);
    expect(report.approvals?.[0]).toMatchObject({ decision: 'denied', by: 'bob', reason: 'not to the CEO' });
    expect(types(handle.events())).toEqual(['APPROVAL_REQUESTED', 'APPROVAL_DENIED', 'TOOL_DENIED']);
  });

  it('the approver may edit the arguments: the body gets the edit, the log and the report record it', async () => {
    const calls: unknown[] = [];
    const orch = new Orchestrator({ policy: { tools: { approve: ['sendEmail'] } } });
    const handle = orch.start({ agent: mailer(), task: 't', tools: tools(calls) });
    await waitFor(() => handle.pendingApprovals().length === 1);
    handle.approve('t1', { by: 'alice', args: { to: 'team@example.com', body: 'hi' } });
    const report = await handle.report;
    expect(calls).toEqual([{ to: 'team@example.com', body: 'hi' }]);
    const call = handle.events().find((e) => e.type === 'TOOL_CALL');
    expect(call?.payload).toMatchObject({ callId: 't1', args: { to: 'team@example.com', body: 'hi' } });
    expect(report.approvals?.[0]?.args).toEqual({ to: 'team@example.com', body: 'hi' });
  });

  it('edited arguments are checked against the tool schema; a refused edit is no decision', async () => {
    const calls: unknown[] = [];
    const sendEmail = Object.assign((args: unknown) => (calls.push(args), 'sent'), { schema: z.object({ to: z.email(), body: z.string() }) });
    const orch = new Orchestrator({ policy: { tools: { approve: ['sendEmail'] } } });
    const handle = orch.start({ agent: mailer(), task: 't', tools: { sendEmail, search: () => 'found' } });
    await waitFor(() => handle.pendingApprovals().length === 1);
    expect(() => handle.approve('t1', { args: { to: 'not an address', body: 'hi' } })).toThrow(expect.objectContaining({ code: 'OAO_ERR_INVALID_ARGUMENT' }));
    expect(handle.pendingApprovals()).toHaveLength(1);
    handle.approve('t1', { args: { to: 'ok@example.com', body: 'hi' } });
    expect((await handle.report).status).toBe('SUCCESS');
    expect(calls).toEqual([{ to: 'ok@example.com', body: 'hi' }]);
  });

  it('a second decision, an unknown call and a finished run are typed errors, never a second decision', async () => {
    const orch = new Orchestrator({ policy: { tools: { approve: ['sendEmail'] } } });
    const handle = orch.start({ agent: mailer(), task: 't', tools: tools([]) });
    await waitFor(() => handle.pendingApprovals().length === 1);
    expect(() => handle.approve('t9')).toThrow(expect.objectContaining({ code: 'OAO_ERR_UNKNOWN_APPROVAL' }));
    handle.approve('t1');
    expect(() => handle.deny('t1')).toThrow(expect.objectContaining({ code: 'OAO_ERR_ALREADY_DECIDED' }));
    await handle.report;
    expect(() => handle.approve('t1')).toThrow(expect.objectContaining({ code: 'OAO_ERR_ALREADY_DECIDED' }));
    expect(() => handle.approve('t1', { by: 42 as never })).toThrow(expect.objectContaining({ code: 'OAO_ERR_ALREADY_DECIDED' }));
  });

  it('two approvers racing by execution id: exactly one decision wins', async () => {
    const orch = new Orchestrator({ policy: { tools: { approve: ['sendEmail'] } } });
    const handle = orch.start({ agent: mailer(), task: 't', tools: tools([]) });
    await waitFor(() => orch.pendingApprovals().length === 1);
    expect(orch.pendingApprovals()[0]).toMatchObject({ executionId: handle.executionId, agentName: 'mailer', callId: 't1' });
    const outcomes = await Promise.allSettled([orch.approve(handle.executionId, 't1', { by: 'a' }), orch.deny(handle.executionId, 't1', { by: 'b' })]);
    expect(outcomes.map((o) => o.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect((outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult).reason).toMatchObject({ code: 'OAO_ERR_ALREADY_DECIDED' });
    const report = await handle.report;
    expect(report.approvals).toHaveLength(1);
  });

  it('a predicate decides in code which calls wait', async () => {
    const orch = new Orchestrator({ policy: new StrictPolicy({ tools: { approve: ({ args }) => (args as { amount: number }).amount > 100 } }) });
    const paid: number[] = [];
    const agent = async (_task: unknown, ctx: AgentContext) => {
      await ctx.callTool('pay', { amount: 50 });
      await ctx.callTool('pay', { amount: 500 });
      return 'done';
    };
    const handle = orch.start({ agent, task: 't', tools: { pay: (args: { amount: number }) => paid.push(args.amount) } });
    await waitFor(() => handle.pendingApprovals().length === 1);
    expect(paid).toEqual([50]);
    expect(handle.pendingApprovals()[0]?.args).toEqual({ amount: 500 });
    handle.approve('t2');
    await handle.report;
    expect(paid).toEqual([50, 500]);
    // Only the list form is part of the limits (and of the hash).
    expect(orch.policy.limits.tools.approve).toBeUndefined();
  });

  it('narrowing can add approvals but never remove them; policies without approvals keep their limits unchanged', () => {
    const base = new StrictPolicy({ tools: { approve: ['sendEmail'] }, approvalTimeoutMs: 60_000 });
    const narrowed = base.narrow({ tools: { approve: ['pay'] }, approvalTimeoutMs: 120_000 });
    expect(narrowed.limits.tools.approve).toEqual(['pay', 'sendEmail']);
    expect(narrowed.limits.approvalTimeoutMs).toBe(60_000);
    expect(Object.keys(new StrictPolicy().limits.tools)).toEqual(['allow', 'deny', 'maxCalls']);
    expect('approvalTimeoutMs' in new StrictPolicy().limits).toBe(false);
    expect(() => new StrictPolicy({ tools: { approve: 'sendEmail' as never } })).toThrow(expect.objectContaining({ code: 'OAO_ERR_INVALID_POLICY' }));
  });
});

describe('time while waiting for approval', () => {
  it('does not count toward timeoutMs; the report shows live time and the wall-clock span', async () => {
    const clock = new SimulatedClock();
    clock.set(1_000);
    const orch = new Orchestrator({ clock, policy: { timeoutMs: 1_000, tools: { approve: ['sendEmail'] } } });
    const handle = orch.start({ agent: mailer(), task: 't', tools: tools([]) });
    await waitFor(() => handle.pendingApprovals().length === 1);
    clock.increment(10 * 60_000); // ten minutes of waiting: ten times the run's time limit
    await tick();
    expect(handle.pendingApprovals()).toHaveLength(1);
    handle.approve('t1');
    const report = await handle.report;
    expect(report.status).toBe('SUCCESS');
    expect(report.executionTimeMs).toBe(0);
    expect(report.wallTimeMs).toBe(10 * 60_000);
  });

  it('the deadline still runs before and after the wait', async () => {
    const clock = new SimulatedClock();
    const orch = new Orchestrator({ clock, policy: { timeoutMs: 1_000, tools: { approve: ['sendEmail'] } } });
    const agent = async (_task: unknown, ctx: AgentContext) => {
      await ctx.callTool('sendEmail', {});
      await new Promise(() => {}); // then hangs: the deadline must end it
    };
    const handle = orch.start({ agent, task: 't', tools: tools([]) });
    await waitFor(() => handle.pendingApprovals().length === 1);
    clock.increment(5_000);
    handle.approve('t1');
    await tick();
    clock.increment(999);
    await tick();
    expect(handle.actor.getSnapshot().status).toBe('active');
    clock.increment(1);
    const report = await handle.report;
    expect(report.termination.reason).toBe('timeout');
    expect(report.executionTimeMs).toBe(1_000);
  });

  it('approvalTimeoutMs: nobody decided in time is a denial with rule approval_timeout', async () => {
    const clock = new SimulatedClock();
    const calls: unknown[] = [];
    const orch = new Orchestrator({ clock, policy: { approvalTimeoutMs: 30_000, tools: { approve: ['sendEmail'] } } });
    const handle = orch.start({ agent: mailer(), task: 't', tools: tools(calls) });
    await waitFor(() => handle.pendingApprovals().length === 1);
    clock.increment(29_999);
    await tick();
    expect(handle.pendingApprovals()).toHaveLength(1);
    clock.increment(1);
    const report = await handle.report;
    expect(calls).toEqual([]);
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'approval_timeout' });
    expect(report.approvals?.[0]).toMatchObject({ decision: 'timeout', by: null });
  });
});

describe('approvals in the log', () => {
  it('replay(id) rebuilds the report with its approvals; verify-replay serves the decisions from the log', async () => {
    const store = createMemoryStore();
    const orch = new Orchestrator({ store, policy: { tools: { approve: ['sendEmail'] } } });
    const handle = orch.start({ agent: mailer(), task: 't', tools: tools([]) });
    await waitFor(() => handle.pendingApprovals().length === 1);
    handle.approve('t1', { by: 'alice', args: { to: 'x@example.com', body: 'b' } });
    const report = await handle.report;
    expect(canonicalJson(await orch.replay(handle.executionId))).toBe(canonicalJson(report));
    const bodies: unknown[] = [];
    const verified = await orch.replay(handle.executionId, { agent: mailer(), verify: true, tools: tools(bodies) });
    expect(canonicalJson(verified)).toBe(canonicalJson(report));
    expect(bodies).toEqual([]);
  });

  it('a run cut short while waiting is resumed waiting (no second request); a decision then continues it', async () => {
    const first = createMemoryStore();
    const orch = new Orchestrator({ store: first, owner: 'first', policy: { tools: { approve: ['sendEmail'] } } });
    const handle = orch.start({ agent: mailer(), task: 't', tools: tools([]), executionId: 'w' });
    await waitFor(() => handle.pendingApprovals().length === 1);
    await tick();
    const cut = first.events('w');
    expect(cut.at(-1)?.type).toBe('APPROVAL_REQUESTED');

    const store = createMemoryStore();
    store.append('w', cut);
    const calls: unknown[] = [];
    const heir = new Orchestrator({ store, owner: 'heir', policy: { tools: { approve: ['sendEmail'] } } });
    const resumed = await heir.startResumed('w', { agent: mailer(), tools: tools(calls) });
    await waitFor(() => resumed.pendingApprovals().length === 1);
    expect(resumed.actor.getSnapshot().value).toEqual({ EXECUTE: { running: 'AWAITING_APPROVAL' } });
    await heir.approve('w', 't1', { by: 'carol' });
    const report = await resumed.report;
    expect(report.status).toBe('SUCCESS');
    expect(calls).toHaveLength(1);
    expect(store.events('w').filter((e) => e.type === 'APPROVAL_REQUESTED')).toHaveLength(1);
    expect(canonicalJson(await heir.replay('w'))).toBe(canonicalJson(report));
    handle.cancel('test over');
  });

  it('a decision on a run no process holds is recorded in its log; resuming it continues from the decision', async () => {
    const first = createMemoryStore();
    const orch = new Orchestrator({ store: first, owner: 'first', policy: { tools: { approve: ['sendEmail'] } } });
    const handle = orch.start({ agent: mailer(), task: 't', tools: tools([]), executionId: 'd' });
    await waitFor(() => handle.pendingApprovals().length === 1);
    await tick();
    const store = createMemoryStore();
    store.append('d', first.events('d'));
    handle.cancel('test over');

    const approver = new Orchestrator({ store, owner: 'approver' });
    await expect(approver.approve('d', 't7')).rejects.toMatchObject({ code: 'OAO_ERR_UNKNOWN_APPROVAL' });
    await approver.approve('d', 't1', { by: 'dave', args: { to: 'y@example.com', body: 'b' } });
    await expect(approver.deny('d', 't1')).rejects.toMatchObject({ code: 'OAO_ERR_ALREADY_DECIDED' });
    expect(store.events('d').at(-1)).toMatchObject({ type: 'APPROVAL_GRANTED', payload: { callId: 't1', by: 'dave' } });

    const calls: unknown[] = [];
    const heir = new Orchestrator({ store, owner: 'heir', policy: { tools: { approve: ['sendEmail'] } } });
    const report = await heir.resume('d', { agent: mailer(), tools: tools(calls) });
    expect(report.status).toBe('SUCCESS');
    expect(calls).toEqual([{ to: 'y@example.com', body: 'b' }]);
    expect(report.approvals?.[0]).toMatchObject({ by: 'dave', decision: 'approved' });
  });

  it('unload(): a waiting run leaves the process; a decision by id and resume() continue it', async () => {
    const store = createMemoryStore();
    const calls: unknown[] = [];
    const orch = new Orchestrator({ store, owner: 'host', policy: { tools: { approve: ['sendEmail'] } } });
    const busy = orch.start({ agent: () => new Promise(() => {}), task: 't', executionId: 'busy' });
    await expect(busy.unload()).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'state' } });
    busy.cancel();
    const handle = orch.start({ agent: mailer(), task: 't', tools: tools(calls), executionId: 'u' });
    await waitFor(() => handle.pendingApprovals().length === 1);
    const seen = store.events('u').length;
    await handle.unload();
    await expect(handle.report).rejects.toMatchObject({ code: 'OAO_ERR_RUN_UNLOADED' });
    expect(orch.pendingApprovals()).toEqual([]);
    expect(handle.actor.getSnapshot().status).toBe('stopped');
    expect(store.events('u')).toHaveLength(seen);
    // Nobody holds it now: the decision is recorded in the log, and resume() continues from it.
    await orch.approve('u', 't1', { by: 'erin' });
    const report = await orch.resume('u', { agent: mailer(), tools: tools(calls) });
    expect(report.status).toBe('SUCCESS');
    expect(calls).toHaveLength(1);
    expect(report.approvals?.[0]).toMatchObject({ by: 'erin' });
  });

  it('unload() needs a store', async () => {
    const orch = new Orchestrator({ store: false, policy: { tools: { approve: ['sendEmail'] } } });
    const handle = orch.start({ agent: mailer(), task: 't', tools: tools([]) });
    await waitFor(() => handle.pendingApprovals().length === 1);
    await expect(handle.unload()).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'store' } });
    handle.deny('t1');
    expect((await handle.report).status).toBe('FAILED');
  });

  it('two decisions by id on a stored run from one process: one is recorded, the other is ALREADY_DECIDED', async () => {
    const first = createMemoryStore();
    const orch = new Orchestrator({ store: first, owner: 'first', policy: { tools: { approve: ['sendEmail'] } } });
    const handle = orch.start({ agent: mailer(), task: 't', tools: tools([]), executionId: 'twice' });
    await waitFor(() => handle.pendingApprovals().length === 1);
    await tick();
    const store = createMemoryStore();
    store.append('twice', first.events('twice'));
    handle.cancel('test over');
    // One orchestrator, so one owner and one lease: the store cannot tell the two deciders apart.
    const approver = new Orchestrator({ store, owner: 'approver' });
    const outcomes = await Promise.allSettled([approver.approve('twice', 't1', { by: 'a' }), approver.deny('twice', 't1', { by: 'b' })]);
    expect(outcomes.map((o) => o.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect((outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult).reason).toMatchObject({ code: 'OAO_ERR_ALREADY_DECIDED' });
    expect(store.events('twice').filter((e) => e.type === 'APPROVAL_GRANTED' || e.type === 'APPROVAL_DENIED')).toHaveLength(1);
  });
});
