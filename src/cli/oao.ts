#!/usr/bin/env node
import { runCli } from './program.js';

const stopSignals = ['SIGINT', 'SIGTERM'] as const;

const code = await runCli(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
  isTTY: process.stdout.isTTY === true,
  cwd: process.cwd(),
  untilStopped: () =>
    new Promise<void>((resolve) => {
      for (const signal of stopSignals) process.once(signal, () => resolve());
    }),
});
process.exitCode = code;
