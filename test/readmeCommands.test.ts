// Every shell command of README.md, run as written: the ```sh blocks in a fresh copy of this
// repository (after the README's own `npm ci`), the ```sh app blocks in a new app that installed the
// packed package. Two things are adapted, and only these: port 3000 becomes a free port (tests run
// side by side), and `npm install open-agent-orchestrator` installs the packed tarball (the package
// is not published from here). Commands that serve run until the block's next server or its end,
// and the commands after them talk to that server.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repositoryRoot } from './cliIo.js';

const execFileAsync = promisify(execFile);

/** The command that runs this suite: running it from inside the suite would never end. */
const NOT_RUN_HERE = new Set(['npm test']);

interface ShellLine {
  readonly command: string;
  readonly comment: string;
  /** From a trailing `# exits N` comment; 0 otherwise. */
  readonly exitCode: number;
}

interface ShellBlock {
  /** '' for a clone of this repository, 'app' for an app that installed the package. */
  readonly where: string;
  readonly lines: readonly ShellLine[];
}

/** Splits `command   # comment`, leaving a `#` inside quotes alone. */
function splitComment(line: string): { command: string; comment: string } {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const char = line[i] as string;
    if (quote !== undefined) {
      if (char === quote) quote = undefined;
    } else if (char === '"' || char === "'") quote = char;
    else if (char === '#' && (i === 0 || /\s/.test(line[i - 1] as string))) return { command: line.slice(0, i).trim(), comment: line.slice(i + 1).trim() };
  }
  return { command: line.trim(), comment: '' };
}

async function readmeShellBlocks(): Promise<ShellBlock[]> {
  const text = await readFile(join(repositoryRoot, 'README.md'), 'utf8');
  const blocks: ShellBlock[] = [];
  for (const match of text.matchAll(/^```sh([^\n]*)\n([\s\S]*?)^```$/gm)) {
    const lines: ShellLine[] = [];
    for (const raw of (match[2] ?? '').split('\n')) {
      const { command, comment } = splitComment(raw);
      if (command.length === 0) continue;
      const exits = /\bexits (\d+)/.exec(comment);
      lines.push({ command, comment, exitCode: exits === null ? 0 : Number(exits[1]) });
    }
    blocks.push({ where: (match[1] ?? '').trim(), lines });
  }
  return blocks;
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/**
 * The environment of a user's shell: no variables of the npm or vitest process running this test,
 * and no node_modules/.bin of this repository on PATH.
 */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(npm_|vitest|node_options$|init_cwd$|tsx_|force_color$|no_color$)/i.test(key)) continue;
    env[key] = value;
  }
  env.PATH = (process.env.PATH ?? '')
    .split(':')
    .filter((entry) => !entry.includes('node_modules/.bin'))
    .join(':');
  // Quieter and faster npm: no audit or funding calls, and the local cache first.
  return { ...env, NO_COLOR: '1', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false', npm_config_prefer_offline: 'true' };
}

interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms?: number;
}

async function sh(command: string, cwd: string): Promise<Result> {
  const started = performance.now();
  try {
    const { stdout, stderr } = await execFileAsync('sh', ['-c', command], { cwd, env: userEnv(), timeout: 420_000, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout, stderr, ms: performance.now() - started };
  } catch (error) {
    const failed = error as { code?: unknown; stdout?: string; stderr?: string; signal?: string };
    return {
      code: typeof failed.code === 'number' ? failed.code : -1,
      stdout: failed.stdout ?? '',
      stderr: `${failed.stderr ?? ''}${failed.signal ? `\n(killed by ${failed.signal})` : ''}`,
      ms: performance.now() - started,
    };
  }
}

/** A command that serves: started in its own process group, so stopping it stops npx and node alike. */
class Served {
  output = '';
  readonly url: Promise<string>;
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;

  constructor(command: string, cwd: string) {
    this.#child = spawn('sh', ['-c', command], { cwd, env: userEnv(), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    this.#exited = new Promise((resolve) => this.#child.once('exit', () => resolve()));
    this.url = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`"${command}" did not start listening:\n${this.output}`)), 90_000);
      const read = (chunk: Buffer) => {
        this.output += chunk.toString();
        const match = /OAO listening on (http:\/\/\S+)/.exec(this.output);
        if (match?.[1] !== undefined) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      };
      this.#child.stdout?.on('data', read);
      this.#child.stderr?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
      this.#child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`"${command}" exited with ${String(code)} before listening:\n${this.output}`));
      });
    });
    this.url.catch(() => undefined);
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.pid !== undefined) {
      try {
        process.kill(-this.#child.pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
      const killed = setTimeout(() => {
        try {
          if (this.#child.pid !== undefined) process.kill(-this.#child.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }, 10_000);
      await this.#exited;
      clearTimeout(killed);
    }
  }
}

interface Transcript {
  readonly lines: string[];
  add(command: string, result: Result): void;
}

function transcript(): Transcript {
  const lines: string[] = [];
  return {
    lines,
    add(command, result) {
      const first = (text: string) => text.trim().split('\n').slice(0, 3).join(' | ').slice(0, 240);
      const took = result.ms === undefined ? '' : ` (${(result.ms / 1000).toFixed(1)} s)`;
      lines.push(`$ ${command}${took}\n  exit ${result.code}; stdout: ${first(result.stdout)}${result.stderr.trim() ? `; stderr: ${first(result.stderr)}` : ''}`);
    },
  };
}

/** What a block's commands produced that later checks use. */
interface BlockRun {
  readonly outputs: Map<string, Result>;
}

/**
 * Runs one README block in `cwd`. `adapt` may rewrite a command (never its meaning); `check` sees
 * every result and may assert on it.
 */
async function runBlock(
  block: ShellBlock,
  cwd: string,
  log: Transcript,
  adapt: (command: string) => string = (command) => command,
  check: (command: string, result: Result) => void | Promise<void> = () => undefined,
): Promise<BlockRun> {
  const outputs = new Map<string, Result>();
  let served: Served | undefined;
  let port = 3000;
  let executionId = '<executionId>';
  try {
    for (const line of block.lines) {
      if (NOT_RUN_HERE.has(line.command)) continue;
      const serves = /\bserve\b/.test(line.command) && /\b(oao|open-agent-orchestrator)\b/.test(line.command);
      if (serves) {
        await served?.stop();
        port = await freePort();
      }
      const command = adapt(line.command).replaceAll('3000', String(port)).replaceAll('<executionId>', executionId);
      if (serves) {
        const started = performance.now();
        served = new Served(command, cwd);
        const url = await served.url;
        const health = await fetch(`${url}/health`);
        expect(health.status, command).toBe(200);
        const result = { code: 0, stdout: served.output.trim(), stderr: '', ms: performance.now() - started };
        log.add(command, result);
        outputs.set(line.command, result);
        continue;
      }
      const result = await sh(command, cwd);
      log.add(command, result);
      outputs.set(line.command, result);
      expect(result.code, `${command}\n${result.stdout}\n${result.stderr}`).toBe(line.exitCode);
      const started = /"executionId"\s*:\s*"([\w-]+)"/.exec(result.stdout);
      if (/-X POST \S+\/runs /.test(command) && started?.[1] !== undefined) executionId = started[1];
      await check(line.command, result);
    }
  } finally {
    await served?.stop();
  }
  return { outputs };
}

/** Copies the files git would commit (tracked and new, not ignored) from the working tree. */
async function copyWorkingTree(to: string): Promise<void> {
  const { stdout } = await execFileAsync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: repositoryRoot,
    maxBuffer: 16 * 1024 * 1024,
  });
  for (const file of new Set(stdout.split('\0').filter((f) => f.length > 0))) {
    const from = join(repositoryRoot, file);
    const info = await stat(from).catch(() => undefined);
    if (info?.isFile() !== true) continue; // deleted in the working tree
    await mkdir(dirname(join(to, file)), { recursive: true });
    await copyFile(from, join(to, file));
  }
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

const SUBPATHS = ['open-agent-orchestrator', 'open-agent-orchestrator/langchain', 'open-agent-orchestrator/langgraph', 'open-agent-orchestrator/server', 'open-agent-orchestrator/metrics', 'open-agent-orchestrator/tracing', 'open-agent-orchestrator/inspect'];

const requireEach = (specifiers: readonly string[]) =>
  `node -e 'for (const s of ${JSON.stringify(specifiers)}) { const m = require(s); if (Object.keys(m).length === 0) throw new Error(s + " exports nothing"); console.log(s, Object.keys(m).length); }'`;

let scratch: string;
let clone: string;
let app: string;
let blocks: ShellBlock[];
let tarball: string | undefined;
const cloneLog = transcript();
const appLog = transcript();

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'oao-readme-'));
  clone = join(scratch, 'clone');
  app = join(scratch, 'app');
  await copyWorkingTree(clone);
  blocks = await readmeShellBlocks();
}, 60_000);

/**
 * `npx oao` in the clone links the clone into npm's npx cache (one small folder per clone path);
 * the clone is about to go, so its folders go too.
 */
async function removeNpxLinksInto(dir: string): Promise<void> {
  const cache = (await sh('npm config get cache', scratch)).stdout.trim();
  const npx = join(cache, '_npx');
  for (const entry of await readdir(npx).catch(() => [] as string[])) {
    const link = join(npx, entry, 'node_modules', 'open-agent-orchestrator');
    const target = await readlink(link).catch(() => undefined);
    if (target !== undefined && resolve(dirname(link), target).startsWith(dir)) await rm(join(npx, entry), { recursive: true, force: true });
  }
}

afterAll(async () => {
  // The walkthroughs, for whoever reads the test output.
  console.log(`README in a fresh clone:\n${cloneLog.lines.join('\n')}\n\nREADME in an app:\n${appLog.lines.join('\n')}`);
  await removeNpxLinksInto(scratch);
  await rm(scratch, { recursive: true, force: true });
}, 60_000);

describe('README commands in a fresh clone', () => {
  it('has clone and app blocks, and starts with the setup command', () => {
    expect(blocks.filter((b) => b.where === '').length).toBeGreaterThanOrEqual(3);
    expect(blocks.filter((b) => b.where === 'app').length).toBeGreaterThanOrEqual(2);
    expect(blocks[0]?.lines[0]?.command).toBe('npm ci && npm run demo');
    for (const block of blocks) expect(['', 'app']).toContain(block.where);
  });

  it('every command runs as written after npm ci, which warns about nothing', { timeout: 600_000 }, async () => {
    for (const block of blocks.filter((b) => b.where === '')) {
      await runBlock(block, clone, cloneLog, undefined, (command, result) => {
        if (command === 'npm ci && npm run demo') {
          expect(`${result.stdout}\n${result.stderr}`).not.toMatch(/EBADENGINE|npm warn/i);
          expect(result.stdout).toContain('All 4 scenarios ended as expected');
        }
        if (command === 'npm run --silent demo -- --json') expect((JSON.parse(result.stdout) as { ok: boolean }).ok).toBe(true);
        if (command.includes('--json') && command.includes(' run ')) JSON.parse(result.stdout);
      });
    }
  });

  it('require() loads every subpath of the build', { timeout: 120_000 }, async () => {
    const result = await sh(requireEach(SUBPATHS), clone);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim().split('\n')).toHaveLength(SUBPATHS.length);
  });

  it('packs a tarball with a LICENSE and source maps that need no missing file', { timeout: 120_000 }, async () => {
    // dist/ is fresh from npm ci's prepare; packing does not need to build again.
    const packed = await sh(`npm pack --ignore-scripts --json --pack-destination ${JSON.stringify(scratch)}`, clone);
    expect(packed.code, packed.stderr).toBe(0);
    const [info] = JSON.parse(packed.stdout) as { filename: string; size: number; entryCount: number; files: { path: string }[] }[];
    const paths = new Set(info?.files.map((f) => f.path));
    for (const required of ['LICENSE', 'README.md', 'package.json', 'dist/index.js', 'dist/index.d.ts', 'dist/cli/oao.js']) expect(paths, required).toContain(required);
    expect([...paths].some((p) => p.startsWith('src/'))).toBe(false);
    cloneLog.lines.push(`npm pack: ${info?.filename}, ${info?.size} bytes, ${info?.entryCount} files`);
    tarball = join(scratch, info?.filename ?? '');
    for (const file of (await filesUnder(join(clone, 'dist'))).filter((f) => f.endsWith('.js.map'))) {
      const map = JSON.parse(await readFile(file, 'utf8')) as { sources: string[]; sourcesContent?: (string | null)[] };
      expect(map.sourcesContent?.length, file).toBe(map.sources.length);
      expect(map.sourcesContent?.every((s) => typeof s === 'string' && s.length > 0), file).toBe(true);
    }
  });
});

describe('README commands in an app that installed the package', () => {
  beforeAll(async () => {
    await mkdir(app, { recursive: true });
    await writeFile(join(app, 'package.json'), `${JSON.stringify({ name: 'readme-app', version: '1.0.0', private: true }, null, 2)}\n`);
  });

  const fromTarball = (command: string) => {
    if (tarball === undefined) throw new Error('no tarball: the packing test failed');
    return command === 'npm install open-agent-orchestrator' ? `npm install ${JSON.stringify(tarball)}` : command;
  };

  it('installs the core, runs the starter module and, without Fastify, says what oao serve needs', { timeout: 300_000 }, async () => {
    const [core] = blocks.filter((b) => b.where === 'app');
    await runBlock(core as ShellBlock, app, appLog, fromTarball, (command, result) => {
      if (command === 'npm install open-agent-orchestrator') expect(`${result.stdout}\n${result.stderr}`).not.toContain('EBADENGINE');
      if (command === 'npx oao init') expect(result.stdout).toContain('Wrote agents.mjs');
      if (command.startsWith('npx oao run')) expect(result.stdout).toContain('SUCCESS');
    });
    const installed = await readdir(join(app, 'node_modules'));
    expect(installed).not.toContain('fastify');
    const size = await sh('du -sk node_modules', app);
    appLog.lines.push(`core-only node_modules: ${Math.round(Number.parseInt(size.stdout, 10) / 1024)} MB, ${installed.length} entries`);

    const serve = await sh(`npx oao serve agents.mjs --port ${await freePort()}`, app);
    appLog.add('npx oao serve agents.mjs (before installing Fastify)', serve);
    expect(serve.code).toBe(5);
    expect(serve.stderr.trim().split('\n')).toHaveLength(1);
    expect(serve.stderr).toContain('npm install fastify @fastify/swagger @fastify/swagger-ui fastify-type-provider-zod');

    const again = await sh('npx oao init', app);
    expect(again.code).toBe(2);
    const named = await sh('npx open-agent-orchestrator --version', app);
    expect(named.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);

    const required = await sh(requireEach(['open-agent-orchestrator', 'open-agent-orchestrator/metrics', 'open-agent-orchestrator/tracing']), app);
    expect(required.code, required.stderr).toBe(0);
  });

  it('compiles a strict CommonJS TypeScript file against the installed types, and runs it', { timeout: 120_000 }, async () => {
    await writeFile(
      join(app, 'governed.ts'),
      [
        "import { Orchestrator, StrictPolicy } from 'open-agent-orchestrator';",
        "import { createMetrics } from 'open-agent-orchestrator/metrics';",
        "import { traceRuns } from 'open-agent-orchestrator/tracing';",
        'const orch = new Orchestrator({ policy: new StrictPolicy({ maxSteps: 2 }) });',
        'createMetrics().observe(orch);',
        'traceRuns(orch);',
        "void orch.run({ agent: (task: string) => ({ output: `done: ${task}` }), task: 'from CommonJS' }).then((r) => console.log(r.status, r.finalOutput));",
        '',
      ].join('\n'),
    );
    await writeFile(
      join(app, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { module: 'nodenext', target: 'es2022', strict: true, skipLibCheck: false, types: [], outDir: 'out' }, files: ['governed.ts'] }),
    );
    const tsc = await sh(`node ${JSON.stringify(join(repositoryRoot, 'node_modules/typescript/bin/tsc'))} -p .`, app);
    expect(tsc.code, tsc.stdout).toBe(0);
    expect(await readFile(join(app, 'out/governed.js'), 'utf8')).toContain('require("open-agent-orchestrator")');
    const run = await sh('node out/governed.js', app);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.trim()).toBe('SUCCESS done: from CommonJS');
  });

  it('installs the server packages, serves the starter module, and the README overrides silence npm', { timeout: 300_000 }, async () => {
    const [, server] = blocks.filter((b) => b.where === 'app');
    const run = await runBlock(server as ShellBlock, app, appLog, fromTarball);
    const install = run.outputs.get('npm install fastify @fastify/swagger @fastify/swagger-ui fastify-type-provider-zod');
    appLog.lines.push(`EBADENGINE warnings from installing Fastify: ${(`${install?.stdout}\n${install?.stderr}`.match(/EBADENGINE Unsupported engine/g) ?? []).length}`);

    const required = await sh(requireEach(['open-agent-orchestrator/server']), app);
    expect(required.code, required.stderr).toBe(0);

    const readme = await readFile(join(repositoryRoot, 'README.md'), 'utf8');
    const overrides = JSON.parse(`{${/```json overrides\n([\s\S]*?)```/.exec(readme)?.[1] ?? ''}}`) as Record<string, unknown>;
    const manifest = JSON.parse(await readFile(join(app, 'package.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(app, 'package.json'), `${JSON.stringify({ ...manifest, ...overrides }, null, 2)}\n`);
    await rm(join(app, 'node_modules'), { recursive: true, force: true });
    await rm(join(app, 'package-lock.json'), { force: true });
    const reinstall = await sh('npm install', app);
    appLog.add('npm install (with the README overrides)', reinstall);
    expect(reinstall.code, reinstall.stderr).toBe(0);
    expect(`${reinstall.stdout}\n${reinstall.stderr}`).not.toContain('EBADENGINE');
    const served = new Served(`npx oao serve agents.mjs --port ${await freePort()}`, app);
    try {
      const url = await served.url;
      const answer = await fetch(`${url}/run`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ agent: 'greeter', task: 'Ada' }) });
      expect(await answer.json()).toMatchObject({ status: 'SUCCESS', finalOutput: 'Hello, Ada!' });
    } finally {
      await served.stop();
    }
  });
});
