import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { OaoError, Orchestrator, createMemoryStore, type AgentContext } from '../../src/index.js';
import { mcpTools } from '../../src/adapters/mcp/index.js';
import { buildMcpDemoServer, mcpServerLog, type McpServerLog } from '../fixtures/mcpDemoServer.js';
import { deferred, expectValidEvents, expectValidReport, settlesAtOnce } from '../helpers.js';
import { recording } from './fixtures.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const TEST_TIMEOUT_MS = 15_000;

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close().catch(() => {});
});

/** A real MCP server (the SDK's McpServer) and a client connected to it in process. */
async function inProcess(): Promise<{ client: Client; log: McpServerLog }> {
  const log = mcpServerLog();
  const server = buildMcpDemoServer(log);
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  const client = new Client({ name: 'oao-test', version: '1.0.0' });
  await client.connect(clientSide);
  closers.push(() => client.close(), () => server.close());
  return { client, log };
}

/** An agent that calls the given tools one after another and returns their results. */
function sequence(calls: readonly [string, unknown][], options: { usagePerCall?: number; catchErrors?: boolean } = {}) {
  return {
    name: 'mcp-caller',
    async invoke(_task: unknown, ctx: AgentContext) {
      const results: unknown[] = [];
      for (const [tool, args] of calls) {
        if (options.usagePerCall !== undefined) ctx.usage({ input: options.usagePerCall, output: 0 });
        try {
          results.push(await ctx.callTool(tool, args));
        } catch (error) {
          if (options.catchErrors !== true) throw error;
          results.push(OaoError.isInstance(error) ? error.code : error instanceof Error ? error.message : String(error));
        }
      }
      return { output: results as never };
    },
  };
}

describe('mcpTools over an in-process MCP server', () => {
  it('keeps names, descriptions and schemas, and runs allowed calls through the policy', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { client, log } = await inProcess();
    const tools = await mcpTools(client);
    expect(Object.keys(tools).sort()).toEqual(['add', 'broken', 'search', 'slow']);
    const search = tools.search;
    expect([search?.mcpName, search?.title, search?.description]).toEqual(['search', 'Search', 'Searches the notes']);
    expect(tools.search?.name).toBe('search');
    expect(tools.search?.inputSchema).toMatchObject({ type: 'object', properties: { q: { type: 'string' } }, required: ['q'] });
    expect(tools.add?.outputSchema).toMatchObject({ type: 'object', properties: { sum: { type: 'number' } } });
    expect(tools.add?.annotations).toEqual({ readOnlyHint: true });

    const orch = new Orchestrator();
    const events = recording(orch);
    const report = await orch.run({ agent: sequence([['search', { q: 'xstate' }], ['add', { a: 2, b: 3 }]]), tools, task: 't' });
    expectValidReport(report);
    expectValidEvents(events);
    expect(report.status).toBe('SUCCESS');
    expect(report.finalOutput).toEqual(['3 notes about xstate', { sum: 5 }]);
    expect(report.toolUsage).toEqual({ total: 2, byTool: { search: 1, add: 1 } });
    expect(log.calls).toEqual(['search', 'add']);
    expect(events.filter((e) => e.type === 'TOOL_RESULT').map((e) => e.payload)).toMatchObject([
      { tool: 'search', ok: true, result: '3 notes about xstate' },
      { tool: 'add', ok: true, result: { sum: 5 } },
    ]);
  });

  it('validates arguments by the input schema before the server is contacted', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { client, log } = await inProcess();
    const tools = await mcpTools(client);
    const report = await new Orchestrator().run({
      agent: sequence([['search', { q: '' }], ['search', { q: 'ok', limit: 99 }], ['add', { a: 'two', b: 3 }], ['search', undefined]], { catchErrors: true }),
      tools,
      task: 't',
    });
    expect(report.status).toBe('SUCCESS');
    expect(report.finalOutput).toEqual(['OAO_ERR_INVALID_TOOL_ARGS', 'OAO_ERR_INVALID_TOOL_ARGS', 'OAO_ERR_INVALID_TOOL_ARGS', 'OAO_ERR_INVALID_TOOL_ARGS']);
    expect(log.calls).toEqual([]);
    const error = await tools.add?.({ a: 'two', b: 3 }, { signal: new AbortController().signal, executionId: 'x', callId: 't1', tool: 'add' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'OAO_ERR_INVALID_TOOL_ARGS', details: { tool: 'add' } });
    expect((error as Error).message).toMatch(/Invalid arguments for tool "add": .*a/);
  });

  it('maxToolCalls: calls past the limit never reach the server', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { client, log } = await inProcess();
    const tools = await mcpTools(client);
    const calls: [string, unknown][] = [['search', { q: 'a' }], ['search', { q: 'b' }], ['search', { q: 'c' }]];
    const report = await new Orchestrator({ policy: { maxToolCalls: 2 } }).run({ agent: sequence(calls), tools, task: 't' });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tool_calls' });
    expect(report.toolUsage.total).toBe(2);
    expect(log.calls).toEqual(['search', 'search']);
  });

  it('a denied tool never reaches the server, even when the agent catches the refusal', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { client, log } = await inProcess();
    const tools = await mcpTools(client);
    const orch = new Orchestrator({ policy: { tools: { deny: ['add'] } } });
    const events = recording(orch);
    const report = await orch.run({ agent: sequence([['add', { a: 1, b: 1 }], ['search', { q: 'x' }]], { catchErrors: true }), tools, task: 't' });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'tool_denied' });
    expect(log.calls).toEqual([]);
    expect(events.find((e) => e.type === 'TOOL_DENIED')?.payload).toMatchObject({ tool: 'add', args: { a: 1, b: 1 } });
  });

  it('a per-tool timeout aborts the call, cancels it on the server and leaves the run going', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { client, log } = await inProcess();
    const clock = new SimulatedClock();
    const tools = await mcpTools(client, { toolTimeoutMs: { slow: 5_000 }, clock });
    const started = deferred();
    const cancelled = deferred();
    log.onSlowStarted = () => started.resolve();
    log.onCancelled = () => cancelled.resolve();
    const orch = new Orchestrator({ clock });
    const events = recording(orch);
    const handle = orch.start({ agent: sequence([['slow', { job: 'index' }], ['search', { q: 'after' }]], { catchErrors: true }), tools, task: 't' });
    await started.promise;
    clock.increment(4_999);
    expect(await settlesAtOnce(handle.report)).toBe(false);
    clock.increment(1);
    await cancelled.promise;
    const report = await handle.report;
    expect(report.status).toBe('SUCCESS');
    expect(report.finalOutput).toEqual(['OAO_ERR_TOOL_TIMEOUT', '3 notes about after']);
    expect(log.cancelled).toEqual(['slow']);
    expect(events.find((e) => e.type === 'TOOL_RESULT' && e.payload.tool === 'slow')?.payload).toMatchObject({
      ok: false,
      error: { code: 'OAO_ERR_TOOL_TIMEOUT' },
    });
  });

  it('token budget: usage that crosses it ends the run; the next call never reaches the server', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { client, log } = await inProcess();
    const tools = await mcpTools(client);
    const calls: [string, unknown][] = [['search', { q: 'a' }], ['search', { q: 'b' }], ['search', { q: 'c' }]];
    const report = await new Orchestrator({ policy: { maxTokens: 50 } }).run({ agent: sequence(calls, { usagePerCall: 20 }), tools, task: 't' });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens' });
    expect(report.tokenUsage.total).toBe(60);
    expect(log.calls).toEqual(['search', 'search']);
  });

  it('cancelling the run cancels the running request on the server', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { client, log } = await inProcess();
    const tools = await mcpTools(client);
    const started = deferred();
    const cancelled = deferred();
    log.onSlowStarted = () => started.resolve();
    log.onCancelled = () => cancelled.resolve();
    const handle = new Orchestrator().start({ agent: sequence([['slow', { job: 'index' }]]), tools, task: 't' });
    await started.promise;
    handle.cancel('user left');
    expect(await settlesAtOnce(handle.report)).toBe(true);
    expect((await handle.report).termination).toEqual({ reason: 'cancelled', message: 'user left' });
    await cancelled.promise;
    expect(log.cancelled).toEqual(['slow']);
  });

  it('a result the server flags as an error rejects the call with its text', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { client } = await inProcess();
    const tools = await mcpTools(client);
    const orch = new Orchestrator();
    const events = recording(orch);
    const report = await orch.run({ agent: sequence([['broken', {}]], { catchErrors: true }), tools, task: 't' });
    expect(report.finalOutput).toEqual(['the backend is down']);
    expect(events.find((e) => e.type === 'TOOL_RESULT')?.payload).toMatchObject({ ok: false, error: { name: 'McpToolError', message: 'the backend is down' } });
  });

  it('include, prefix and raw results; bad options are typed errors', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { client } = await inProcess();
    const tools = await mcpTools(client, { include: ['add'], prefix: 'calc_', result: 'raw' });
    expect(Object.keys(tools)).toEqual(['calc_add']);
    const report = await new Orchestrator().run({ agent: sequence([['calc_add', { a: 1, b: 2 }]]), tools, task: 't' });
    expect(report.finalOutput).toEqual([{ content: [{ type: 'text', text: '3' }], structuredContent: { sum: 3 } }]);
    expect(report.toolUsage.byTool).toEqual({ calc_add: 1 });
    await expect(mcpTools(client, { include: ['nope'] })).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'include', missing: ['nope'] } });
    await expect(mcpTools(client, { toolTimeoutMs: 0 })).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'toolTimeoutMs' } });
    await expect(mcpTools(client, { result: 'text' as never })).rejects.toMatchObject({ details: { field: 'result' } });
    await expect(mcpTools({} as never)).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'client' } });
  });

  it('verify-replay serves the recorded results: the server is not called again', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { client, log } = await inProcess();
    const tools = await mcpTools(client);
    const orch = new Orchestrator({ store: createMemoryStore() });
    const agent = sequence([['search', { q: 'x' }], ['add', { a: 1, b: 1 }]]);
    const report = await orch.run({ agent, tools, task: 't' });
    expect(log.calls).toEqual(['search', 'add']);
    await client.close();
    const replayed = await orch.replay(report.executionId, { agent, verify: true });
    expect(replayed.finalOutput).toEqual(['3 notes about x', { sum: 2 }]);
    expect(log.calls).toEqual(['search', 'add']);
  });
});

describe('mcpTools over stdio (a child process)', () => {
  async function child(): Promise<{ client: Client; transport: StdioClientTransport; lines: string[]; seen: (line: string) => Promise<void> }> {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: ['--import', 'tsx', 'test/fixtures/mcpStdioServer.ts'],
      cwd: root,
      stderr: 'pipe',
    });
    const lines: string[] = [];
    const waiters: { line: string; resolve: () => void }[] = [];
    (transport.stderr as Readable).on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        lines.push(line);
        for (const w of waiters.filter((w) => w.line === line)) w.resolve();
      }
    });
    const client = new Client({ name: 'oao-test', version: '1.0.0' });
    await client.connect(transport);
    closers.push(() => client.close());
    const seen = (line: string) =>
      lines.includes(line) ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ line, resolve }));
    return { client, transport, lines, seen };
  }

  it('lists and calls the tools of a server in another process, governed', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { client, lines, seen } = await child();
    const tools = await mcpTools(client);
    expect(Object.keys(tools).sort()).toEqual(['add', 'broken', 'search', 'slow']);
    const report = await new Orchestrator({ policy: { maxToolCalls: 2 } }).run({
      agent: sequence([['add', { a: 20, b: 22 }], ['search', { q: 'stdio' }], ['search', { q: 'over' }]]),
      tools,
      task: 't',
    });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tool_calls' });
    expect(report.toolUsage.byTool).toEqual({ add: 1, search: 1 });
    await seen('call search'); // the child's stderr may trail its answers
    expect(lines.filter((l) => l.startsWith('call '))).toEqual(['call add', 'call search']);
  });

  it('cancelling the run cancels the request in the child process', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { client, seen } = await child();
    const tools = await mcpTools(client);
    const handle = new Orchestrator().start({ agent: sequence([['slow', { job: 'crawl' }]]), tools, task: 't' });
    await seen('slow-started');
    handle.cancel('stop');
    expect((await handle.report).termination.reason).toBe('cancelled');
    await seen('cancelled slow');
  });

  it('a server killed with SIGKILL mid-call fails the call and the run, instead of hanging', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { client, transport, seen } = await child();
    const tools = await mcpTools(client);
    const handle = new Orchestrator().start({ agent: sequence([['slow', { job: 'crawl' }]]), tools, task: 't' });
    await seen('slow-started');
    process.kill(transport.pid as number, 'SIGKILL');
    const report = await handle.report;
    expect(report.status).toBe('FAILED');
    expect(report.termination.reason).toBe('error');
    expect(report.error?.message).toMatch(/closed/i);
  });
});
