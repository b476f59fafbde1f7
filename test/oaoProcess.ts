/**
 * `oao <argv>` as a process of its own, from src/ through tsx, for the tests that start servers
 * and kill them: its output, its exit, and (for `oao serve`) the address it listens on.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { repositoryRoot } from './cliIo.js';

export interface Finished {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface OaoProcess {
  readonly child: ChildProcess;
  /** Settles when the process exits, with everything it printed. */
  readonly finished: Promise<Finished>;
  /** The server's base URL once it prints `OAO listening on ...`; rejects if it exits first. */
  readonly listening: Promise<string>;
  /** Everything printed so far. */
  output(): string;
}

/**
 * Starts `oao <argv>` with no API keys from the environment, plus `env`, and modules to `--import`
 * first (`preload`). The process is added to `children`, so the test can kill what is left.
 */
export function startOao(argv: readonly string[], options: { env?: Record<string, string>; preload?: readonly string[]; children: Set<ChildProcess> }): OaoProcess {
  const preload = options.preload ?? [];
  const child = spawn(process.execPath, ['--conditions=oao-source', '--import', 'tsx', ...preload.flatMap((file) => ['--import', file]), 'src/cli/oao.ts', ...argv], {
    cwd: repositoryRoot,
    env: { ...process.env, OAO_API_KEYS: '', OAO_API_KEY: '', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  options.children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const finished = new Promise<Finished>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, stdout, stderr })));
  const listening = new Promise<string>((resolve, reject) => {
    child.stdout?.on('data', () => {
      const match = /OAO listening on (http:\/\/\S+)/.exec(stdout);
      if (match?.[1] !== undefined) resolve(match[1]);
    });
    void finished.then((f) => reject(new Error(`oao ${argv.join(' ')} exited (${String(f.code ?? f.signal)}) before listening:\n${f.stdout}\n${f.stderr}`)));
  });
  listening.catch(() => undefined);
  return { child, finished, listening, output: () => `${stdout}\n${stderr}` };
}

/** POSTs `body` as JSON. */
export function postJson(base: string, path: string, body: unknown): Promise<Response> {
  return fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}
