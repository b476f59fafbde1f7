import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { canonicalJson, MultiAgentOrchestrator, Orchestrator, type AgentContext } from '../src/index.js';
import { createMemoryStore } from '../src/store/createMemoryStore.js';
import { createSqliteStore } from '../src/store/sqlite/index.js';

let dir: string | undefined;
afterEach(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('leases of recorded runs', () => {
  it('a live run is leased and running; a finished one has released its lease', async () => {
    const store = createMemoryStore();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const orch = new Orchestrator({ store, owner: 'me', leaseTtlMs: 60_000 });
    const handle = orch.start({ agent: async () => (await gate, 'ok'), task: 'x', executionId: 'leased' });
    await new Promise((resolve) => setImmediate(resolve));
    expect(store.get('leased')?.status).toBe('running');
    // Another owner cannot take a live run.
    expect(store.acquireLease('leased', 'intruder', 1_000)).toBeUndefined();
    release();
    await handle.report;
    expect(store.get('leased')?.status).toBe('SUCCESS');
    // Released: another owner may take it at once.
    expect(store.acquireLease('leased', 'someone', 1_000)?.owner).toBe('someone');
  });

  it('leases a run with its first append and releases it with its last: no lease call of its own', async () => {
    const inner = createMemoryStore();
    const calls: string[] = [];
    const store = new Proxy(inner, {
      get(target, property) {
        const value: unknown = Reflect.get(target, property, target);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          calls.push(String(property));
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const orch = new Orchestrator({ store, owner: 'me', leaseTtlMs: 60_000 });
    await orch.run({ agent: (task: string) => task, task: 'x', executionId: 'trivial' });
    // The whole log of a trivial run is one batch: one write.
    expect(calls).toEqual(['append']);
    calls.length = 0;
    const tooled = await orch.run({
      agent: async (_task: string, ctx: AgentContext) => String(await ctx.callTool('probe', {})),
      task: 'y',
      executionId: 'tooled',
      tools: { probe: () => store.get('tooled')?.status },
    });
    // The TOOL_CALL is written ahead of the tool body, which saw the run leased and running.
    expect(tooled.finalOutput).toBe('running');
    const writes = calls.filter((call) => call !== 'get');
    expect(writes.length).toBeGreaterThanOrEqual(2);
    expect(new Set(writes)).toEqual(new Set(['append']));
    for (const id of ['trivial', 'tooled']) {
      expect(store.get(id)?.status).toBe('SUCCESS');
      expect(store.acquireLease(id, 'someone', 1_000)?.token).toBe(2);
    }
  });

  /** Starts the child on a new file, waits for its line, kills it with SIGKILL, and opens the file as a later process would. */
  async function killedWhileLive(executionId: string, mode: 'tool' | 'step'): Promise<ReturnType<typeof createSqliteStore>> {
    dir = await mkdtemp(join(tmpdir(), 'oao-lease-'));
    const path = join(dir, 'runs.db');
    const child = spawn(process.execPath, ['--conditions=oao-source', '--import', 'tsx', 'test/fixtures/durableRunChild.ts', path, executionId, '500', mode], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const lines = createInterface({ input: child.stdout });
    const live = await new Promise<string>((resolve, reject) => {
      lines.on('line', (line) => resolve(line));
      child.on('exit', (code) => reject(new Error(`child exited early (${code})`)));
    });
    expect(JSON.parse(live)).toEqual({ live: executionId });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    // Its clock is past the lease's expiry.
    return createSqliteStore({ path, now: () => Date.now() + 60_000 });
  }

  it('a run whose process was killed lists as interrupted once its lease expires', { timeout: 30_000 }, async () => {
    const later = await killedWhileLive('doomed', 'tool');
    expect(later.get('doomed')?.status).toBe('interrupted');
    const events = later.events('doomed');
    expect(events.at(-1)?.type).toBe('TOOL_CALL');
    expect(later.list({ status: 'interrupted' }).runs.map((r) => r.executionId)).toEqual(['doomed']);
    // The dead owner's lease has expired: a new owner can take the run over, with a newer token.
    expect(later.acquireLease('doomed', 'heir', 1_000)?.token).toBeGreaterThan(1);
    later.close();
  });

  it('a run killed while its agent waits, with no tool call to force a write, is stored up to its step and lists as interrupted', { timeout: 30_000 }, async () => {
    const later = await killedWhileLive('waiting', 'step');
    expect(later.events('waiting').at(-1)?.type).toBe('STEP_START');
    expect(later.get('waiting')?.status).toBe('interrupted');
    later.close();
  });
});

describe('supervised batches in a store', () => {
  it('records every child run; each replays to its report', async () => {
    const store = createMemoryStore();
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 2, store, budget: { maxSteps: 3 } });
    const agent = async (task: string, ctx: AgentContext) => {
      await ctx.callTool('echo', { task });
      return task;
    };
    const reports = await multi.map(agent, ['a', 'b', 'c', 'd'], { tools: { echo: (args: unknown) => args } });
    const orch = new Orchestrator({ store });
    for (const report of reports) {
      expect(store.report(report.executionId)).toBeDefined();
      expect(canonicalJson(await orch.replay(report.executionId))).toBe(canonicalJson(report));
    }
    // The shared step budget stopped part of the batch: those runs are recorded and replay too.
    expect(reports.filter((r) => r.status === 'SUCCESS').length).toBeLessThanOrEqual(3);
    expect(reports.some((r) => r.termination.scope === 'shared')).toBe(true);
  });
});
