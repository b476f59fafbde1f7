import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { canonicalJson, createMemoryStore, Orchestrator, type AgentContext } from '../src/index.js';

/** The seed's trivial agent. */
const dummy = { name: 'dummy', invoke: (task: string) => ({ output: `Processed: ${task}` }) };

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('new Orchestrator() records every run in a memory store of its own', () => {
  it('replays a run by id with no configuration, byte-identical to the live report', { timeout: 10_000 }, async () => {
    const orch = new Orchestrator();
    const report = await orch.run({ agent: dummy, task: 'hi' });
    expect(orch.store).toBeDefined();
    // The report is handed out once the whole log is stored.
    expect(await orch.store?.report(report.executionId)).toBe(report);
    expect(canonicalJson(await orch.replay(report.executionId))).toBe(canonicalJson(report));
    expect(await orch.store?.get(report.executionId)).toMatchObject({ agentName: 'dummy', status: 'SUCCESS' });
  });

  it('records runSync() runs too, and says an unknown id is not found', { timeout: 10_000 }, async () => {
    const orch = new Orchestrator();
    const report = orch.runSync({ agent: dummy, task: 'sync' });
    const events = await orch.store?.events(report.executionId);
    expect(events?.map((e) => e.type).at(-1)).toBe('EXECUTION_COMPLETE');
    await expect(orch.replay('no-such-run')).rejects.toMatchObject({ code: 'OAO_ERR_RUN_NOT_FOUND', details: { executionId: 'no-such-run' } });
  });

  it('keeps the 1,000 most recently finished runs', { timeout: 20_000 }, async () => {
    // One millisecond per run: runs that finish in the same millisecond are ordered by their random
    // ids, so on the system clock the first run is not always the oldest.
    const clock = new SimulatedClock();
    clock.set(Date.UTC(2026, 0, 1));
    const orch = new Orchestrator({ clock });
    const first = orch.runSync({ agent: dummy, task: 0 });
    let last = first;
    for (let i = 1; i <= 1_000; i += 1) {
      clock.increment(1);
      last = orch.runSync({ agent: dummy, task: i });
    }
    const store = orch.store;
    expect(await store?.get(first.executionId)).toBeUndefined();
    expect(await store?.report(last.executionId)).toBe(last);
    const page = await store?.list({}, { limit: 1_000 });
    expect(page?.runs).toHaveLength(1_000);
    expect(page?.nextCursor).toBeNull();
  });

  it('continues a run unloaded while it waits for approval, with no store configured', { timeout: 10_000 }, async () => {
    const sent: unknown[] = [];
    const agent = {
      name: 'mailer',
      async invoke(_task: unknown, ctx: AgentContext) {
        return { output: await ctx.callTool('sendEmail', { to: 'a@example.com' }) };
      },
    };
    const tools = { sendEmail: (args: unknown) => (sent.push(args), 'sent') };
    const orch = new Orchestrator({ policy: { tools: { approve: ['sendEmail'] } } });
    const handle = orch.start({ agent, task: 't', tools, executionId: 'waits' });
    while (handle.pendingApprovals().length === 0) await tick();
    await handle.unload();
    await expect(handle.report).rejects.toMatchObject({ code: 'OAO_ERR_RUN_UNLOADED' });
    await orch.approve('waits', 't1', { by: 'ops' });
    const report = await orch.resume('waits', { agent, tools });
    expect(report).toMatchObject({ status: 'SUCCESS', finalOutput: 'sent' });
    expect(sent).toEqual([{ to: 'a@example.com' }]);
  });

  it('records nothing with store: false, and says so when asked to replay or resume', { timeout: 10_000 }, async () => {
    const orch = new Orchestrator({ store: false });
    const report = await orch.run({ agent: dummy, task: 'hi' });
    expect(orch.store).toBeUndefined();
    await expect(orch.replay(report.executionId)).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'store' } });
    await expect(orch.resume(report.executionId, { agent: dummy })).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'store' } });
  });

  it('uses the store it is given instead', { timeout: 10_000 }, async () => {
    const store = createMemoryStore();
    const orch = new Orchestrator({ store });
    const report = await orch.run({ agent: dummy, task: 'hi' });
    expect(orch.store).toBe(store);
    expect(store.report(report.executionId)).toBe(report);
    expect(() => new Orchestrator({ store: 'memory' as never })).toThrow(expect.objectContaining({ code: 'OAO_ERR_INVALID_ARGUMENT' }) as Error);
  });
});
