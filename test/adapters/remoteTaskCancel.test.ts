import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { Orchestrator } from '../../src/index.js';
import { fromRemoteAgent } from '../../src/adapters/remote/index.js';
import { startA2AAgentServer, type A2AAgentServer, type A2AAgentServerOptions } from '../../examples/support/a2aAgentServer.js';
import { deferred } from '../helpers.js';

// A remote task that stopped at input-required waits on its server until someone answers or
// cancels it: the end of the governed run must cancel it, however the run ended.

const TEST_TIMEOUT_MS = 15_000;

const open: A2AAgentServer[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((server) => server.close()));
});

async function a2aAgent(options: A2AAgentServerOptions): Promise<A2AAgentServer> {
  const server = await startA2AAgentServer(options);
  open.push(server);
  return server;
}

/** A remote that asks a question on every turn: its task never finishes on its own. */
function askingAgent(): Promise<A2AAgentServer> {
  return a2aAgent({ name: 'asker', answer: () => ({ text: 'Which account?', state: 'input-required', usage: { inputTokens: 1, outputTokens: 1 } }) });
}

/** Waits until the server has handled a tasks/cancel for the task, then expects the task canceled by it alone. */
async function expectCanceled(server: A2AAgentServer, taskId: string | undefined): Promise<void> {
  expect(taskId).toEqual(expect.any(String));
  await server.cancelHandled(taskId as string);
  expect(server.taskState(taskId as string)).toBe('canceled');
  expect(server.cancelRequests).toEqual([taskId]);
}

describe('fromRemoteAgent: the run\'s end cancels a remote task left at input-required', () => {
  it('no onInputRequired: the run fails input_required and its task is canceled on the server', { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await askingAgent();
    const report = await new Orchestrator().run({ agent: fromRemoteAgent({ name: 'asker', transport: { kind: 'a2a', url: server.url } }), task: 'Refund me' });
    expect(report.error).toMatchObject({ code: 'OAO_ERR_REMOTE_AGENT', details: { reason: 'input_required' } });
    const taskId = server.received[0]?.taskId;
    expect((report.error?.details as { taskId?: unknown } | undefined)?.taskId).toBe(taskId);
    await expectCanceled(server, taskId);
  });

  it('an onInputRequired that throws fails the run, and the task is canceled', { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await askingAgent();
    const agent = fromRemoteAgent({
      name: 'asker',
      transport: { kind: 'a2a', url: server.url },
      onInputRequired: () => {
        throw new Error('the account service is down');
      },
    });
    const report = await new Orchestrator().run({ agent, task: 'Refund me' });
    expect(report.status).toBe('FAILED');
    expect(report.error?.message).toContain('the account service is down');
    await expectCanceled(server, server.received[0]?.taskId);
  });

  it('maxSteps reached between turns: the turn that would answer is never sent, and the task is canceled', { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await askingAgent();
    const agent = fromRemoteAgent({ name: 'asker', transport: { kind: 'a2a', url: server.url }, onInputRequired: () => 'account 42' });
    const report = await new Orchestrator({ policy: { maxSteps: 2 } }).run({ agent, task: 'Refund me' });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps' });
    expect(server.received).toHaveLength(2);
    const taskId = server.received[0]?.taskId;
    expect(server.received[1]?.taskId).toBe(taskId);
    await expectCanceled(server, taskId);
  });

  it('the run\'s AbortSignal and orch cancel while onInputRequired waits: the task is canceled', { timeout: TEST_TIMEOUT_MS }, async () => {
    for (const how of ['signal', 'handle'] as const) {
      const server = await askingAgent();
      const asked = deferred<string | undefined>();
      const agent = fromRemoteAgent({
        name: 'asker',
        transport: { kind: 'a2a', url: server.url },
        onInputRequired: ({ taskId }) => {
          asked.resolve(taskId);
          return new Promise<string>(() => {}); // a person who never answers
        },
      });
      const controller = new AbortController();
      const handle = new Orchestrator().start({ agent, task: 'Refund me', signal: controller.signal });
      const taskId = await asked.promise;
      // Waiting for input leaves the task open on the server.
      expect(server.taskState(taskId as string)).toBe('input-required');
      expect(server.cancelRequests).toEqual([]);
      if (how === 'signal') controller.abort('user left');
      else handle.cancel('user left');
      expect((await handle.report).termination.reason, how).toBe('cancelled');
      await expectCanceled(server, taskId);
    }
  });

  it('the run\'s deadline while onInputRequired waits (simulated clock): the task is canceled', { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await askingAgent();
    const clock = new SimulatedClock();
    const asked = deferred<string | undefined>();
    const agent = fromRemoteAgent({
      name: 'asker',
      transport: { kind: 'a2a', url: server.url },
      clock,
      onInputRequired: ({ taskId }) => {
        asked.resolve(taskId);
        return new Promise<string>(() => {});
      },
    });
    const handle = new Orchestrator({ clock, policy: { timeoutMs: 5_000 } }).start({ agent, task: 'Refund me' });
    const taskId = await asked.promise;
    clock.increment(5_000);
    expect((await handle.report).termination.reason).toBe('timeout');
    await expectCanceled(server, taskId);
  });

  it('a run paused at maxSteps keeps its task open (a raise continues it); cancelling the paused run cancels the task', { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await a2aAgent({
      name: 'planner',
      answer: (text, seen) => (seen.continued ? { text: `Plan for ${text}` } : { text: 'Which quarter?', state: 'input-required' }),
    });
    const agent = fromRemoteAgent({ name: 'planner', transport: { kind: 'a2a', url: server.url }, onInputRequired: () => 'Q3' });
    const orch = new Orchestrator({ policy: { maxSteps: 10, onLimit: { maxSteps: 'pause' } } });
    for (const end of ['raise', 'cancel'] as const) {
      const paused = deferred();
      const handle = orch.start({ agent, task: 'Plan the launch', policy: { maxSteps: 1 } });
      handle.events$.subscribe((event) => {
        if (event.type === 'BUDGET_EXHAUSTED') paused.resolve();
      });
      await paused.promise;
      const taskId = server.received.at(-1)?.taskId as string;
      expect(server.taskState(taskId)).toBe('input-required');
      if (end === 'raise') {
        handle.raise({ maxSteps: 2 });
        const report = await handle.report;
        expect(report.finalOutput).toBe('Plan for Q3');
        expect(server.taskState(taskId)).toBe('completed');
        expect(server.cancelRequests).toEqual([]);
      } else {
        handle.cancel('not worth it');
        expect((await handle.report).termination.reason).toBe('cancelled');
        await expectCanceled(server, taskId);
      }
    }
  });

  it('a task that completed is never sent tasks/cancel', { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await a2aAgent({
      name: 'planner',
      answer: (text, seen) => (seen.continued ? { text: `Plan for ${text}` } : { text: 'Which quarter?', state: 'input-required' }),
    });
    const orch = new Orchestrator();
    const completed = await orch.run({ agent: fromRemoteAgent({ name: 'planner', transport: { kind: 'a2a', url: server.url }, onInputRequired: () => 'Q3' }), task: 'Plan' });
    expect(completed.finalOutput).toBe('Plan for Q3');
    const completedTask = server.received[0]?.taskId as string;
    expect(server.taskState(completedTask)).toBe('completed');
    // A later run on the same server that leaves its task waiting: its tasks/cancel is the only one.
    const waiting = await orch.run({ agent: fromRemoteAgent({ name: 'planner', transport: { kind: 'a2a', url: server.url } }), task: 'Plan' });
    expect(waiting.error).toMatchObject({ details: { reason: 'input_required' } });
    await expectCanceled(server, server.received[2]?.taskId);
    expect(server.cancelRequests).not.toContain(completedTask);
  });
});
