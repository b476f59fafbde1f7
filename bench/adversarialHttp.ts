import { connect } from 'node:net';
import { parseArgs } from 'node:util';
import { getHeapStatistics } from 'node:v8';
import fc from 'fast-check';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { errorRegistry, executionReportSchema, type AgentContext } from 'open-agent-orchestrator';
import { createMetrics } from 'open-agent-orchestrator/metrics';
import { createServer, errorBodySchema } from 'open-agent-orchestrator/server';

/**
 * `npm run bench:adversarial-http [-- --scale 0.1] [-- --seed 7]`: the HTTP part of the
 * adversarial pass at full size, outside the test suite (which runs the same attacks at sizes
 * that take seconds). Every server listens on 127.0.0.1 only. Prints one line per category with
 * what was run and what held; exits 1 if any invariant broke. Run with --expose-gc for heap
 * figures after collection.
 *
 * 1. fast-check bodies to POST /run, /runs, /run-multi: every answer a 2xx, or a 4xx in the one
 *    error body shape with a registry code of that status; no 5xx.
 * 2. hand-made hostile requests over real sockets: no 5xx, no crash, no file outside the dashboard
 *    served, every error answer in the error shape, /health answers afterwards.
 * 3. auth probes against a server with keys, on every protected route: no bypass, no valid key
 *    refused.
 * 4. SSE clients that drop after their first chunk, in waves: connections, handles and heap back
 *    to the baseline, every run finished with a valid report.
 */

const { values: args } = parseArgs({ options: { scale: { type: 'string', default: '1' }, seed: { type: 'string', default: '20240601' } } });
const scale = Number(args.scale);
if (!Number.isFinite(scale) || scale <= 0) throw new Error(`--scale must be a positive number, got ${args.scale}`);
const seed = Number(args.seed);
if (!Number.isSafeInteger(seed)) throw new Error(`--seed must be an integer, got ${args.seed}`);
const size = (n: number): number => Math.max(1, Math.round(n * scale));

const gc = (globalThis as { gc?: () => void }).gc;
let broken = 0;

// A crash of the server is a crash of this process: record it and report it as a broken category
// instead of dying half-way through the report.
const uncaught: unknown[] = [];
process.on('uncaughtException', (error) => uncaught.push(error));
process.on('unhandledRejection', (error) => uncaught.push(error));

function heapMb(): number {
  gc?.();
  gc?.();
  return getHeapStatistics().used_heap_size / 1_048_576;
}

function handles(): number {
  return (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;
}

function check(category: string, ok: boolean, detail: string, notes: readonly string[] = []): void {
  if (!ok) broken += 1;
  console.log(`${ok ? 'held ' : 'BROKE'}  ${category.padEnd(34)} ${detail}`);
  if (!ok) for (const note of notes.slice(0, 12)) console.log(`       ${note}`);
}

/** Failures grouped by what went wrong, each with its count and first example. */
class Findings {
  readonly #groups = new Map<string, { count: number; example: string }>();

  get size(): number {
    let total = 0;
    for (const { count } of this.#groups.values()) total += count;
    return total;
  }

  add(signature: string, example: string): void {
    const group = this.#groups.get(signature);
    if (group === undefined) this.#groups.set(signature, { count: 1, example });
    else group.count += 1;
  }

  notes(): string[] {
    return [...this.#groups.entries()]
      .sort(([, a], [, b]) => b.count - a.count)
      .map(([signature, { count, example }]) => `${count}x ${signature}, e.g. ${example}`);
  }
}

/** What kind of answer this is: its status and error code, or the start of its body. */
function signatureOf(status: number, body: string): string {
  const code = /"code":"([^"]+)"/.exec(body)?.[1];
  return `${status} ${code ?? (body.length === 0 ? '(empty body)' : JSON.stringify(body.slice(0, 40)))}`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const seconds = (since: number) => `${((performance.now() - since) / 1_000).toFixed(1)} s`;

/** `{ 400: 3, 200: 1 }` as `200=1 400=3`. */
function tally(counts: ReadonlyMap<string | number, number>): string {
  return [...counts.entries()]
    .sort(([a], [b]) => String(a).localeCompare(String(b)))
    .map(([key, count]) => `${key}=${count}`)
    .join(' ');
}

function bump<K>(counts: Map<K, number>, key: K): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

/** Whether an error answer is in the documented shape, with a registry code whose status it has. */
function isRegistryError(status: number, contentType: string | undefined, body: string): boolean {
  if (!/^application\/json/.test(contentType ?? '')) return false;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return false;
  }
  const result = errorBodySchema.safeParse(parsed);
  if (!result.success || result.data.error.message.length === 0) return false;
  const entry = (errorRegistry as Record<string, { status: number } | undefined>)[result.data.error.code];
  return Object.hasOwn(errorRegistry, result.data.error.code) && entry?.status === status;
}

/** Runs `work` over `items`, `concurrency` at a time. */
async function inPool<T>(items: readonly T[], concurrency: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      await work(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/** A small deterministic PRNG (mulberry32), so the hand-made requests are the same on every run of a seed. */
function prng(start: number): (max: number) => number {
  let state = start >>> 0;
  return (max) => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4_294_967_296) * max);
  };
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP over a socket of its own: what inject() would tidy up, a real client can send.

interface RawAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

interface Exchange {
  /** Every complete answer, interim 1xx ones included. */
  readonly answers: readonly RawAnswer[];
  /** The server closed (or reset) the connection; otherwise this side gave up or went quiet. */
  readonly closedByServer: boolean;
}

interface ExchangeOptions {
  /** Half-close after writing (the server sees EOF). */
  readonly halfClose?: boolean;
  /** The request is HEAD: answers have no body whatever their Content-Length says. */
  readonly head?: boolean;
  /** After a complete answer, how long to wait for more (pipelined requests) before closing. */
  readonly quietMs?: number;
  /** Without a complete answer, when to give up (the server may rightly wait for more bytes). */
  readonly giveUpMs?: number;
}

/** Parses the answers in `text` (latin1); `atEnd` when the server has closed, ending a body with no length. */
function parseAnswers(text: string, head: boolean, atEnd: boolean): RawAnswer[] {
  const answers: RawAnswer[] = [];
  let rest = text;
  for (;;) {
    const statusLine = /^HTTP\/1\.[01] (\d{3})[^\r\n]*\r\n/.exec(rest);
    const headEnd = rest.indexOf('\r\n\r\n');
    if (statusLine === null || headEnd < 0) return answers;
    const headers: Record<string, string> = {};
    for (const line of rest.slice(statusLine[0].length, headEnd).split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const status = Number(statusLine[1]);
    let body = '';
    let after = headEnd + 4;
    const bodiless = head || (status >= 100 && status < 200) || status === 204 || status === 304;
    if (bodiless) {
      // nothing to read
    } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      let at = after;
      for (;;) {
        const lineEnd = rest.indexOf('\r\n', at);
        if (lineEnd < 0) return answers;
        const length = parseInt(rest.slice(at, lineEnd), 16);
        if (!Number.isFinite(length)) return answers;
        if (length === 0) {
          const trailerEnd = rest.indexOf('\r\n\r\n', lineEnd);
          if (trailerEnd < 0) return answers;
          after = trailerEnd + 4;
          break;
        }
        if (rest.length < lineEnd + 2 + length + 2) return answers;
        body += rest.slice(lineEnd + 2, lineEnd + 2 + length);
        at = lineEnd + 2 + length + 2;
      }
    } else if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      if (rest.length < after + length) return answers;
      body = rest.slice(after, after + length);
      after += length;
    } else {
      if (!atEnd) return answers;
      body = rest.slice(after);
      after = rest.length;
    }
    answers.push({ status, headers, body });
    rest = rest.slice(after);
  }
}

/** Writes `request` as it is to a fresh connection on loopback and collects what comes back. */
function exchange(port: number, request: string | Buffer, options: ExchangeOptions = {}): Promise<Exchange> {
  const { halfClose = false, head = false, quietMs = 60, giveUpMs = 1_500 } = options;
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let settled = false;
    let quiet: NodeJS.Timeout | undefined;
    const finish = (closedByServer: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(quiet);
      clearTimeout(giveUp);
      socket.destroy();
      resolve({ answers: parseAnswers(Buffer.concat(chunks).toString('latin1'), head, closedByServer), closedByServer });
    };
    const giveUp = setTimeout(() => finish(false), giveUpMs);
    // A server that answers and closes while the request is still being written resets the
    // connection: for this client that is an end like any other.
    socket.on('error', () => {});
    socket.on('close', () => finish(true));
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const answers = parseAnswers(Buffer.concat(chunks).toString('latin1'), head, false);
      if (answers.some((answer) => answer.status >= 200)) {
        clearTimeout(quiet);
        quiet = setTimeout(() => finish(false), quietMs);
      }
    });
    socket.write(request, () => {
      if (halfClose && !socket.destroyed) socket.end();
    });
  });
}

function listening(app: FastifyInstance): number {
  return (app.server.address() as { port: number }).port;
}

function connections(app: FastifyInstance): Promise<number> {
  return new Promise((resolve, reject) => app.server.getConnections((error, count) => (error ? reject(error) : resolve(count))));
}

async function connectionsBackTo(app: FastifyInstance, baseline: number, withinMs: number): Promise<number> {
  const until = performance.now() + withinMs;
  let count = await connections(app);
  while (count > baseline && performance.now() < until) {
    await sleep(20);
    count = await connections(app);
  }
  return count;
}

// ---------------------------------------------------------------------------------------------
// 1. fast-check bodies to the run endpoints.

const PROTOTYPE_NAMES = [...Object.getOwnPropertyNames(Object.prototype), '__proto__', 'prototype'];

{
  const started = performance.now();
  const uncaughtBefore = uncaught.length;
  const BODY_LIMIT = 65_536;
  const ENDPOINTS = ['/run', '/runs', '/run-multi'] as const;

  const plain = await createServer({
    agents: { echo: (task: unknown) => ({ output: task as never }), other: { invoke: () => 'ok' } },
    apiKeys: [],
    limits: { bodyLimit: BODY_LIMIT, maxTaskLength: 1_000, maxConcurrentRuns: 1_000 },
    policy: { maxSteps: 3, timeoutMs: 5_000 },
  });

  // Agents and tools registered under the names of Object.prototype members.
  const named = await createServer({
    agents: Object.fromEntries(
      ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', 'echo'].map((name) => [
        name,
        {
          async invoke(task: unknown, ctx: AgentContext) {
            const tool = typeof task === 'object' && task !== null && Object.hasOwn(task, 'tool') ? (task as { tool: unknown }).tool : undefined;
            if (typeof tool === 'string') await ctx.callTool(tool, {}).catch(() => undefined);
            return { output: name };
          },
        },
      ]),
    ),
    tools: Object.fromEntries(['constructor', 'toString', '__proto__', 'valueOf', 'propertyIsEnumerable', 'search'].map((name) => [name, () => name])),
    apiKeys: [],
    limits: { maxConcurrentRuns: 1_000 },
    policy: { maxSteps: 3, maxToolCalls: 3, timeoutMs: 5_000 },
  });

  const endpoint = fc.constantFrom(...ENDPOINTS);
  const contentType = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.constantFrom(
        'application/json',
        'application/json; charset=utf-8',
        'Application/JSON; Charset="UTF-8"',
        'application/json; charset=utf-16',
        'application/json; charset=utf-16le',
        'application/json; charset=latin1',
        'application/json; charset=iso-8859-1',
        'application/json; charset=us-ascii',
        'application/json; charset=',
        'application/json; charset=utf-8; charset=utf-16',
        'application/json; boundary=x',
        'application/jsonx',
        'application/json-seq',
        'application/vnd.api+json',
        'application/problem+json',
        'text/json',
        'text/plain',
        'text/plain; charset=utf-8',
        'text/html',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=xyz',
        'application/octet-stream',
        'application/xml',
        'image/png',
        '*/*',
        'application/*',
        ';',
      ),
    },
    { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 40 }).filter((value) => /^[\x20-\x7e]+$/.test(value) && value.trim() === value) },
  );
  const hugeNumber = fc.constantFrom('1e400', '-1e400', '1e308', '1.7976931348623157e308', '99999999999999999999999', '-0', '4.9e-324', '0.0000001', '1e-400', '9007199254740993');
  const registeredOrNot = fc.constantFrom('echo', 'other', 'nobody', 'constructor', '__proto__', '', 'ECHO', 'echo ', 'echo\u0000');

  const requestJson = fc
    .record({ agent: registeredOrNot, task: fc.jsonValue({ maxDepth: 2 }) })
    .map((body) => JSON.stringify(body));
  /** Bodies as text: garbage, truncated JSON, deep nesting, huge literals, over the limit. */
  const rawText = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 400 }),
    requestJson.chain((json) => fc.nat({ max: json.length }).map((cut) => json.slice(0, cut))),
    requestJson.map((json) => `${json}}`),
    requestJson.map((json) => `${json} ${json}`),
    fc.integer({ min: 1, max: 30_000 }).map((depth) => '['.repeat(depth) + ']'.repeat(depth)),
    fc.integer({ min: 1, max: 12_000 }).map((depth) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)),
    fc.integer({ min: 60, max: 20_000 }).map((depth) => `{"agent":"echo","task":${'['.repeat(depth)}${']'.repeat(depth)}}`),
    fc.integer({ min: 1, max: 5_000 }).map((depth) => '['.repeat(depth)),
    hugeNumber.map((n) => `{"agent":"echo","task":"t","policy":{"maxSteps":${n},"maxTokens":${n}}}`),
    hugeNumber.map((n) => `{"agent":"echo","task":${n},"executionId":"x${n}"}`),
    hugeNumber.map((n) => `{"agents":["echo"],"task":"t","maxConcurrency":${n},"policy":{"timeoutMs":${n}}}`),
    hugeNumber.map((n) => `{"agent":"echo","task":"t","policy":{"tools":{"maxCalls":{"search":${n}}},"retry":{"maxAttempts":${n}}}}`),
    fc.constantFrom(
      '{"__proto__":{"admin":true},"agent":"echo","task":"t"}',
      '{"constructor":{"prototype":{"polluted":1}},"agent":"echo","task":"t"}',
      '{"agent":"echo","agent":"nobody","task":"t"}',
      '{"agent":"echo","task":"\\ud800\\udfff\\ud800"}',
      '{"agent":"echo","task":"\\u0000"}',
      '{"agent":"echo","task":"t","policy":null}',
      '{"agents":{},"task":"t"}',
      '{"agents":[],"task":"t"}',
      '{"agents":"echo","task":"t"}',
      '\ufeff{"agent":"echo","task":"t"}',
      '{"agent":"echo","task":"t"}\u0000',
      ' \t\r\n{"agent":"echo","task":"t"}\n\n',
    ),
    fc.integer({ min: BODY_LIMIT + 1, max: BODY_LIMIT * 3 }).map((length) => `{"agent":"echo","task":"${'x'.repeat(length)}"}`),
  );
  /** The same texts in other encodings than the UTF-8 the API reads, and raw bytes. */
  const rawPayload = fc.oneof(
    { weight: 6, arbitrary: rawText },
    { weight: 1, arbitrary: rawText.map((text) => Buffer.from(`\ufeff${text}`, 'utf16le')) },
    { weight: 1, arbitrary: rawText.map((text) => Buffer.from(text, 'latin1')) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 400 }).map((bytes) => Buffer.from(bytes)) },
  );

  const junk: fc.Arbitrary<unknown> = fc.oneof(
    fc.jsonValue({ maxDepth: 3 }),
    fc.double(),
    fc.constantFrom(Number.MAX_SAFE_INTEGER + 2, -1, 0, 1.5, 2 ** 31, 2 ** 53, 1e21, -0, '', ' ', 'echo', '3', null, [], {}, [[[[[]]]]]),
    fc.string({ unit: 'binary', maxLength: 50 }),
  );
  const policyJunk = fc.oneof(
    junk,
    fc.dictionary(
      fc.constantFrom('maxSteps', 'maxTokens', 'maxToolCalls', 'timeoutMs', 'tools', 'retry', 'nope', 'constructor', 'toString'),
      fc.oneof(junk, fc.record({ allow: junk, deny: junk, maxCalls: fc.dictionary(fc.string({ maxLength: 8 }), junk) }, { requiredKeys: [] })),
      { minKeys: 1 },
    ),
  );
  const requestShaped = fc.record(
    {
      agent: fc.oneof(registeredOrNot, fc.string({ maxLength: 40 }), junk),
      agents: fc.oneof(fc.array(fc.oneof(registeredOrNot, junk), { maxLength: 6 }), fc.dictionary(fc.string({ maxLength: 10 }), fc.oneof(registeredOrNot, junk)), junk),
      task: fc.oneof(junk, fc.string({ minLength: 990, maxLength: 1_100 })),
      policy: policyJunk,
      executionId: fc.oneof(junk, fc.string({ minLength: 1, maxLength: 300 })),
      maxConcurrency: junk,
      extra: junk,
    },
    { requiredKeys: [] },
  );

  /** A JSON object text with these keys as own keys (JSON.stringify of a literal would lose `__proto__`). */
  const objectText = (entries: readonly (readonly [string, string])[]) => `{${entries.map(([key, value]) => `${JSON.stringify(key)}:${value}`).join(',')}}`;
  const protoName = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...PROTOTYPE_NAMES) }, { weight: 1, arbitrary: fc.string({ maxLength: 12 }) });
  const limit = fc.oneof({ weight: 5, arbitrary: fc.nat({ max: 3 }).map(String) }, { weight: 1, arbitrary: junk.map((value) => JSON.stringify(value) ?? 'null') });
  const nestedTask: fc.Arbitrary<string> = fc.oneof(
    protoName.map((tool) => objectText([['tool', JSON.stringify(tool)]])),
    fc.array(fc.tuple(protoName, protoName.map((tool) => objectText([['tool', JSON.stringify(tool)], ['__proto__', '{"polluted":true}']]))), { maxLength: 3 }).map(objectText),
  );
  const protoRequest = fc.record({
    agent: protoName,
    task: nestedTask,
    maxCalls: fc.array(fc.tuple(protoName, limit), { maxLength: 3 }),
    allow: fc.option(fc.array(protoName, { maxLength: 3 }), { nil: undefined }),
    deny: fc.option(fc.array(protoName, { maxLength: 3 }), { nil: undefined }),
    policyKey: fc.option(fc.tuple(protoName, limit), { nil: undefined, freq: 4 }),
    toolsKey: fc.option(fc.tuple(protoName, limit), { nil: undefined, freq: 4 }),
    topKey: fc.option(fc.tuple(protoName, limit), { nil: undefined, freq: 6 }),
    jobs: fc.array(fc.tuple(protoName, protoName), { minLength: 1, maxLength: 3 }),
  });

  const statuses = new Map<number, number>();
  const failures = new Findings();
  let sent = 0;
  let serverErrors = 0;

  async function send(app: FastifyInstance, url: string, payload: string | Buffer, type: string | undefined): Promise<void> {
    const response: LightMyRequestResponse = await app.inject({ method: 'POST', url, payload, headers: type === undefined ? {} : { 'content-type': type } });
    sent += 1;
    bump(statuses, response.statusCode);
    const what = () => `${url} ${type ?? '(no content-type)'} ${JSON.stringify(payload.toString('latin1').slice(0, 100))} -> ${response.statusCode} ${response.body.slice(0, 160)}`;
    if (response.statusCode >= 500) {
      serverErrors += 1;
      failures.add(`5xx: ${signatureOf(response.statusCode, response.body)}`, what());
    } else if (response.statusCode >= 400) {
      if (!isRegistryError(response.statusCode, response.headers['content-type'] as string | undefined, response.body)) {
        failures.add(`off the error shape: ${signatureOf(response.statusCode, response.body)}`, what());
      }
    } else if (response.statusCode >= 200 && response.statusCode < 300) {
      let body: unknown;
      try {
        body = response.json();
      } catch {
        failures.add('2xx not JSON', what());
        return;
      }
      if (url === '/run' && !executionReportSchema.safeParse(body).success) failures.add('2xx not a report', what());
    } else {
      failures.add(`neither 2xx nor 4xx: ${response.statusCode}`, what());
    }
  }

  /** Samples `count` values in batches, so a big run never holds every body at once. */
  async function each<T>(arbitrary: fc.Arbitrary<T>, count: number, stream: number, body: (value: T) => Promise<void>): Promise<void> {
    for (let done = 0, batch = 0; done < count; batch++) {
      const take = Math.min(500, count - done);
      for (const value of fc.sample(arbitrary, { numRuns: take, seed: seed + stream * 10_007 + batch })) await body(value);
      done += take;
    }
  }

  await each(fc.tuple(endpoint, rawPayload, fc.option(contentType, { nil: undefined, freq: 8 })), size(3_000), 1, ([url, payload, type]) => send(plain, url, payload, type));
  await each(fc.tuple(endpoint, fc.jsonValue({ maxDepth: 6 })), size(1_500), 2, ([url, value]) => send(plain, url, JSON.stringify(value) ?? 'null', 'application/json'));
  await each(fc.tuple(endpoint, requestShaped), size(2_400), 3, ([url, body]) => send(plain, url, JSON.stringify(body), 'application/json'));
  await each(protoRequest, size(800), 4, async ({ agent, task, maxCalls, allow, deny, policyKey, toolsKey, topKey, jobs }) => {
    const tools = objectText([
      ...(allow === undefined ? [] : [['allow', JSON.stringify(allow)] as const]),
      ...(deny === undefined ? [] : [['deny', JSON.stringify(deny)] as const]),
      ['maxCalls', objectText(maxCalls)],
      ...(toolsKey === undefined ? [] : [toolsKey]),
    ]);
    const policy = objectText([['tools', tools], ...(policyKey === undefined ? [] : [policyKey])]);
    const extra = topKey === undefined ? [] : [topKey];
    await send(named, '/run', objectText([['agent', JSON.stringify(agent)], ['task', task], ['policy', policy], ...extra]), 'application/json');
    await send(named, '/runs', objectText([['agent', JSON.stringify(agent)], ['task', task], ['policy', policy], ...extra]), 'application/json');
    await send(named, '/run-multi', objectText([['agents', objectText(jobs.map(([job, name]) => [job, JSON.stringify(name)]))], ['task', task], ['policy', policy], ...extra]), 'application/json');
  });

  const stillServes = (await plain.inject({ method: 'POST', url: '/run', payload: { agent: 'echo', task: 'still fine' } })).statusCode === 200;
  const polluted = ({} as Record<string, unknown>).polluted !== undefined || ({} as Record<string, unknown>).admin !== undefined;
  await plain.close();
  await named.close();
  const crashes = uncaught.length - uncaughtBefore;
  const twoxx = [...statuses].filter(([status]) => status < 300).reduce((sum, [, count]) => sum + count, 0);
  const fourxx = [...statuses].filter(([status]) => status >= 400 && status < 500).reduce((sum, [, count]) => sum + count, 0);
  check(
    'fuzzed bodies (inject)',
    failures.size === 0 && stillServes && !polluted && crashes === 0,
    `${sent} bodies: ${serverErrors} 5xx, ${twoxx} 2xx, ${fourxx} 4xx (${tally(statuses)}), ${failures.size - serverErrors} off the error shape, ` +
      `prototype ${polluted ? 'POLLUTED' : 'clean'}, ${crashes} uncaught, ${seconds(started)}`,
    [...failures.notes(), ...uncaught.slice(uncaughtBefore).map(String)],
  );
}

// ---------------------------------------------------------------------------------------------
// 2. Hand-made hostile requests over real sockets.

interface HostileRequest {
  readonly kind: string;
  readonly bytes: Buffer;
  readonly halfClose?: boolean;
  readonly head?: boolean;
}

/** Bytes that would only be in an answer if the server served a file outside the dashboard. */
const LEAK_MARKERS = ['"devDependencies"', 'root:x:0:0', '"compilerOptions"', '[core]', 'BEGIN RSA', 'PRIVATE KEY'];

function hostileRequests(count: number, random: (max: number) => number): HostileRequest[] {
  const pick = <T>(list: readonly T[]): T => list[random(list.length)] as T;
  const bytes = (...parts: (string | Buffer)[]) => Buffer.concat(parts.map((part) => (typeof part === 'string' ? Buffer.from(part, 'latin1') : part)));
  const head = (method: string, target: string, headers: readonly string[] = [], host = true) =>
    `${method} ${target} HTTP/1.1\r\n${host ? 'Host: 127.0.0.1\r\n' : ''}${headers.map((line) => `${line}\r\n`).join('')}\r\n`;
  const endpoints = ['/run', '/runs', '/run-multi'];
  const validBody = (url: string) => (url === '/run-multi' ? '{"agents":["echo"],"task":"hostile"}' : `{"agent":"echo","task":"${'h'.repeat(random(200))}"}`);
  const json = (body: string | Buffer, extra: readonly string[] = []) => ['Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`, ...extra];

  const families: Record<string, (k: number) => Omit<HostileRequest, 'kind'>> = {
    'content-length short': () => {
      const url = pick(endpoints);
      const body = validBody(url);
      return { bytes: bytes(head('POST', url, ['Content-Type: application/json', `Content-Length: ${random(body.length)}`]), body) };
    },
    'content-length long': (k) => {
      const url = pick(endpoints);
      const body = validBody(url);
      const declared = body.length + 1 + random(pick([10, 1_000, 1_000_000]));
      return { bytes: bytes(head('POST', url, ['Content-Type: application/json', `Content-Length: ${declared}`]), body), halfClose: k % 2 === 0 };
    },
    'chunked garbage': (k) => {
      const url = pick(endpoints);
      const body = validBody(url);
      const chunked = (chunks: string) => bytes(head('POST', url, ['Content-Type: application/json', 'Transfer-Encoding: chunked']), chunks);
      const variants = [
        () => chunked('zz\r\nhello\r\n0\r\n\r\n'),
        () => chunked(`${(body.length + 5).toString(16)}\r\n${body}\r\n0\r\n\r\n`),
        () => chunked(`${(body.length - 3).toString(16)}\r\n${body}\r\n0\r\n\r\n`),
        () => chunked('ffffffffffffffffffff\r\nabc\r\n0\r\n\r\n'),
        () => chunked('-1\r\nabc\r\n0\r\n\r\n'),
        () => chunked(`5;${'e'.repeat(20_000)}\r\nhello\r\n0\r\n\r\n`),
        () => chunked(`${body.length.toString(16)}\r\n${body}\r\n`),
        () => chunked(`${body.length.toString(16)}\n${body}\n0\n\n`),
        () => chunked(`${body.length.toString(16)}\r\n${body}0\r\n\r\n`),
        () => chunked(`${[...body].map((char) => `1\r\n${char}\r\n`).join('')}0\r\n\r\n`),
        () => chunked(`${body.length.toString(16)}\r\n${body}\r\n0\r\nX-Trailer: ${'t'.repeat(30_000)}\r\n\r\n`),
        () => bytes(head('POST', url, ['Content-Type: application/json', 'Transfer-Encoding: chunked', `Content-Length: ${body.length}`]), `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`),
        () => bytes(head('POST', url, ['Content-Type: application/json', 'Transfer-Encoding: chunked, identity']), body),
        () => bytes(head('POST', url, ['Content-Type: application/json', 'Transfer-Encoding: xchunked']), body),
        () => bytes(head('POST', url, ['Content-Type: application/json', 'Transfer-Encoding: chunked', 'Transfer-Encoding: chunked']), `0\r\n\r\n`),
        () => bytes(head('POST', url, ['Content-Type: application/json', 'Transfer-Encoding : chunked']), `0\r\n\r\n`),
        () => bytes(head('GET', '/health', ['Transfer-Encoding: chunked']), '0\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n'),
      ];
      return { bytes: (variants[k % variants.length] as () => Buffer)() };
    },
    'header flood': (k) => {
      const total = pick([100, 500, 1_000, 1_999, 2_000, 2_001, 3_000, 5_000, 20_000]);
      const names = [(i: number) => `a${i}:1`, (i: number) => `X-Flood-${i}: ${'v'.repeat(8)}`, () => 'Cookie: a=1', () => 'Accept: */*', () => 'Last-Event-ID: 1'];
      const name = names[k % names.length] as (i: number) => string;
      const lines = Array.from({ length: total }, (_, i) => name(i));
      if (k % 3 === 0) {
        const url = pick(endpoints);
        const body = validBody(url);
        return { bytes: bytes(head('POST', url, [...lines, ...json(body)]), body) };
      }
      return { bytes: bytes(head('GET', pick(['/health', '/runs', '/agents', '/runs/x/events', '/dashboard/']), lines)) };
    },
    'long url': (k) => {
      const length = pick([1_000, 4_000, 8_000, 12_000, 16_200, 16_500, 20_000, 64_000, 256_000, 1_000_000]);
      const targets = [
        () => `/runs/${'x'.repeat(length)}`,
        () => `/runs/${'x'.repeat(length)}/events`,
        () => `/dashboard/${'a/'.repeat(length / 2)}`,
        () => `/health?${'q=1&'.repeat(length / 4)}`,
        () => `/runs?agent=${'%41'.repeat(length / 3)}`,
        () => `/${'%'.repeat(length)}`,
      ];
      return { bytes: bytes(head(k % 7 === 0 ? 'POST' : 'GET', (targets[k % targets.length] as () => string)())) };
    },
    'long header': (k) => {
      const length = pick([4_000, 8_000, 16_000, 16_400, 17_000, 65_000, 300_000]);
      const lines = [
        `X-Long: ${'v'.repeat(length)}`,
        `${'N'.repeat(length)}: v`,
        `Cookie: ${'c=1; '.repeat(length / 5)}`,
        `Content-Type: application/json; ${'p=1;'.repeat(length / 4)}`,
        `Last-Event-ID: ${'9'.repeat(length)}`,
        `User-Agent: ${'u'.repeat(length)}`,
      ];
      const line = lines[k % lines.length] as string;
      if (k % 2 === 0) {
        const url = pick(endpoints);
        const body = validBody(url);
        return { bytes: bytes(head('POST', url, [line, `Content-Length: ${body.length}`]), body) };
      }
      return { bytes: bytes(head('GET', pick(['/health', '/runs/x/events', '/agents']), [line])) };
    },
    'bad method': (k) => {
      const requests = [
        head('FOO', '/health'),
        head('get', '/health'),
        head('G\u0000ET', '/health'),
        head('CONNECT', '127.0.0.1:80'),
        head('TRACE', '/health'),
        head('PROPFIND', '/runs'),
        head('DELETE', '/runs/x'),
        head('PATCH', '/run'),
        head('PUT', '/runs'),
        head('OPTIONS', '*'),
        head('OPTIONS', '/run'),
        head('M'.repeat(2_000), '/health'),
        'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
        'GET\r\n\r\n',
        'GET / HTTP/9.9\r\nHost: x\r\n\r\n',
        'GET /health HTTP/1.1 trailing\r\nHost: x\r\n\r\n',
        'GET /health\r\n\r\n',
        'GET /health HTTP/1.0\r\n\r\n',
        head('POST', '/health', ['Content-Length: 0']),
        head('GET', '/run'),
        head('DELETE', '/run-multi'),
        head('POST', '/agents', ['Content-Type: application/json', 'Content-Length: 2'], false) + '{}',
        head('LINK', '/runs'),
        head('SEARCH', '/runs'),
        head('ACL', '/'),
        head('\u0001', '/'),
      ];
      if (k % 9 === 8) return { bytes: bytes(head('HEAD', pick(['/health', '/agents', '/dashboard/', '/runs']))), head: true };
      return { bytes: bytes(requests[k % requests.length] as string) };
    },
    'dashboard traversal': (k) => {
      const targets = [
        '/dashboard/../package.json',
        '/dashboard/../../package.json',
        '/dashboard/../../../../../../etc/passwd',
        '/dashboard/%2e%2e/package.json',
        '/dashboard/%2e%2e/%2e%2e/package.json',
        '/dashboard/..%2fpackage.json',
        '/dashboard/..%2f..%2fpackage.json',
        '/dashboard/%2e%2e%2f%2e%2e%2fetc%2fpasswd',
        '/dashboard/..%5c..%5cpackage.json',
        '/dashboard/..\\..\\package.json',
        '/dashboard/....//....//package.json',
        '/dashboard//etc/passwd',
        '/dashboard/%252e%252e/package.json',
        '/dashboard/%c0%ae%c0%ae/package.json',
        '/dashboard/index.html/../../tsconfig.json',
        '/dashboard/index.html%00.json',
        '/dashboard/index.html%00',
        '/dashboard/.git/config',
        '/dashboard/../.git/config',
        '/dashboard/../src/server/index.ts',
        '/dashboard/./index.html',
        '/dashboard/%2findex.html',
        '/dashboard/INDEX.HTML',
        '/dashboard/index.html?../../package.json',
        '/dashboard/;/../package.json',
        '/dashboard/../dashboard/../package.json',
        '/dashboard/%ff%fe',
        '/dashboard/~/.ssh/id_rsa',
      ];
      return { bytes: bytes(head('GET', targets[k % targets.length] as string, ['Connection: close'])) };
    },
    'run id traversal': (k) => {
      const ids = [
        '..',
        '../health',
        '..%2fhealth',
        '%2e%2e%2f%2e%2e%2fetc%2fpasswd',
        '..%2F..%2Fpackage.json',
        '.',
        '%2e',
        'x%2f..%2f..%2fagents',
        '..;',
        '%00',
        'x%00y',
        '%ff',
        '%c3%28',
        '%',
        '%zz',
        '%E2%80%AE',
        'a'.repeat(129),
        'a'.repeat(257),
        '..\\..\\windows\\win.ini',
        'constructor',
        '__proto__',
        'hasOwnProperty',
      ];
      const suffix = pick(['', '/events', '/cancel', '/events?lastEventId=-1', '/events?lastEventId=1e400']);
      const method = suffix === '/cancel' ? 'POST' : 'GET';
      const extra = method === 'POST' ? ['Content-Type: application/json', 'Content-Length: 2', 'Connection: close'] : ['Connection: close'];
      return { bytes: bytes(head(method, `/runs/${ids[k % ids.length] as string}${suffix}`, extra), method === 'POST' ? '{}' : '') };
    },
    'NUL bytes': (k) => {
      const url = pick(endpoints);
      const body = validBody(url);
      const variants = [
        () => bytes(head('GET', '/health\u0000')),
        () => bytes(head('GET', '/runs/a\u0000b')),
        () => bytes(head('GET', '/health%00')),
        () => bytes(head('GET', '/runs?agent=%00')),
        () => bytes(head('GET', '/health', ['X-Nul: a\u0000b'])),
        () => bytes(head('GET', '/health', ['X-\u0000Nul: v'])),
        () => bytes(head('POST', url, json(`${body.slice(0, -1)},"\u0000":1}`)), `${body.slice(0, -1)},"\u0000":1}`),
        () => bytes(head('POST', url, json(`\u0000${body}`)), `\u0000${body}`),
        () => bytes(head('POST', url, json(body.replace('echo', 'ec\u0000ho'))), body.replace('echo', 'ec\u0000ho')),
        () => bytes(head('POST', url, json(body.replace('echo', 'ec\\u0000ho'))), body.replace('echo', 'ec\\u0000ho')),
        () => bytes(head('POST', url, ['Content-Type: application/json\u0000text/plain', `Content-Length: ${body.length}`]), body),
        () => bytes('\u0000'.repeat(64)),
      ];
      return { bytes: (variants[k % variants.length] as () => Buffer)() };
    },
    'invalid UTF-8': (k) => {
      const url = pick(endpoints);
      const sequences = [[0xc3, 0x28], [0xff], [0xfe, 0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0x80], [0xe2, 0x82]];
      const bad = Buffer.from(sequences[k % sequences.length] as number[]);
      const inTask = Buffer.concat([Buffer.from(url === '/run-multi' ? '{"agents":["echo"],"task":"' : '{"agent":"echo","task":"'), bad, Buffer.from('"}')]);
      const inName = Buffer.concat([Buffer.from(url === '/run-multi' ? '{"agents":["ec' : '{"agent":"ec'), bad, Buffer.from(url === '/run-multi' ? 'ho"],"task":"t"}' : 'ho","task":"t"}')]);
      const variants = [
        () => bytes(head('POST', url, json(inTask)), inTask),
        () => bytes(head('POST', url, json(inName)), inName),
        () => bytes(head('POST', url, json(inTask, [])), inTask),
        () => bytes(`GET /runs/`, bad, ` HTTP/1.1\r\nHost: x\r\n\r\n`),
        () => bytes(`GET /dashboard/`, bad, ` HTTP/1.1\r\nHost: x\r\n\r\n`),
        () => bytes(`GET /runs?agent=`, bad, ` HTTP/1.1\r\nHost: x\r\n\r\n`),
        () => bytes(`GET /health HTTP/1.1\r\nHost: x\r\nX-Bad: `, bad, `\r\n\r\n`),
        () => bytes(`GET /runs/x/events HTTP/1.1\r\nHost: x\r\nLast-Event-ID: `, bad, `\r\n\r\n`),
        () => bytes(head('GET', `/runs/${[...bad].map((byte) => `%${byte.toString(16)}`).join('')}`)),
        () => bytes(head('POST', url, ['Content-Type: application/json; charset=utf-8', `Content-Length: ${inTask.length}`]), inTask),
      ];
      return { bytes: (variants[k % variants.length] as () => Buffer)() };
    },
    'duplicate headers': (k) => {
      const url = pick(endpoints);
      const body = validBody(url);
      const length = `Content-Length: ${body.length}`;
      const variants = [
        ['Content-Type: application/json', 'Content-Type: application/json', length],
        ['Content-Type: application/json', 'Content-Type: text/plain', length],
        ['Content-Type: text/plain', 'Content-Type: application/json', length],
        ['Content-Type: application/json, text/plain', length],
        ['Content-Type: application/json; charset=utf-8', 'Content-Type: application/json; charset=utf-16', length],
        ['Content-Type: application/json', length, length],
        ['Content-Type: application/json', length, `Content-Length: ${body.length + 5}`],
        ['Content-Type: application/json', `Content-Length: ${body.length}, ${body.length}`],
        ['Content-Type: application/json', `Content-Length: +${body.length}`],
        ['Content-Type: application/json', `Content-Length: 0x${body.length.toString(16)}`],
        ['Content-Type: application/json', `Content-Length: ${body.length} `, 'Host: a', 'Host: b'],
        ['Content-Type: application/json', length, 'Content-Encoding: gzip'],
        ['Content-Type: application/json', length, 'Content-Encoding: br, gzip'],
      ];
      return { bytes: bytes(head('POST', url, variants[k % variants.length]), body) };
    },
    'broken framing': (k) => {
      const body = '{"agent":"echo","task":"framing"}';
      const requests = [
        'GET /health HTTP/1.1\nHost: x\n\n',
        'GET /health HTTP/1.1\rHost: x\r\r',
        'GET /health HTTP/1.1\r\nHost: x\r\n X-Folded: yes\r\n\r\n',
        'GET /health HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n',
        'GET /health HTTP/1.1\r\nHost : x\r\n\r\n',
        'GET /health HTTP/1.1\r\nHo st: x\r\n\r\n',
        'GET\t/health\tHTTP/1.1\r\nHost: x\r\n\r\n',
        'GET  /health  HTTP/1.1\r\nHost: x\r\n\r\n',
        'GET http://evil.example/health HTTP/1.1\r\nHost: x\r\n\r\n',
        'GET /health HTTP/1.1\r\n\r\n',
        'GET /health HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n',
        'GET //health HTTP/1.1\r\nHost: x\r\n\r\n',
        'GET health HTTP/1.1\r\nHost: x\r\n\r\n',
        `POST /run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n${body}`,
        `POST /run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: bogus\r\n\r\n${body}`,
        'GET /health HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n',
        'GET /health HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n',
        `${'GET /health HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(20)}`,
        `GET /health HTTP/1.1\r\nHost: x\r\n\r\nNOT HTTP\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n`,
        `POST /run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}POST /runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{"a":`,
        'GET /health HTTP/1.1\r\nHost: x\r\n',
        'GET /health HTTP/1.1',
        'GET /hea',
        '\r\n\r\n\r\n',
        'HTTP/1.1 200 OK\r\n\r\n',
      ];
      const request = requests[k % requests.length] as string;
      return { bytes: bytes(request), halfClose: !request.endsWith('\r\n\r\n') && !request.endsWith('\n\n') && !request.endsWith('\r\r') };
    },
  };

  const kinds = Object.keys(families);
  return Array.from({ length: count }, (_, index) => {
    const kind = kinds[index % kinds.length] as string;
    const k = Math.floor(index / kinds.length);
    return { kind, ...(families[kind] as (k: number) => Omit<HostileRequest, 'kind'>)(k) };
  });
}

{
  const started = performance.now();
  const uncaughtBefore = uncaught.length;
  const app = await createServer({ agents: { echo: (task: unknown) => ({ output: task as never }) }, apiKeys: [], limits: { bodyLimit: 65_536 } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = listening(app);
  const requests = hostileRequests(size(1_000), prng(seed));

  const statuses = new Map<string | number, number>();
  const failures = new Findings();
  let serverErrors = 0;
  let offShape = 0;
  let leaks = 0;
  const unanswered = new Map<string, number>();
  await inPool(requests, 50, async (request) => {
    const { answers } = await exchange(port, request.bytes, { halfClose: request.halfClose, head: request.head, giveUpMs: 1_500 });
    const finals = answers.filter((answer) => answer.status >= 200);
    if (finals.length === 0) {
      bump(unanswered, request.kind);
      bump(statuses, 'none');
    }
    for (const answer of answers) {
      bump(statuses, answer.status);
      const what = `${request.kind}: ${JSON.stringify(request.bytes.toString('latin1').slice(0, 90))} -> ${answer.status} ${answer.body.slice(0, 140)}`;
      if (answer.status >= 500) {
        serverErrors += 1;
        failures.add(`5xx: ${signatureOf(answer.status, answer.body)}`, what);
      } else if (answer.status >= 400 && !request.head && !isRegistryError(answer.status, answer.headers['content-type'], answer.body)) {
        offShape += 1;
        failures.add(`off the error shape: ${signatureOf(answer.status, answer.body)}`, what);
      }
      if (LEAK_MARKERS.some((marker) => answer.body.includes(marker))) {
        leaks += 1;
        failures.add('a file outside the dashboard served', what);
      }
    }
  });

  const health = (await exchange(port, 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')).answers[0];
  const healthy = health?.status === 200 && health.body.includes('"status":"ok"');
  const open = await connectionsBackTo(app, 0, 5_000);
  await app.close();
  const crashes = uncaught.length - uncaughtBefore;
  check(
    'hostile requests (real sockets)',
    serverErrors === 0 && offShape === 0 && leaks === 0 && crashes === 0 && healthy && open === 0,
    `${requests.length} requests in ${new Set(requests.map((request) => request.kind)).size} kinds: ${serverErrors} 5xx, answers ${tally(statuses)} ` +
      `(none: the server waited for more bytes or reset the connection: ${tally(unanswered) || 'none'}), ${offShape} off the error shape, ${leaks} files leaked, ${crashes} uncaught, ` +
      `/health ${health?.status ?? 'no answer'}, ${open} connections left, ${seconds(started)}`,
    [...failures.notes(), ...uncaught.slice(uncaughtBefore).map(String)],
  );
}

// ---------------------------------------------------------------------------------------------
// 3. Auth probes against a server with keys.

{
  const started = performance.now();
  const uncaughtBefore = uncaught.length;
  const KEY = 'k3y-Secret_0123456789abcdef';
  const SECOND = 'second.KEY-42';
  const app = await createServer({
    agents: { echo: (task: unknown) => ({ output: task as never }) },
    apiKeys: [KEY, SECOND],
    metrics: createMetrics(),
    limits: { maxConcurrentRuns: 1_000 },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = listening(app);
  const seeded = await app.inject({ method: 'POST', url: '/run', payload: { agent: 'echo', task: 'seed', executionId: 'auth-run' }, headers: { authorization: `Bearer ${KEY}` } });
  if (seeded.statusCode !== 200) throw new Error(`could not seed a run: ${seeded.statusCode} ${seeded.body}`);

  interface Route {
    readonly method: string;
    readonly path: string;
    readonly body?: string;
  }
  const routes: Route[] = [
    { method: 'GET', path: '/agents' },
    { method: 'GET', path: '/policy' },
    { method: 'GET', path: '/runs' },
    { method: 'GET', path: '/runs/auth-run' },
    { method: 'GET', path: '/runs/auth-run/events' },
    { method: 'GET', path: '/metrics' },
    { method: 'POST', path: '/run', body: '{"agent":"echo","task":"probe"}' },
    { method: 'POST', path: '/runs', body: '{"agent":"echo","task":"probe"}' },
    { method: 'POST', path: '/run-multi', body: '{"agents":["echo"],"task":"probe"}' },
    { method: 'POST', path: '/runs/auth-run/cancel', body: '{"reason":"probe"}' },
    { method: 'HEAD', path: '/agents' },
    { method: 'HEAD', path: '/runs/auth-run' },
  ];

  /** `refused`: must get a 4xx; `accepted`: must not get a 401; `either`: a key sent in an odd but recognisable way. */
  type Expect = 'refused' | 'accepted' | 'either';
  interface Credential {
    readonly name: string;
    readonly headers: readonly string[];
    readonly query?: string;
    readonly expect: Expect;
  }
  const swapCase = (value: string, at: number) => value.slice(0, at) + (value[at] === value[at]?.toUpperCase() ? value[at]?.toLowerCase() : value[at]?.toUpperCase()) + value.slice(at + 1);
  const base64 = (value: string) => Buffer.from(value).toString('base64');
  const credentials: Credential[] = [
    { name: 'no header', headers: [], expect: 'refused' },
    { name: 'empty', headers: ['Authorization:'], expect: 'refused' },
    { name: 'blank', headers: ['Authorization:    '], expect: 'refused' },
    { name: 'scheme only', headers: ['Authorization: Bearer'], expect: 'refused' },
    { name: 'scheme and space', headers: ['Authorization: Bearer '], expect: 'refused' },
    { name: 'wrong key', headers: ['Authorization: Bearer not-the-key'], expect: 'refused' },
    { name: 'empty quotes', headers: ['Authorization: Bearer ""'], expect: 'refused' },
    { name: 'prefix', headers: [`Authorization: Bearer ${KEY.slice(0, -1)}`], expect: 'refused' },
    { name: 'first char', headers: [`Authorization: Bearer ${KEY.slice(0, 1)}`], expect: 'refused' },
    { name: 'half', headers: [`Authorization: Bearer ${KEY.slice(0, KEY.length / 2)}`], expect: 'refused' },
    { name: 'suffix', headers: [`Authorization: Bearer ${KEY}x`], expect: 'refused' },
    { name: 'two keys glued', headers: [`Authorization: Bearer ${KEY}${SECOND}`], expect: 'refused' },
    { name: 'two tokens', headers: [`Authorization: Bearer ${KEY} ${SECOND}`], expect: 'refused' },
    { name: 'upper case', headers: [`Authorization: Bearer ${KEY.toUpperCase()}`], expect: 'refused' },
    { name: 'lower case', headers: [`Authorization: Bearer ${KEY.toLowerCase()}`], expect: 'refused' },
    { name: 'one letter case', headers: [`Authorization: Bearer ${swapCase(KEY, 5)}`], expect: 'refused' },
    { name: 'second key prefix', headers: [`Authorization: Bearer ${SECOND.slice(0, -2)}`], expect: 'refused' },
    { name: 'homoglyph', headers: [`Authorization: Bearer ${KEY.replace('e', '\u00d0\u00b5')}`], expect: 'refused' },
    { name: 'long garbage', headers: [`Authorization: Bearer ${'a'.repeat(10_000)}`], expect: 'refused' },
    { name: 'Basic key', headers: [`Authorization: Basic ${base64(KEY)}`], expect: 'refused' },
    { name: 'Basic user:key', headers: [`Authorization: Basic ${base64(`user:${KEY}`)}`], expect: 'refused' },
    { name: 'Basic key:', headers: [`Authorization: Basic ${base64(`${KEY}:`)}`], expect: 'refused' },
    { name: 'Token scheme', headers: [`Authorization: Token ${KEY}`], expect: 'refused' },
    { name: 'no scheme', headers: [`Authorization: ${KEY}`], expect: 'refused' },
    { name: 'scheme glued', headers: [`Authorization: Bearer${KEY}`], expect: 'refused' },
    { name: 'scheme colon', headers: [`Authorization: Bearer:${KEY}`], expect: 'refused' },
    { name: 'query api_key', headers: [], query: `api_key=${KEY}`, expect: 'refused' },
    { name: 'query access_token', headers: [], query: `access_token=${KEY}`, expect: 'refused' },
    { name: 'query authorization', headers: [], query: `authorization=Bearer%20${KEY}`, expect: 'refused' },
    { name: 'query token', headers: [], query: `token=${KEY}&key=${KEY}&apiKey=${KEY}`, expect: 'refused' },
    { name: 'X-API-Key', headers: [`X-API-Key: ${KEY}`], expect: 'refused' },
    { name: 'cookie', headers: [`Cookie: oao_key=${KEY}; token=${KEY}`], expect: 'refused' },
    { name: 'Proxy-Authorization', headers: [`Proxy-Authorization: Bearer ${KEY}`], expect: 'refused' },
    { name: 'X-Authorization', headers: [`X-Authorization: Bearer ${KEY}`], expect: 'refused' },
    { name: 'wrong then right', headers: ['Authorization: Bearer wrong', `Authorization: Bearer ${KEY}`], expect: 'refused' },
    { name: 'empty then right', headers: ['Authorization: ', `Authorization: Bearer ${KEY}`], expect: 'refused' },
    { name: 'wrong, right in one', headers: [`Authorization: Bearer wrong, Bearer ${KEY}`], expect: 'refused' },
    { name: 'NUL after key', headers: [`Authorization: Bearer ${KEY}\u0000`], expect: 'refused' },
    { name: 'right then wrong', headers: [`Authorization: Bearer ${KEY}`, 'Authorization: Bearer wrong'], expect: 'either' },
    { name: 'right, wrong in one', headers: [`Authorization: Bearer ${KEY}, Bearer wrong`], expect: 'either' },
    { name: 'tab separator', headers: [`Authorization: Bearer\t${KEY}`], expect: 'either' },
    { name: 'valid', headers: [`Authorization: Bearer ${KEY}`], expect: 'accepted' },
    { name: 'valid second key', headers: [`Authorization: Bearer ${SECOND}`], expect: 'accepted' },
    { name: 'lower-case scheme', headers: [`authorization: bearer ${KEY}`], expect: 'accepted' },
    { name: 'extra spaces', headers: [`Authorization: Bearer   ${KEY}  `], expect: 'accepted' },
  ];
  const probes = routes.flatMap((route) => credentials.map((credential) => ({ route, credential })));
  // Paths that look like a protected route but are not one, without a key: never a 2xx.
  const lookalikes = ['/agents/', '//agents', '/AGENTS', '/%61gents', '/agents%00', '/./agents', '/runs/../agents', '/health/../agents', '/agents;x', '/dashboard/../runs', '/docs/../policy', '/health%2f..%2fagents', '/runs/auth-run/', '/runs/auth-run/events/', '/Runs/auth-run'];
  const wanted = size(500);
  const lookalikeProbes = lookalikes.map((path): { route: Route; credential: Credential } => ({ route: { method: 'GET', path }, credential: credentials[0] as Credential }));
  const all = [...probes, ...lookalikeProbes];
  const step = Math.max(1, all.length / wanted);
  const chosen = Array.from({ length: Math.min(wanted, all.length) }, (_, i) => all[Math.floor(i * step)] as (typeof all)[number]);

  const statuses = new Map<string | number, number>();
  const failures = new Findings();
  /** Refusals other than 401, by probe: the HTTP parser's 400s, the router's 404s. */
  const otherRefusals = new Map<string, number>();
  let bypasses = 0;
  let refusedValid = 0;
  let offShape = 0;
  await inPool(chosen, 20, async ({ route, credential }) => {
    const target = credential.query === undefined ? route.path : `${route.path}${route.path.includes('?') ? '&' : '?'}${credential.query}`;
    const body = route.body ?? '';
    const lines = [
      `${route.method} ${target} HTTP/1.1`,
      'Host: 127.0.0.1',
      'Connection: close',
      ...credential.headers,
      ...(route.body === undefined ? [] : ['Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`]),
    ];
    const { answers } = await exchange(port, Buffer.from(`${lines.join('\r\n')}\r\n\r\n${body}`, 'latin1'), { head: route.method === 'HEAD', giveUpMs: 3_000 });
    const answer = answers.find((candidate) => candidate.status >= 200);
    const status = answer?.status ?? 'none';
    bump(statuses, status);
    const what = `${credential.name} ${route.method} ${target.slice(0, 80)} -> ${status} ${answer?.body.slice(0, 120) ?? ''}`;
    if (credential.expect === 'refused' && (answer === undefined || answer.status < 400)) {
      if (answer !== undefined) bypasses += 1;
      failures.add(answer === undefined ? 'no answer' : `BYPASS: ${credential.name}`, what);
    }
    if (credential.expect === 'refused' && answer !== undefined && answer.status >= 400 && answer.status !== 401) {
      bump(otherRefusals, `${lookalikes.includes(route.path) ? 'look-alike path' : credential.name} ${answer.status}`);
    }
    if (credential.expect === 'accepted' && (answer === undefined || answer.status === 401 || answer.status >= 500)) {
      refusedValid += 1;
      failures.add(`valid key refused: ${credential.name}`, what);
    }
    if (answer !== undefined && answer.status === 401) {
      const shaped = route.method === 'HEAD' || (isRegistryError(401, answer.headers['content-type'], answer.body) && answer.body.includes('OAO_ERR_UNAUTHORIZED'));
      if (!shaped || !/^Bearer/i.test(answer.headers['www-authenticate'] ?? '')) {
        offShape += 1;
        failures.add(`401 off the error shape: ${signatureOf(401, answer.body)}`, what);
      }
    }
    if (answer !== undefined && answer.status >= 500) failures.add(`5xx: ${signatureOf(answer.status, answer.body)}`, what);
  });
  const open = await connectionsBackTo(app, 0, 5_000);
  await app.close();
  const crashes = uncaught.length - uncaughtBefore;
  check(
    'auth probes (real sockets)',
    failures.size === 0 && crashes === 0 && open === 0,
    `${chosen.length} probes (${routes.length} routes x ${credentials.length} credentials, ${lookalikes.length} look-alike paths): ` +
      `${bypasses} bypasses, ${refusedValid} valid keys refused, ${offShape} 401s off the shape, answers ${tally(statuses)} ` +
      `(refused without 401: ${tally(otherRefusals) || 'none'}), ${crashes} uncaught, ${seconds(started)}`,
    [...failures.notes(), ...uncaught.slice(uncaughtBefore).map(String)],
  );
}

// ---------------------------------------------------------------------------------------------
// 4. SSE clients that drop after their first chunk.

{
  const started = performance.now();
  const uncaughtBefore = uncaught.length;
  const WAVE = 100;
  const TIMER_MS = 500;
  /** One gate per wave: the gated runs of a wave wait in their step until every client of it has gone. */
  const gates = new Map<string, { promise: Promise<void>; open: () => void }>();
  const gate = (name: string) => {
    let entry = gates.get(name);
    if (entry === undefined) {
      let open!: () => void;
      const promise = new Promise<void>((resolve) => (open = resolve));
      entry = { promise, open };
      gates.set(name, entry);
    }
    return entry;
  };
  const waits = {
    name: 'waits',
    async invoke(task: string, ctx: AgentContext) {
      ctx.usage({ input: 1, output: 1 });
      await new Promise<void>((resolve, reject) => {
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true });
        if (task.startsWith('gate:')) void gate(task).promise.then(resolve);
        else if (task.startsWith('timer:')) {
          const timer = setTimeout(resolve, Number(task.slice('timer:'.length)));
          ctx.signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
        } else resolve();
      });
      return { output: `done: ${task}` };
    },
  };
  const app = await createServer({ agents: { waits }, apiKeys: [], limits: { maxConcurrentRuns: 1_000 }, policy: { timeoutMs: 30_000 } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = listening(app);

  type Drop = 'destroy' | 'end' | 'reset';
  /** Opens GET /runs/:id/events and drops the connection as soon as the first chunk arrives. */
  function dropAfterFirstChunk(id: string, drop: Drop): { firstChunk: Promise<string | undefined>; closed: Promise<void> } {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    let first: ((chunk: string | undefined) => void) | undefined;
    const firstChunk = new Promise<string | undefined>((resolve) => (first = resolve));
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    const giveUp = setTimeout(() => socket.destroy(), 10_000);
    socket.on('close', () => {
      clearTimeout(giveUp);
      first?.(undefined);
    });
    socket.once('data', (chunk: Buffer) => {
      first?.(chunk.toString('latin1'));
      first = undefined;
      if (drop === 'destroy') socket.destroy();
      else if (drop === 'reset') socket.resetAndDestroy();
      else socket.end();
    });
    socket.write(`GET /runs/${id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`);
    return { firstChunk, closed };
  }

  interface WaveOutcome {
    readonly clients: number;
    readonly firstChunks: number;
    readonly midRun: number;
    readonly finished: number;
    readonly badReports: string[];
  }

  async function wave(index: number, clients: number): Promise<WaveOutcome> {
    const gateName = `gate:${index}`;
    const ids: string[] = [];
    for (let i = 0; i < clients; i++) {
      const task = i % 2 === 0 ? gateName : `timer:${TIMER_MS}`;
      const response = await app.inject({ method: 'POST', url: '/runs', payload: { agent: 'waits', task } });
      if (response.statusCode !== 202) throw new Error(`POST /runs answered ${response.statusCode}: ${response.body}`);
      ids.push(response.json<{ executionId: string }>().executionId);
    }
    const drops: Drop[] = ['destroy', 'reset', 'end'];
    const opened = ids.map((id, i) => dropAfterFirstChunk(id, drops[i % drops.length] as Drop));
    const chunks = await Promise.all(opened.map((client) => client.firstChunk));
    gate(gateName).open();
    await Promise.all(opened.map((client) => client.closed));
    gates.delete(gateName);

    const badReports: string[] = [];
    let finished = 0;
    for (const id of ids) {
      let state: { status: string; report: unknown } | undefined;
      for (let attempt = 0; attempt < 500; attempt++) {
        state = (await app.inject({ method: 'GET', url: `/runs/${id}` })).json();
        if (state?.status !== 'running') break;
        await sleep(10);
      }
      if (state?.status === 'SUCCESS' && executionReportSchema.safeParse(state.report).success) finished += 1;
      else badReports.push(`${id}: ${JSON.stringify(state).slice(0, 200)}`);
    }
    return {
      clients,
      firstChunks: chunks.filter((chunk) => chunk !== undefined).length,
      midRun: chunks.filter((chunk) => chunk !== undefined && !chunk.includes('EXECUTION_COMPLETE')).length,
      finished,
      badReports,
    };
  }

  // Warm up: fill the store to its steady state (it keeps the last 1000 runs) and run one wave, so
  // the baseline includes what every later wave reuses.
  for (let i = 0; i < 1_000; i++) await app.inject({ method: 'POST', url: '/run', payload: { agent: 'waits', task: 'now' } });
  await wave(-1, WAVE);
  await connectionsBackTo(app, 0, 5_000);
  await sleep(50);
  const heapBefore = heapMb();
  const handlesBefore = handles();
  const connectionsBefore = await connections(app);

  const total = size(3_000);
  const totals = { clients: 0, firstChunks: 0, midRun: 0, finished: 0 };
  const badReports: string[] = [];
  for (let index = 0; totals.clients < total; index++) {
    const outcome = await wave(index, Math.min(WAVE, total - totals.clients));
    totals.clients += outcome.clients;
    totals.firstChunks += outcome.firstChunks;
    totals.midRun += outcome.midRun;
    totals.finished += outcome.finished;
    badReports.push(...outcome.badReports);
  }
  const connectionsAfter = await connectionsBackTo(app, connectionsBefore, 5_000);
  await sleep(50);
  const heapAfter = heapMb();
  const handlesAfter = handles();
  await app.close();
  const crashes = uncaught.length - uncaughtBefore;
  check(
    'SSE clients dropping mid-run',
    totals.firstChunks === totals.clients &&
      totals.finished === totals.clients &&
      connectionsAfter <= connectionsBefore &&
      handlesAfter <= handlesBefore &&
      heapAfter - heapBefore < 4 &&
      crashes === 0,
    `${totals.clients} clients in waves of ${WAVE} (${totals.firstChunks} got a first chunk, ${totals.midRun} dropped before their run finished), ` +
      `${totals.finished} runs finished with a valid report, connections ${connectionsBefore} -> ${connectionsAfter}, handles ${handlesBefore} -> ${handlesAfter}, ` +
      `heap ${heapBefore.toFixed(1)} -> ${heapAfter.toFixed(1)} MB, ${crashes} uncaught, ${seconds(started)}`,
    [...badReports, ...uncaught.slice(uncaughtBefore).map(String)],
  );
}

console.log(broken === 0 ? '\nevery invariant held' : `\n${broken} categor${broken === 1 ? 'y' : 'ies'} broke`);
process.exitCode = broken === 0 ? 0 : 1;
