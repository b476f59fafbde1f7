import { isIP } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { OaoError } from '../errors.js';
import { createServer } from './createServer.js';
import { resolveApiKeys, type ServerOptions } from './serverOptions.js';

export interface StartServerOptions extends ServerOptions {
  /** Address to listen on. Anything beyond loopback needs API keys. @default '127.0.0.1' */
  readonly host?: string;
  /** 0 picks a free port. @default 3000 */
  readonly port?: number;
}

export interface StartedServer {
  readonly app: FastifyInstance;
  /** Where it listens, e.g. `http://127.0.0.1:3000`. */
  readonly url: string;
  /** Stops listening, cancels the runs still live and ends open event streams. */
  close(): Promise<void>;
}

/**
 * Builds the service with {@link createServer} and listens. Refuses to listen beyond loopback
 * without API keys (`OAO_ERR_INSECURE_BIND`): anyone who can reach the port could run the agents.
 *
 * @example
 * ```ts
 * import { startServer } from 'open-agent-orchestrator/server';
 * const server = await startServer({ agents: { echo: (task: string) => `echo: ${task}` }, port: 0 });
 * const report = await (await fetch(`${server.url}/run`, {
 *   method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ agent: 'echo', task: 'hi' }),
 * })).json();
 * await server.close();
 * ```
 */
export async function startServer(options: StartServerOptions): Promise<StartedServer> {
  if (typeof options !== 'object' || options === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Expected the server options to be an object', { details: { field: 'options' } });
  }
  const { host = '127.0.0.1', port = 3000, ...serverOptions } = options;
  if (typeof host !== 'string' || host.trim().length === 0) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Expected host to be a non-empty string', { details: { field: 'host' } });
  }
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected port to be an integer from 0 to 65535, got ${String(port)}`, { details: { field: 'port' } });
  }
  const apiKeys = resolveApiKeys(serverOptions.apiKeys);
  if (apiKeys.length === 0 && !isLoopbackHost(host)) {
    throw new OaoError(
      'OAO_ERR_INSECURE_BIND',
      `Refusing to listen on ${host} without API keys: anyone who can reach it could run your agents. ` +
        'Set apiKeys (oao serve --api-key <key>, or env OAO_API_KEYS), or listen on 127.0.0.1.',
      { details: { host } },
    );
  }
  // The keys as given (tenants and budgets included), or those of the env when none were given.
  const app = await createServer({ ...serverOptions, apiKeys: serverOptions.apiKeys ?? apiKeys });
  let url: string;
  try {
    url = await app.listen({ host, port });
  } catch (error) {
    await app.close();
    throw error;
  }
  return { app, url, close: () => app.close() };
}

/** Whether a listen address is reachable only from this machine: 127.0.0.0/8, ::1 or localhost. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (bare === 'localhost') return true;
  const version = isIP(bare);
  if (version === 4) return bare.startsWith('127.');
  if (version === 6) {
    // The URL parser writes every IPv6 form the same way: ::1, 0:0:0:0:0:0:0:1 and ::ffff:127.0.0.1 alike.
    const normalized = new URL(`http://[${bare}]/`).hostname;
    return normalized === '[::1]' || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(normalized);
  }
  return false;
}
