import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { ExitCode } from '../src/cli/exitCodes.js';
import { runCli } from '../src/cli/program.js';
import { serveIo } from './cliIo.js';

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `read()` satisfies `done`, or fails after `ms` with what it last read. */
async function until(read: () => string, done: (text: string) => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done(read())) {
    if (Date.now() > deadline) throw new Error(`timed out; output so far:\n${read()}`);
    await sleep(20);
  }
}

const inspectorLines = (text: string) => text.split('\n').filter((line) => line.startsWith('inspector:'));

describe('oao serve --inspect with no inspector listening', () => {
  it('logs the failure once, then only when the connection changes', { timeout: 30_000 }, async () => {
    const port = await freePort();
    const url = `ws://127.0.0.1:${port}`;
    const cli = serveIo();
    const exit = runCli(['serve', 'examples/agents.ts', '--store', 'memory', '--port', '0', '--no-dashboard', '--inspect', url], cli.io);
    await cli.listening;
    await until(cli.err, (text) => inspectorLines(text).length > 0, 5_000);
    // The socket retries after 250 ms, then 500 ms: at least two more failures happen in this wait.
    await sleep(1_300);
    expect(inspectorLines(cli.err())).toEqual([`inspector: cannot reach the inspector at ${url}: connect ECONNREFUSED 127.0.0.1:${port}; retrying in the background`]);

    const inspector = new WebSocketServer({ host: '127.0.0.1', port });
    await new Promise((resolve) => inspector.once('listening', resolve));
    await until(cli.err, (text) => inspectorLines(text).length === 2, 10_000);
    expect(inspectorLines(cli.err())[1]).toBe(`inspector: connected to ${url}`);

    // The inspector goes away: that is a change, logged once more.
    for (const client of inspector.clients) client.terminate();
    await new Promise((resolve) => inspector.close(resolve));
    await until(cli.err, (text) => inspectorLines(text).length === 3, 10_000);
    await sleep(1_000);
    expect(inspectorLines(cli.err())).toHaveLength(3);
    expect(inspectorLines(cli.err())[2]).toContain(`cannot reach the inspector at ${url}`);

    cli.stop();
    expect(await exit).toBe(ExitCode.OK);
  });
});
