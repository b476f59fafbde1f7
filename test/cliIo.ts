import { fileURLToPath } from 'node:url';
import type { CliIO } from '../src/cli/program.js';
import { deferred } from './helpers.js';

export const repositoryRoot = fileURLToPath(new URL('..', import.meta.url));

/** A CliIO that records what `runCli` writes; not a terminal, no colour variables. */
export function captureIo(overrides: Partial<CliIO> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIO = {
    stdout: (text) => out.push(text),
    stderr: (text) => err.push(text),
    env: {},
    isTTY: false,
    cwd: repositoryRoot,
    ...overrides,
  };
  return { io, out: () => out.join(''), err: () => err.join('') };
}

/** For `oao serve` in this process: it runs until the test calls `stop()`; `listening` gives its URL. */
export function serveIo(overrides: Partial<CliIO> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const stop = deferred<void>();
  const listening = deferred<string>();
  const io: CliIO = {
    stdout: (text) => {
      out.push(text);
      const match = /OAO listening on (http:\/\/\S+)/.exec(text);
      if (match?.[1] !== undefined) listening.resolve(match[1]);
    },
    stderr: (text) => err.push(text),
    env: {},
    isTTY: false,
    cwd: repositoryRoot,
    untilStopped: () => stop.promise,
    ...overrides,
  };
  return { io, out: () => out.join(''), err: () => err.join(''), stop: () => stop.resolve(), listening: listening.promise };
}
