import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../src/cli/exitCodes.js';
import { runCli } from '../src/cli/program.js';
import { startServer, type StartedServer } from '../src/server/index.js';
import { captureIo } from './cliIo.js';

const KEY = 'cli-runs-key';
let server: StartedServer;
let succeededId: string;
let failedId: string;

async function runOnServer(agent: string): Promise<string> {
  const response = await fetch(`${server.url}/run`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    body: JSON.stringify({ agent, task: 'x' }),
  });
  const report = (await response.json()) as { executionId: string };
  return report.executionId;
}

beforeAll(async () => {
  server = await startServer({
    agents: {
      echo: (task: string) => ({ output: `echo: ${task}` }),
      broken: () => {
        throw new Error('the agent broke');
      },
    },
    apiKeys: [KEY],
    port: 0,
    dashboard: false,
  });
  succeededId = await runOnServer('echo');
  failedId = await runOnServer('broken');
});

afterAll(async () => {
  await server.close();
});

describe('oao runs against a server that requires a key', () => {
  it('a 401 says how to pass a key', async () => {
    const t = captureIo();
    expect(await runCli(['runs', '--server', server.url], t.io)).toBe(ExitCode.SERVER_ERROR);
    expect(t.err()).toContain('The server answered 401');
    expect(t.err()).toContain('Pass a key with --api-key <key> or set OAO_API_KEY');
    expect(t.err()).toContain('[OAO_ERR_UNAUTHORIZED]');
  });

  it('a wrong key says which key was sent and where the server takes its keys', async () => {
    const t = captureIo();
    expect(await runCli(['runs', '--server', server.url, '--api-key', 'wrong'], t.io)).toBe(ExitCode.SERVER_ERROR);
    expect(t.err()).toContain('is not one the server accepts (its --api-key or OAO_API_KEYS)');
  });

  it('reads the key from --api-key or OAO_API_KEY', async () => {
    const flag = captureIo();
    expect(await runCli(['runs', '--server', server.url, '--api-key', KEY], flag.io)).toBe(ExitCode.OK);
    expect(flag.out()).toContain(succeededId);
    const env = captureIo({ env: { OAO_API_KEY: KEY } });
    expect(await runCli(['runs', '--server', server.url], env.io)).toBe(ExitCode.OK);
    expect(env.out()).toContain(failedId);
  });
});

describe('oao runs --server with --since and --status interrupted', () => {
  it('keeps the runs that started at or after --since, as with --store', async () => {
    const all = captureIo({ env: { OAO_API_KEY: KEY } });
    expect(await runCli(['runs', '--server', server.url, '--since', '1h', '--json'], all.io)).toBe(ExitCode.OK);
    const listed = JSON.parse(all.out()) as { runs: { executionId: string }[] };
    expect(listed.runs.map((run) => run.executionId).sort()).toEqual([failedId, succeededId].sort());

    const later = captureIo({ env: { OAO_API_KEY: KEY } });
    expect(await runCli(['runs', '--server', server.url, '--since', new Date(Date.now() + 60_000).toISOString(), '--json'], later.io)).toBe(ExitCode.OK);
    expect(JSON.parse(later.out())).toEqual({ runs: [], total: 0, nextCursor: null });

    const text = captureIo({ env: { OAO_API_KEY: KEY } });
    expect(await runCli(['runs', '--server', server.url, '--since', new Date(Date.now() + 60_000).toISOString()], text.io)).toBe(ExitCode.OK);
    expect(text.out()).toBe('No runs.\n');
  });

  it('asks the server for interrupted runs (none here)', async () => {
    const t = captureIo({ env: { OAO_API_KEY: KEY } });
    expect(await runCli(['runs', '--server', server.url, '--status', 'interrupted'], t.io), t.err()).toBe(ExitCode.OK);
    expect(t.out()).toBe('No runs.\n');
  });
});

describe('oao runs show', () => {
  it('exits 1 for a FAILED run, as oao run does, and 0 for a successful one', async () => {
    const failed = captureIo({ env: { OAO_API_KEY: KEY } });
    expect(await runCli(['runs', 'show', failedId, '--server', server.url], failed.io)).toBe(ExitCode.RUN_FAILED);
    expect(failed.out()).toContain('FAILED  error');
    expect(failed.out()).toContain('the agent broke');
    const failedJson = captureIo({ env: { OAO_API_KEY: KEY } });
    expect(await runCli(['runs', 'show', failedId, '--server', server.url, '--json'], failedJson.io)).toBe(ExitCode.RUN_FAILED);
    expect(JSON.parse(failedJson.out())).toMatchObject({ executionId: failedId, status: 'FAILED' });

    const succeeded = captureIo({ env: { OAO_API_KEY: KEY } });
    expect(await runCli(['runs', 'show', succeededId, '--server', server.url], succeeded.io)).toBe(ExitCode.OK);
    expect(succeeded.out()).toContain('SUCCESS');
  });
});

describe('--json errors', () => {
  it('a server error is one JSON line on stderr, and stdout stays empty', async () => {
    const t = captureIo();
    expect(await runCli(['runs', '--server', server.url, '--json'], t.io)).toBe(ExitCode.SERVER_ERROR);
    expect(t.out()).toBe('');
    const lines = t.err().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] as string)).toMatchObject({
      error: { code: 'OAO_ERR_UNAUTHORIZED', status: 401, exitCode: ExitCode.SERVER_ERROR, message: expect.stringContaining('OAO_API_KEY') },
    });
  });

  it('an unreachable server, an unknown run and bad usage are JSON too', async () => {
    const unreachable = captureIo();
    expect(await runCli(['runs', '--server', 'http://127.0.0.1:9', '--json'], unreachable.io)).toBe(ExitCode.UNREACHABLE);
    expect(JSON.parse(unreachable.err())).toMatchObject({ error: { code: 'OAO_ERR_SERVER_UNREACHABLE', exitCode: ExitCode.UNREACHABLE } });

    const missing = captureIo({ env: { OAO_API_KEY: KEY } });
    expect(await runCli(['runs', 'show', 'no-such-run', '--server', server.url, '--json'], missing.io)).toBe(ExitCode.SERVER_ERROR);
    expect(JSON.parse(missing.err())).toMatchObject({ error: { code: 'OAO_ERR_RUN_NOT_FOUND', status: 404 } });

    for (const argv of [
      ['run', 'examples/agents.ts', '--task', 'x', '--json'],
      ['run', 'examples/agents.ts', '--agent', 'echo', '--task', 'x', '--bogus', '--json'],
      ['run', 'examples/agents.ts', '--agent', 'echo', '--task', 'x', '--max-steps', '0', '--json'],
      ['runs', '--server', 'not a url', '--json'],
    ]) {
      const usage = captureIo();
      expect(await runCli(argv, usage.io), argv.join(' ')).toBe(ExitCode.USAGE);
      expect(usage.out(), argv.join(' ')).toBe('');
      const lines = usage.err().trim().split('\n');
      expect(lines, argv.join(' ')).toHaveLength(1);
      expect(JSON.parse(lines[0] as string), argv.join(' ')).toMatchObject({ error: { code: 'OAO_ERR_CLI_USAGE', exitCode: ExitCode.USAGE } });
    }
  });
});
