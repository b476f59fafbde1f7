/**
 * A worker in a process of its own, for the queue tests that stage faults on real processes: a
 * fixture script run from the sources, which prints `ready` once it takes jobs.
 */
import { spawn, type ChildProcess } from 'node:child_process';

/**
 * Starts `script` with `args`, adds it to `started` at once (so a test's cleanup stops it even if it
 * never gets ready), and resolves once it has printed `ready`; rejects if it exits first.
 */
export async function startWorkerProcess(script: string, args: readonly string[], started: ChildProcess[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--conditions=oao-source', '--import', 'tsx', script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  started.push(child);
  await new Promise<void>((resolve, reject) => {
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`a worker process exited with ${String(code)} before it was ready`)));
  });
  return child;
}
