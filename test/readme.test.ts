import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));
const scratch = fileURLToPath(new URL('../.tmp/readme/', import.meta.url));

/** Every ```ts block of README.md, except those marked `no-run` (they need packages OAO does not ship). */
async function readmeBlocks(): Promise<string[]> {
  const text = await readFile(new URL('../README.md', import.meta.url), 'utf8');
  const blocks: string[] = [];
  const fence = /^```ts([^\n]*)\n([\s\S]*?)^```$/gm;
  for (const match of text.matchAll(fence)) {
    if (!(match[1] ?? '').includes('no-run')) blocks.push(match[2] ?? '');
  }
  return blocks;
}

/** `console.log(...); // expected` lines: the expected text must appear in the output. */
function expectations(code: string): string[] {
  return code
    .split('\n')
    .filter((line) => line.includes('console.log(') && line.includes('); // '))
    .map((line) => line.slice(line.indexOf('); // ') + 6).trim());
}

describe('README examples', () => {
  afterAll(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  it('has runnable TypeScript examples', async () => {
    expect((await readmeBlocks()).length).toBeGreaterThanOrEqual(3);
  });

  it('every example runs and prints what its comments say', async () => {
    await mkdir(scratch, { recursive: true });
    const blocks = await readmeBlocks();
    for (const [index, code] of blocks.entries()) {
      const file = `${scratch}block-${index}.ts`;
      await writeFile(file, code);
      const { stdout } = await run(process.execPath, ['--conditions=oao-source', '--import', 'tsx', file], {
        cwd: root,
        timeout: 30_000,
      });
      for (const expected of expectations(code)) expect(stdout, `README block ${index}`).toContain(expected);
    }
  });
});
