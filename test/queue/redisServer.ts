/**
 * A private Redis for the queue tests: `redis-server` (Debian's package, /usr/bin/redis-server) on
 * a free loopback port, without persistence, started by the test and stopped by it. The machine's
 * shared instance at 6379 is never used. Without the binary the tests fail, they never skip
 * (`.ci/run` installs it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';

export interface TestRedis {
  readonly port: number;
  readonly url: string;
  /** A command client (opened lazily), e.g. for `CLIENT PAUSE`. */
  client(): Redis;
  /** Stops the server (SIGTERM, then waits for the process to exit); `start()` brings it back. */
  stop(): Promise<void>;
  /** Starts it again on the same port (empty: it keeps no data). */
  start(): Promise<void>;
  /** Stops it for good and deletes its directory. */
  destroy(): Promise<void>;
}

const BINARY = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((path) => existsSync(path)) ?? 'redis-server';

async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
      });
    });
    if (port !== 6379 && port !== 0) return port;
  }
}

export async function startTestRedis(): Promise<TestRedis> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'oao-redis-'));
  let child: ChildProcess | undefined;
  let command: Redis | undefined;

  const start = async (): Promise<void> => {
    const proc = spawn(BINARY, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'yes'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    // A test process that dies without its teardown takes its server with it.
    const orphaned = () => proc.kill('SIGKILL');
    process.once('exit', orphaned);
    proc.once('exit', () => process.off('exit', orphaned));
    await new Promise<void>((resolve, reject) => {
      let output = '';
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          proc.stdout?.off('data', onData);
          resolve();
        }
      };
      proc.stdout?.on('data', onData);
      proc.once('error', (error) => reject(new Error(`redis-server could not start (${BINARY}): ${error.message}`)));
      proc.once('exit', (code) => reject(new Error(`redis-server exited with ${String(code)} before it was ready:\n${output}`)));
    });
    proc.stdout?.resume();
    proc.stderr?.resume();
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (proc === undefined || proc.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
    });
  };

  await start();
  const url = `redis://127.0.0.1:${port}`;
  return {
    port,
    url,
    client: () => {
      if (command === undefined) {
        command = new Redis(url, { maxRetriesPerRequest: null });
        command.on('error', () => {});
      }
      return command;
    },
    start,
    stop: async () => {
      command?.disconnect();
      command = undefined;
      await stop();
    },
    destroy: async () => {
      command?.disconnect();
      command = undefined;
      await stop();
      await rm(dir, { recursive: true, force: true }).catch(() => {});
    },
  };
}

/**
 * A private Redis for one test file: started before its tests, destroyed after them. The handle
 * reads the server of the moment: use it inside tests and hooks only.
 */
export function useTestRedis(): TestRedis {
  let redis: TestRedis | undefined;
  beforeAll(async () => {
    redis = await startTestRedis();
  }, 20_000);
  afterAll(async () => {
    await redis?.destroy();
  });
  const current = (): TestRedis => {
    if (redis === undefined) throw new Error('useTestRedis(): the server starts in beforeAll; read it inside a test or a hook');
    return redis;
  };
  return {
    get port() {
      return current().port;
    },
    get url() {
      return current().url;
    },
    client: () => current().client(),
    stop: () => current().stop(),
    start: () => current().start(),
    destroy: () => current().destroy(),
  };
}
