// `oao approvals`, `oao approve` and `oao deny` against a real server on port 0.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../src/cli/exitCodes.js';
import { runCli } from '../src/cli/program.js';
import type { AgentContext, ExecutionReport } from '../src/index.js';
import { startServer, type StartedServer } from '../src/server/index.js';
import { captureIo } from './cliIo.js';

const OPS = 'cli-ops-key';
const VIEWER = 'cli-viewer-key';
let server: StartedServer;
const sent: unknown[] = [];

const mailer = async (task: string, ctx: AgentContext) => ({ output: await ctx.callTool('sendEmail', { to: task, body: 'hi' }) });

beforeAll(async () => {
  server = await startServer({
    agents: { mailer },
    tools: { sendEmail: (args: unknown) => (sent.push(args), 'sent') },
    policy: { tools: { approve: ['sendEmail'] } },
    apiKeys: [{ name: 'ops', key: OPS }, { name: 'viewer', key: VIEWER }],
    approverKeys: ['ops'],
    port: 0,
    dashboard: false,
  });
});

afterAll(async () => {
  await server.close();
});

async function startWaiting(executionId: string, to: string): Promise<void> {
  const started = await fetch(`${server.url}/runs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${OPS}` },
    body: JSON.stringify({ agent: 'mailer', task: to, executionId }),
  });
  expect(started.status).toBe(202);
  for (;;) {
    const listed = (await (await fetch(`${server.url}/approvals`, { headers: { authorization: `Bearer ${OPS}` } })).json()) as { approvals: { executionId: string }[] };
    if (listed.approvals.some((approval) => approval.executionId === executionId)) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function reportOf(executionId: string): Promise<ExecutionReport> {
  for (;;) {
    const state = (await (await fetch(`${server.url}/runs/${executionId}`, { headers: { authorization: `Bearer ${OPS}` } })).json()) as { report: ExecutionReport | null };
    if (state.report !== null) return state.report;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function cli(argv: string[], key = OPS) {
  const t = captureIo({ env: { OAO_API_KEY: key } });
  const code = await runCli(argv, t.io);
  return { code, out: t.out(), err: t.err() };
}

describe('oao approvals, approve and deny', () => {
  it('lists the waiting calls as a table (or JSON), and says so when there are none', { timeout: 20_000 }, async () => {
    const empty = await cli(['approvals', '--server', server.url]);
    expect(empty).toMatchObject({ code: ExitCode.OK, out: 'No tool calls are waiting for approval.\n' });
    await startWaiting('cli-list', 'a@example.com');
    const text = await cli(['approvals', '--server', server.url, '--no-color'], VIEWER);
    expect(text.code).toBe(ExitCode.OK);
    const [header, row] = text.out.split('\n');
    expect(header?.split(/\s{2,}/)).toEqual(['run', 'agent', 'call', 'tool', 'step', 'waiting since', 'args']);
    expect(row).toContain('cli-list');
    expect(row).toContain('sendEmail');
    expect(row).toContain('{"to":"a@example.com","body":"hi"}');
    expect(text.out).toContain('oao approve <run> <call>');
    const json = await cli(['approvals', '--server', server.url, '--json']);
    expect(JSON.parse(json.out)).toEqual({
      approvals: [{ executionId: 'cli-list', agentName: 'mailer', callId: 't1', tool: 'sendEmail', args: { to: 'a@example.com', body: 'hi' }, step: 1, requestedAt: expect.any(String) }],
    });
    expect((await cli(['deny', 'cli-list', 't1', '--server', server.url])).code).toBe(ExitCode.OK);
  });

  it('approve with --reason, --by and --args: the tool runs with the edit, the record names the person and the key', { timeout: 20_000 }, async () => {
    await startWaiting('cli-approve', 'b@example.com');
    const done = await cli(['approve', 'cli-approve', 't1', '--server', server.url, '--reason', 'checked', '--by', 'alice', '--args', '{"to":"team@example.com","body":"hi all"}']);
    expect(done.err).toBe('');
    expect(done).toMatchObject({ code: ExitCode.OK, out: 'Approved tool call t1 of run cli-approve by alice (key ops): the tool runs and the run goes on.\n' });
    const report = await reportOf('cli-approve');
    expect(report.status).toBe('SUCCESS');
    expect(report.approvals?.[0]).toMatchObject({ decision: 'approved', by: 'alice (key ops)', reason: 'checked', args: { to: 'team@example.com', body: 'hi all' } });
    expect(sent.at(-1)).toEqual({ to: 'team@example.com', body: 'hi all' });
  });

  it('deny --json prints the decision; the run ends policy_violation', { timeout: 20_000 }, async () => {
    await startWaiting('cli-deny', 'c@example.com');
    const denied = await cli(['deny', 'cli-deny', 't1', '--server', server.url, '--reason', 'wrong person', '--json']);
    expect(denied.code).toBe(ExitCode.OK);
    expect(JSON.parse(denied.out)).toEqual({ executionId: 'cli-deny', callId: 't1', decision: 'denied', by: 'ops', reason: 'wrong person', applied: 'live' });
    expect((await reportOf('cli-deny')).termination).toMatchObject({ reason: 'policy_violation', rule: 'approval_denied' });
  });

  it("the server's refusals exit 4 with their code: decided 409, unknown call 404, a key that may not decide 403", { timeout: 20_000 }, async () => {
    await startWaiting('cli-errors', 'd@example.com');
    const forbidden = await cli(['approve', 'cli-errors', 't1', '--server', server.url], VIEWER);
    expect(forbidden.code).toBe(ExitCode.SERVER_ERROR);
    expect(forbidden.err).toContain('[OAO_ERR_FORBIDDEN]');
    const unknown = await cli(['approve', 'cli-errors', 't7', '--server', server.url, '--json']);
    expect(unknown.code).toBe(ExitCode.SERVER_ERROR);
    expect(JSON.parse(unknown.err)).toEqual({ error: expect.objectContaining({ code: 'OAO_ERR_UNKNOWN_APPROVAL', status: 404, exitCode: ExitCode.SERVER_ERROR }) });
    expect((await cli(['approve', 'cli-errors', 't1', '--server', server.url])).code).toBe(ExitCode.OK);
    const again = await cli(['deny', 'cli-errors', 't1', '--server', server.url]);
    expect(again.code).toBe(ExitCode.SERVER_ERROR);
    expect(again.err).toContain('[OAO_ERR_ALREADY_DECIDED]');
    const noRun = await cli(['deny', 'no-such-run', 't1', '--server', server.url]);
    expect(noRun.err).toContain('[OAO_ERR_RUN_NOT_FOUND]');
    const noKey = await cli(['approvals', '--server', server.url], '');
    expect(noKey.code).toBe(ExitCode.SERVER_ERROR);
  });

  it('bad usage exits 2 with OAO_ERR_CLI_USAGE and sends nothing: --args that is not JSON, --args on deny, a missing call id', async () => {
    const notJson = await cli(['approve', 'r', 't1', '--server', server.url, '--args', '{to:', '--json']);
    expect(notJson.code).toBe(ExitCode.USAGE);
    expect(JSON.parse(notJson.err).error).toMatchObject({ code: 'OAO_ERR_CLI_USAGE' });
    expect(JSON.parse(notJson.err).error.message).toContain('--args must be JSON');
    expect((await cli(['deny', 'r', 't1', '--server', server.url, '--args', '{}'])).code).toBe(ExitCode.USAGE);
    expect((await cli(['approve', 'r', '--server', server.url])).code).toBe(ExitCode.USAGE);
    expect((await cli(['approvals', '--server', 'ftp://x'])).code).toBe(ExitCode.USAGE);
  });

  it('a server that cannot be reached exits 3', async () => {
    const closed = await cli(['approvals', '--server', 'http://127.0.0.1:9']);
    expect(closed.code).toBe(ExitCode.UNREACHABLE);
    expect(closed.err).toContain('[OAO_ERR_SERVER_UNREACHABLE]');
  });
});
