import { OaoError } from '../errors.js';

/** Where `oao serve` tried to listen, for the message that names the fix. */
export interface ListenTarget {
  readonly host: string;
  readonly port: number;
}

/** Node's codes for a listen that failed because of the address, the port or the machine. */
const LISTEN_FIXES: Readonly<Record<string, (target: ListenTarget) => string>> = {
  EADDRINUSE: ({ host, port }) =>
    `Port ${port} on ${host} is already in use: stop the process that holds it, or pick another port with --port <n> (--port 0 picks a free one).`,
  EACCES: ({ host, port }) =>
    `Not permitted to listen on ${host}:${port}: ports below 1024 need extra privileges; pick a port from 1024 up with --port <n>.`,
  EPERM: ({ host, port }) => `Not permitted to listen on ${host}:${port}: pick another port with --port <n>, or another address with --host.`,
  EADDRNOTAVAIL: ({ host }) =>
    `${host} is not an address of this machine: listen on one of its own addresses with --host (127.0.0.1 for this machine only, 0.0.0.0 for every interface).`,
  ENOTFOUND: ({ host }) => `The host name ${host} does not resolve: pass an IP address or a name this machine resolves with --host (such as 127.0.0.1).`,
  EAI_AGAIN: ({ host }) => `The host name ${host} could not be resolved right now: pass an IP address with --host (such as 127.0.0.1).`,
  EAI_FAIL: ({ host }) => `The host name ${host} does not resolve: pass an IP address with --host (such as 127.0.0.1).`,
  EAI_NONAME: ({ host }) => `The host name ${host} does not resolve: pass an IP address with --host (such as 127.0.0.1).`,
  EINVAL: ({ host, port }) => `Cannot listen on ${host}:${port}: pass a valid address with --host and a port from 0 to 65535 with --port.`,
};

/**
 * Turns the error of a failed `listen()` into one `OAO_ERR_LISTEN_FAILED` line that names the fix,
 * or returns undefined when the error is not about the address or port.
 */
export function listenFailure(error: unknown, target: ListenTarget): OaoError | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return undefined;
  const fix = LISTEN_FIXES[code];
  if (fix === undefined) return undefined;
  return new OaoError('OAO_ERR_LISTEN_FAILED', fix(target), { cause: error, details: { host: target.host, port: target.port, reason: code } });
}
