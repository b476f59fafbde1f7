import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Orchestrator, type AgentContext } from '../src/index.js';
import { createSqliteStore } from '../src/store/sqlite/index.js';

/**
 * A run never continues without its log, shown with a real SQLite database that cannot be
 * written (opened read-only: a write fails with SQLITE_READONLY even for root). Making a live
 * database's WAL files immutable instead kills the process (SQLite maps its -shm file), so the
 * store's own tests make only a closed file immutable.
 */

let dir: string | undefined;
afterEach(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

const worker = (bodies: { count: number }) => ({
  agent: async (_task: string, ctx: AgentContext) => {
    await ctx.tools.work!({});
    await ctx.tools.work!({});
    return 'should not finish';
  },
  tools: { work: () => (bodies.count += 1) },
});

describe('a run whose store cannot be written', () => {
  it('ends FAILED with OAO_ERR_STORE before its first tool body on a read-only database', async () => {
    dir = await mkdtemp(join(tmpdir(), 'oao-fault-'));
    const path = join(dir, 'runs.db');
    createSqliteStore({ path }).close();
    const bodies = { count: 0 };
    const orch = new Orchestrator({ store: createSqliteStore({ path, readonly: true }) });
    const report = await orch.run({ ...worker(bodies), task: 'x' });
    expect(report.status).toBe('FAILED');
    expect(report.error?.code).toBe('OAO_ERR_STORE');
    expect(bodies.count).toBe(0);
  });
});
