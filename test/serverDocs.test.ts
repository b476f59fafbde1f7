import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agents, policy, tools } from '../examples/agents.js';
import { startServer, type StartedServer } from '../src/server/index.js';

/**
 * The curl lines of docs/server.md, sent (as fetch requests) to a real server serving the same
 * module `oao serve examples/agents.ts` serves, in the order the doc gives them: they must keep
 * working.
 */

interface CurlCall {
  readonly line: string;
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body: string | undefined;
}

/** Splits a shell line on spaces, honouring single quotes (all the doc uses). */
function words(line: string): string[] {
  const out: string[] = [];
  for (const match of line.matchAll(/'([^']*)'|(\S+)/g)) out.push(match[1] ?? match[2] ?? '');
  return out;
}

function parseCurl(line: string, base: string): CurlCall {
  const args = words(line).slice(1);
  let method: string | undefined;
  let url: string | undefined;
  let body: string | undefined;
  const headers: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '-X') method = args[++i];
    else if (arg === '-H') {
      const header = args[++i] as string;
      const colon = header.indexOf(':');
      headers[header.slice(0, colon).trim().toLowerCase()] = header.slice(colon + 1).trim();
    } else if (arg === '-d') body = args[++i];
    else if (arg.startsWith('-')) continue;
    else url = arg;
  }
  if (url === undefined) throw new Error(`no URL in: ${line}`);
  return { line, method: method ?? (body === undefined ? 'GET' : 'POST'), url: url.replace('localhost:3000', base), headers, body };
}

async function curlLines(): Promise<string[]> {
  const doc = await readFile(new URL('../docs/server.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('## Trying it with curl'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  return block.split('\n').filter((line) => line.startsWith('curl '));
}

let server: StartedServer;

beforeAll(async () => {
  server = await startServer({ agents, tools, policy, apiKeys: [], port: 0 });
});

afterAll(async () => {
  await server.close();
});

describe('docs/server.md', () => {
  it('every curl line works against the server', async () => {
    const lines = await curlLines();
    expect(lines.length).toBeGreaterThanOrEqual(15);
    const base = server.url.replace(/^http:\/\//, '');
    for (const line of lines) {
      const call = parseCurl(line, base);
      const response = await fetch(`http://${call.url}`, { method: call.method, headers: call.headers, ...(call.body === undefined ? {} : { body: call.body }) });
      const text = await response.text();
      const expectsError = line.includes('"nobody"') || line.includes('"maxSteps":0');
      if (expectsError) {
        expect(response.status, line).toBeGreaterThanOrEqual(400);
        expect(response.status, line).toBeLessThan(500);
        expect(JSON.parse(text).error.code, line).toMatch(/^OAO_ERR_/);
      } else {
        expect(response.status, `${line}\n${text.slice(0, 300)}`).toBeLessThan(300);
      }
      if (line.includes('/events')) {
        expect(response.headers.get('content-type'), line).toMatch(/^text\/event-stream/);
        expect(text, line).toContain('event: EXECUTION_COMPLETE');
      }
      if (line.includes('"maxSteps":2')) expect(JSON.parse(text).termination, line).toMatchObject({ reason: 'policy_violation', rule: 'max_steps' });
      if (line.endsWith('/cancel')) expect(JSON.parse(text).cancelled, line).toBe(false);
    }
  });

  it('documents every endpoint of the OpenAPI document', async () => {
    const doc = await readFile(new URL('../docs/server.md', import.meta.url), 'utf8');
    const openapi = (await (await fetch(`${server.url}/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    for (const [path, methods] of Object.entries(openapi.paths)) {
      for (const method of Object.keys(methods)) {
        expect(doc, `${method} ${path}`).toContain(`\`${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`);
      }
    }
  });
});
