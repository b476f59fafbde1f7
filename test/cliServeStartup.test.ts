import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../src/cli/exitCodes.js';
import { requirePackages } from '../src/cli/optionalPackages.js';
import { runCli } from '../src/cli/program.js';
import { listenFailure } from '../src/cli/startupError.js';
import { OaoError } from '../src/errors.js';
import { serveIo } from './cliIo.js';

/** A port some other process already listens on. */
let holder: Server;
let busyPort: number;

beforeAll(async () => {
  holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  busyPort = (holder.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise((resolve) => holder.close(resolve));
});

/** Runs `oao serve` expecting it not to start: it must return on its own, never wait to be stopped. */
async function serveFails(argv: readonly string[]) {
  const cli = serveIo({ untilStopped: () => Promise.reject(new Error('oao serve started, but it should not have')) });
  // In memory: a server that never starts leaves no store file behind in the repository.
  const code = await runCli(['serve', 'examples/agents.ts', '--store', 'memory', ...argv], cli.io);
  return { code, err: cli.err(), out: cli.out() };
}

function expectOneLine(err: string) {
  expect(err.trim().split('\n')).toHaveLength(1);
  expect(err).not.toMatch(/^\s+at /m);
  expect(err).not.toContain('internal error');
}

describe('oao serve startup failures', () => {
  it('a busy port: exit 5, one line naming --port', async () => {
    const { code, err, out } = await serveFails(['--port', String(busyPort)]);
    expect(code).toBe(ExitCode.COULD_NOT_START);
    expectOneLine(err);
    expect(err).toContain(`Port ${busyPort} on 127.0.0.1 is already in use`);
    expect(err).toContain('--port 0 picks a free one');
    expect(err).toContain('[OAO_ERR_LISTEN_FAILED]');
    expect(out).not.toContain('OAO listening');
  });

  it('a host that is not an address of this machine: exit 5, one line naming --host', async () => {
    const { code, err } = await serveFails(['--host', '192.0.2.1', '--port', '0', '--api-key', 'k']);
    expect(code).toBe(ExitCode.COULD_NOT_START);
    expectOneLine(err);
    expect(err).toContain('192.0.2.1 is not an address of this machine');
    expect(err).toContain('--host');
  });

  it('a host name that does not resolve: exit 5, one line naming --host', async () => {
    const { code, err } = await serveFails(['--host', 'no-such-host.invalid', '--port', '0', '--api-key', 'k']);
    expect(code).toBe(ExitCode.COULD_NOT_START);
    expectOneLine(err);
    expect(err).toMatch(/The host name no-such-host\.invalid (does not resolve|could not be resolved)/);
  });

  it('listening beyond loopback without keys stays bad usage (exit 2), in one line', async () => {
    const { code, err } = await serveFails(['--host', '0.0.0.0', '--port', '0']);
    expect(code).toBe(ExitCode.USAGE);
    expectOneLine(err);
    expect(err).toContain('[OAO_ERR_INSECURE_BIND]');
  });

  it('names the fix for a port that needs privileges', () => {
    // Tests run as root here, where binding a low port succeeds, so the error Node raises is built by hand.
    const denied = Object.assign(new Error('listen EACCES: permission denied 127.0.0.1:80'), { code: 'EACCES' });
    const failure = listenFailure(denied, { host: '127.0.0.1', port: 80 });
    expect(failure?.code).toBe('OAO_ERR_LISTEN_FAILED');
    expect(failure?.message).toContain('ports below 1024 need extra privileges; pick a port from 1024 up with --port <n>');
    expect(failure?.details).toEqual({ host: '127.0.0.1', port: 80, reason: 'EACCES' });
    expect(listenFailure(new Error('something else'), { host: '127.0.0.1', port: 80 })).toBeUndefined();
  });
});

describe('optional packages', () => {
  it('names every missing package and the npm install line that adds them', async () => {
    const error = await requirePackages('oao serve', ['fastify', 'oao-package-that-does-not-exist', '@oao-scope/also-missing']).catch((e: unknown) => e);
    expect(OaoError.isInstance(error)).toBe(true);
    expect((error as OaoError).code).toBe('OAO_ERR_MISSING_PACKAGE');
    expect((error as OaoError).message).toBe(
      'oao serve needs packages that are not installed: npm install oao-package-that-does-not-exist @oao-scope/also-missing',
    );
    expect((error as OaoError).details).toEqual({ packages: ['oao-package-that-does-not-exist', '@oao-scope/also-missing'] });
  });

  it('passes when every package is there', async () => {
    await expect(requirePackages('oao serve', ['fastify', 'ws'])).resolves.toBeUndefined();
  });
});
