import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The TypeScript in docs/*.md is code, held to what code is held to:
 *
 * - Every ```ts block type-checks against the package's own types, as its own module. A name it
 *   uses is imported, defined, or `declare`d in the block itself (`declare const model:
 *   BaseChatModel;` says "your chat model here" in a way the checker understands).
 * - A ```ts block runs (`node --conditions=oao-source --import tsx`, as a reader would with the
 *   published package) and must exit cleanly; on a line `console.log(...); // text`, the text must
 *   appear in what it prints.
 * - A ```ts no-run block is checked but not run: it needs a server that keeps listening, a network,
 *   or a model provider's key.
 *
 * Anything else in a ts fence fails here; text that is not TypeScript goes in a fence of its own
 * kind (sh, json, or none).
 */

const exec = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));
const docsDir = new URL('../docs/', import.meta.url);
const scratch = new URL('../.tmp/docs-blocks/', import.meta.url);

/** Type-checking loads the package's sources too: generous, because the machine may be busy. */
const CHECK_TIMEOUT_MS = 180_000;
const RUN_TIMEOUT_MS = 60_000;

const KNOWN_FLAGS = new Set(['no-run']);

interface Block {
  /** docs/<file>.md:<line of the opening fence> */
  readonly where: string;
  readonly file: string;
  /** The line of the block's first line of code, 1-based. */
  readonly firstLine: number;
  readonly flags: readonly string[];
  readonly code: string;
  /** The scratch file's name. */
  readonly module: string;
}

async function docsBlocks(): Promise<Block[]> {
  const blocks: Block[] = [];
  const files = (await readdir(docsDir)).filter((name) => name.endsWith('.md')).sort();
  for (const file of files) {
    const text = await readFile(new URL(file, docsDir), 'utf8');
    const lines = text.split('\n');
    // Fences may be indented (a block inside a list item); the indent is not part of the code.
    let open: { line: number; indent: number; info: string; code: string[] } | null = null;
    for (const [index, line] of lines.entries()) {
      const fence = /^( *)```(.*)$/.exec(line);
      if (open === null) {
        if (fence !== null) open = { line: index + 1, indent: (fence[1] ?? '').length, info: (fence[2] ?? '').trim(), code: [] };
        continue;
      }
      if (fence !== null && (fence[2] ?? '').trim() === '') {
        const [language = '', ...flags] = open.info.split(/\s+/);
        if (language === 'ts' || language === 'typescript') {
          blocks.push({
            where: `docs/${file}:${open.line}`,
            file,
            firstLine: open.line + 1,
            flags,
            code: open.code.join('\n'),
            module: `${file.replace(/\.md$/, '')}-${open.line}.ts`,
          });
        }
        open = null;
        continue;
      }
      open.code.push(line.slice(Math.min(open.indent, line.length - line.trimStart().length)));
    }
    if (open !== null) throw new Error(`docs/${file}:${open.line}: a code fence is never closed`);
  }
  return blocks;
}

/**
 * `console.log(...); // expected` lines: the expected text must appear in the output. A lower-case
 * `<placeholder>` in it stands for any text without spaces (`http://127.0.0.1:<port>`).
 */
function expectations(code: string): RegExp[] {
  return code
    .split('\n')
    .filter((line) => line.includes('console.log(') && line.includes('); // '))
    .map((line) => line.slice(line.indexOf('); // ') + 6).trim())
    .map((text) => new RegExp(text.split(/<[a-z][a-z -]*>/).map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('\\S+')));
}

const blocks = await docsBlocks();
const runnable = blocks.filter((block) => !block.flags.includes('no-run'));

describe('the TypeScript blocks of docs/*.md', () => {
  beforeAll(async () => {
    await rm(scratch, { recursive: true, force: true });
    await mkdir(scratch, { recursive: true });
    // Each block is a module of its own: blocks may reuse names, and may await at the top.
    await Promise.all(blocks.map((block) => writeFile(new URL(block.module, scratch), `${block.code}\nexport {};\n`)));
    await writeFile(
      new URL('tsconfig.json', scratch),
      JSON.stringify({
        extends: '../../tsconfig.json',
        compilerOptions: { noEmit: true, incremental: false },
        include: ['*.ts'],
      }),
    );
  });

  afterAll(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  it('are tagged ts (it runs) or ts no-run (it cannot run here), and most of them run', () => {
    const unknown = blocks.flatMap((block) => block.flags.filter((flag) => !KNOWN_FLAGS.has(flag)).map((flag) => `${block.where}: unknown tag "${flag}"`));
    expect(unknown).toEqual([]);
    expect(blocks.length).toBeGreaterThanOrEqual(10);
    expect(runnable.length).toBeGreaterThan(blocks.length / 2);
  });

  it('type-check, run or not', { timeout: CHECK_TIMEOUT_MS }, async () => {
    const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
    const answer = await exec(process.execPath, [tsc, '-p', fileURLToPath(new URL('tsconfig.json', scratch)), '--pretty', 'false'], {
      cwd: root,
      timeout: CHECK_TIMEOUT_MS - 5_000,
    }).then(
      () => '',
      (error: { stdout?: string; stderr?: string; message: string }) => `${error.stdout ?? ''}${error.stderr ?? ''}` || error.message,
    );
    // Errors are reported where they are in the docs, not in the scratch files.
    const byModule = new Map(blocks.map((block) => [block.module, block]));
    const located = answer
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => {
        const match = /(?:^|[\\/])([\w.-]+\.ts)\((\d+),(\d+)\): (.*)$/.exec(line);
        const block = match === null ? undefined : byModule.get(match[1] ?? '');
        if (match === null || block === undefined) return line;
        return `docs/${block.file}:${block.firstLine + Number(match[2]) - 1}:${match[3]}: ${match[4]}`;
      });
    expect(located).toEqual([]);
  });

  describe.each(runnable.map((block) => [block.where, block] as const))('%s', (_where, block) => {
    it('runs and prints what its comments say', { timeout: RUN_TIMEOUT_MS }, async () => {
      const { stdout } = await exec(process.execPath, ['--conditions=oao-source', '--import', 'tsx', fileURLToPath(new URL(block.module, scratch))], {
        cwd: root,
        timeout: RUN_TIMEOUT_MS - 5_000,
      });
      for (const expected of expectations(block.code)) expect(stdout, `${block.where} should print`).toMatch(expected);
    });
  });
});
