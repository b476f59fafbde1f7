import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

/** The real `oao serve`, as a process on a free port, driven over HTTP like the README says. */
let child: ChildProcess;
let base = '';
let output = '';
/** The server's SQLite store (its default kind of store), in a directory of this test's own. */
const storeDir = mkdtempSync(join(tmpdir(), 'oao-cli-serve-'));

beforeAll(async () => {
  const store = `sqlite:${join(storeDir, 'runs.db')}`;
  child = spawn(process.execPath, ['--conditions=oao-source', '--import', 'tsx', 'src/cli/oao.ts', 'serve', 'examples/agents.ts', '--port', '0', '--store', store], {
    cwd: root,
    env: { ...process.env, OAO_API_KEYS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  base = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`oao serve did not start:\n${output}`)), 20_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /OAO listening on (http:\/\/[^\s]+)/.exec(output);
      if (match?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.on('exit', (code) => reject(new Error(`oao serve exited with ${String(code)}:\n${output}`)));
  });
}, 30_000);

afterAll(async () => {
  if (child.exitCode === null) {
    const exited = new Promise((resolve) => child.on('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
  rmSync(storeDir, { recursive: true, force: true });
});

interface CurlCall {
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body: string | undefined;
  readonly stream: boolean;
}

/** Reads one `curl` line of the README into a fetch call: -X, -H, -d, -N and the URL. */
function parseCurl(line: string, host: string, executionId: string): CurlCall {
  const words = line.replace(/\s+#.*$/, '').match(/'[^']*'|"[^"]*"|\S+/g) ?? [];
  const unquote = (w: string) => w.replace(/^['"]|['"]$/g, '');
  let method = 'GET';
  let url = '';
  let body: string | undefined;
  let stream = false;
  const headers: Record<string, string> = {};
  for (let i = 1; i < words.length; i++) {
    const word = words[i] as string;
    if (word === '-X') method = unquote(words[++i] as string);
    else if (word === '-H') {
      const [name, ...value] = unquote(words[++i] as string).split(':');
      headers[(name as string).trim()] = value.join(':').trim();
    } else if (word === '-d') {
      body = unquote(words[++i] as string);
      if (method === 'GET') method = 'POST';
    } else if (word === '-N') stream = true;
    else if (word === '-s') continue;
    else url = unquote(word);
  }
  url = `http://${url.replace('localhost:3000', host).replace('<executionId>', executionId)}`;
  return { method, url, headers, body, stream };
}

describe('oao serve, driven as the README says', () => {
  it('prints where it listens, and serves the README commands as written', async () => {
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('## Run as an API service'));
    const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
    const lines = block.split('\n').filter((line) => line.startsWith('curl '));
    expect(lines.length).toBeGreaterThanOrEqual(6);
    const host = base.replace('http://', '');
    let executionId = '<executionId>';
    for (const line of lines) {
      const call = parseCurl(line, host, executionId);
      const response = await fetch(call.url, {
        method: call.method,
        headers: call.headers,
        ...(call.body === undefined ? {} : { body: call.body }),
      });
      expect(response.status, line).toBeLessThan(300);
      if (call.stream) {
        expect(response.headers.get('content-type')).toContain('text/event-stream');
        await response.body?.cancel();
        continue;
      }
      const body = (await response.json()) as Record<string, unknown>;
      if (call.method === 'POST' && call.url.endsWith('/runs')) executionId = String(body.executionId);
      if (call.url.endsWith('/run')) expect(body).toMatchObject({ status: 'SUCCESS', finalOutput: 'echo: hello' });
    }
    expect(executionId).toMatch(/^[\w-]+$/);
  });

  it('streams a run live over Server-Sent Events and ends after EXECUTION_COMPLETE', async () => {
    const started = await fetch(`${base}/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ agent: 'researcher', task: 'sse' }),
    });
    expect(started.status).toBe(202);
    const { executionId } = (await started.json()) as { executionId: string };
    const stream = await fetch(`${base}/runs/${executionId}/events`);
    const text = await stream.text();
    const types = [...text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]);
    expect(types[0]).toBe('EXECUTION_START');
    expect(types).toContain('TOOL_CALL');
    expect(types.at(-1)).toBe('EXECUTION_COMPLETE');
    const ids = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    expect(ids).toEqual(ids.map((_, i) => i));
  });

  it('answers bad input with a 4xx and keeps serving, and the CLI lists the runs', async () => {
    const bad = await fetch(`${base}/run`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"agent":' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('OAO_ERR_INVALID_JSON');
    const unknown = await fetch(`${base}/run`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"agent":"nobody","task":"x"}' });
    expect(unknown.status).toBe(404);
    expect((await fetch(`${base}/health`)).status).toBe(200);

    const { runCli } = await import('../src/cli/program.js');
    const out: string[] = [];
    const code = await runCli(['runs', '--server', base, '--json'], { stdout: (t) => out.push(t), stderr: (t) => out.push(t), env: {}, isTTY: false, cwd: root });
    expect(code, out.join('')).toBe(0);
    const listed = JSON.parse(out.join('')) as { runs: { executionId: string; agent: string }[] };
    expect(listed.runs.length).toBeGreaterThanOrEqual(2);
    const one = listed.runs[0] as { executionId: string };
    const shown: string[] = [];
    expect(await runCli(['runs', 'show', one.executionId, '--server', base], { stdout: (t) => shown.push(t), stderr: (t) => shown.push(t), env: {}, isTTY: false, cwd: root })).toBe(0);
    expect(shown.join('')).toContain(one.executionId.slice(0, 8));
    const missing: string[] = [];
    expect(await runCli(['runs', 'show', 'no-such-run', '--server', base], { stdout: (t) => missing.push(t), stderr: (t) => missing.push(t), env: {}, isTTY: false, cwd: root })).toBe(4);
    expect(missing.join('')).toContain('OAO_ERR_RUN_NOT_FOUND');
  });
});
