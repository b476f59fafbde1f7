import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { ExitCode } from '../src/cli/exitCodes.js';
import { runCli } from '../src/cli/program.js';
import { serveIo } from './cliIo.js';

describe('oao serve --metrics --inspect --no-dashboard', () => {
  it('serves /metrics, streams runs to the inspector and leaves the dashboard out', async () => {
    const endpoint = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((resolve) => endpoint.once('listening', resolve));
    const messages: { type: string; name?: string }[] = [];
    endpoint.on('connection', (socket) => socket.on('message', (data: Buffer) => messages.push(JSON.parse(data.toString('utf8')))));
    const inspectUrl = `ws://127.0.0.1:${(endpoint.address() as AddressInfo).port}`;

    const cli = serveIo();
    const exit = runCli(['serve', 'examples/agents.ts', '--store', 'memory', '--port', '0', '--metrics', '--inspect', inspectUrl, '--no-dashboard'], cli.io);
    const base = await cli.listening;
    expect(cli.out()).toContain(`metrics at ${base}/metrics`);
    expect(cli.out()).toContain(`inspector at ${inspectUrl}`);
    expect(cli.out()).not.toContain('dashboard at');

    const report = (await (await fetch(`${base}/run`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ agent: 'echo', task: 'observed' }),
    })).json()) as { executionId: string; status: string };
    expect(report.status).toBe('SUCCESS');
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('oao_runs_total{status="SUCCESS",agent="echo",reason="completed"} 1');
    expect((await fetch(`${base}/dashboard/`)).status).toBe(404);

    const until = Date.now() + 5_000;
    while (!messages.some((m) => m.type === '@xstate.actor' && m.name === report.executionId) && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(messages.some((m) => m.type === '@xstate.actor' && m.name === report.executionId)).toBe(true);

    cli.stop();
    expect(await exit).toBe(ExitCode.OK);
    await new Promise((resolve) => endpoint.close(resolve));
  });

  it('refuses an inspector URL that is not ws:// as bad usage', async () => {
    const cli = serveIo();
    expect(await runCli(['serve', 'examples/agents.ts', '--inspect', 'http://localhost:8080'], cli.io)).toBe(ExitCode.USAGE);
    expect(cli.err()).toMatch(/inspector must be a ws:\/\/ or wss:\/\/ URL, got "http:\/\/localhost:8080"/);
  });
});
