import fc from 'fast-check';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorRegistry } from '../src/index.js';
import { createServer, errorBodySchema } from '../src/server/index.js';

/**
 * Property tests: whatever malformed body reaches POST /run, /runs or /run-multi (random text,
 * truncated JSON, JSON of the wrong shape, wrong content types, huge numbers, deep nesting, bodies
 * over the limit), the answer is a 4xx in the one error body shape with a registry code, and the
 * server keeps serving.
 */

const BODY_LIMIT = 4_096;
const ENDPOINTS = ['/run', '/runs', '/run-multi'] as const;
const REGISTERED = new Set(['echo', 'other']);

let app: FastifyInstance;
let answered = 0;

beforeAll(async () => {
  app = await createServer({
    agents: { echo: (task: unknown) => ({ output: task }), other: { invoke: () => 'ok' } },
    apiKeys: [],
    limits: { bodyLimit: BODY_LIMIT, maxTaskLength: 1_000 },
  });
});

afterAll(async () => {
  await app.close();
});

function expectErrorAnswer(response: LightMyRequestResponse, what: string): void {
  answered++;
  expect(response.statusCode, `${what} -> ${response.body.slice(0, 300)}`).toBeGreaterThanOrEqual(400);
  expect(response.statusCode, what).toBeLessThan(500);
  expect(response.headers['content-type'], what).toMatch(/^application\/json/);
  const { error } = errorBodySchema.parse(response.json());
  expect(Object.keys(errorRegistry), what).toContain(error.code);
  expect(response.statusCode, what).toBe(errorRegistry[error.code as keyof typeof errorRegistry].status);
  expect(error.message.length, what).toBeGreaterThan(0);
}

const endpoint = fc.constantFrom(...ENDPOINTS);

const contentType = fc.oneof(
  fc.constantFrom(
    'application/json',
    'application/json; charset=utf-8',
    'text/plain',
    'text/html',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=xyz',
    'application/octet-stream',
    'application/xml',
    'image/png',
  ),
  fc.string({ minLength: 1, maxLength: 30 }).filter((value) => /^[\x21-\x7e]+$/.test(value)),
);

const hugeNumber = fc.constantFrom('1e400', '-1e400', '1e308', '99999999999999999999999', '-0', '4.5e-400', '1.7976931348623157e308');

/** Bodies as raw text: garbage, truncated JSON, deep nesting, huge literals. */
const rawBody = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.json({ maxDepth: 4 }).chain((json) => fc.nat({ max: json.length }).map((cut) => json.slice(0, cut))),
  fc.json({ maxDepth: 4 }).map((json) => `${json}}`),
  fc.integer({ min: 1, max: 2_000 }).map((depth) => '['.repeat(depth) + ']'.repeat(depth)),
  fc.integer({ min: 1, max: 2_000 }).map((depth) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)),
  fc.integer({ min: 1, max: 500 }).map((depth) => '['.repeat(depth)),
  hugeNumber.map((n) => `{"agent":"echo","task":"t","policy":{"maxSteps":${n}}}`),
  hugeNumber.map((n) => `{"agent":"not-registered","task":${n},"executionId":"x","policy":{"maxTokens":${n}}}`),
  hugeNumber.map((n) => `{"agents":["echo"],"task":"t","maxConcurrency":${n},"policy":{"timeoutMs":${n}}}`),
  fc.constantFrom('{"__proto__":{"admin":true},"agent":"echo","task":"t"}', '{"constructor":{"prototype":{"x":1}},"agent":"echo","task":"t"}'),
  fc.integer({ min: BODY_LIMIT + 1, max: BODY_LIMIT * 3 }).map((size) => `{"agent":"echo","task":"${'x'.repeat(size)}"}`),
);

const unregisteredName = fc.string({ maxLength: 40 }).filter((name) => !REGISTERED.has(name));

/** Any JSON value, and the values that most often break validators. */
const junk: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.double(),
  fc.constantFrom(Number.MAX_SAFE_INTEGER + 2, -1, 0, 1.5, 2 ** 31, 1e21, '', ' ', 'echo', '3', null, [], {}, [[[[[]]]]]),
  fc.string({ unit: 'binary', maxLength: 50 }),
);

const policyJunk = fc.oneof(
  junk,
  fc.dictionary(fc.constantFrom('maxSteps', 'maxTokens', 'maxToolCalls', 'timeoutMs', 'tools', 'retry', 'nope'), junk, { minKeys: 1 }),
);

/**
 * Request-shaped objects that are never valid: the agent is never a registered name (or not a
 * string), so the best a request can reach is 404 OAO_ERR_UNKNOWN_AGENT.
 */
const requestShaped = fc.record(
  {
    agent: fc.oneof(unregisteredName, junk.filter((value) => typeof value !== 'string')),
    agents: fc.oneof(fc.array(fc.oneof(unregisteredName, junk), { minLength: 1, maxLength: 5 }).map((list) => [...list, 'not-an-agent']), junk),
    task: fc.oneof(junk, fc.string({ minLength: 1_001, maxLength: 1_200 })),
    policy: policyJunk,
    executionId: junk,
    maxConcurrency: junk,
    extra: junk,
  },
  { requiredKeys: ['agent', 'agents'] },
);

describe('fuzzing the run endpoints with malformed bodies', () => {
  it('answers random raw bodies under any content type with a 4xx error body', async () => {
    await fc.assert(
      fc.asyncProperty(endpoint, rawBody, fc.option(contentType, { nil: undefined }), async (url, payload, type) => {
        const headers: Record<string, string> = type === undefined ? {} : { 'content-type': type };
        const response = await app.inject({ method: 'POST', url, payload, headers });
        expectErrorAnswer(response, `${url} ${type ?? '(no content-type)'} ${JSON.stringify(payload.slice(0, 80))}`);
      }),
      { numRuns: 200 },
    );
  });

  it('answers JSON values of the wrong shape with a 4xx error body', async () => {
    await fc.assert(
      fc.asyncProperty(endpoint, fc.jsonValue({ maxDepth: 5 }), async (url, value) => {
        const response = await app.inject({ method: 'POST', url, payload: JSON.stringify(value), headers: { 'content-type': 'application/json' } });
        expectErrorAnswer(response, `${url} ${JSON.stringify(value).slice(0, 120)}`);
      }),
      { numRuns: 120 },
    );
  });

  it('answers request-shaped junk (wrong types, out-of-range numbers, unknown agents) with a 4xx error body', async () => {
    await fc.assert(
      fc.asyncProperty(endpoint, requestShaped, async (url, body) => {
        const payload = JSON.stringify(body);
        const response = await app.inject({ method: 'POST', url, payload, headers: { 'content-type': 'application/json' } });
        expectErrorAnswer(response, `${url} ${payload.slice(0, 160)}`);
      }),
      { numRuns: 150 },
    );
  });

  it('sent at least 300 malformed requests, and the server still serves', async () => {
    expect(answered).toBeGreaterThanOrEqual(300);
    const health = await app.inject({ method: 'GET', url: '/health' });
    expect(health.statusCode).toBe(200);
    const run = await app.inject({ method: 'POST', url: '/run', payload: { agent: 'echo', task: 'still fine' } });
    expect(run.statusCode).toBe(200);
    expect(run.json()).toMatchObject({ status: 'SUCCESS', finalOutput: 'still fine' });
    expect((await app.inject({ method: 'GET', url: '/runs' })).json().total).toBe(1);
  });
});

/**
 * Names a client chooses key records all over a run: agent and job names, tool names in a
 * policy's allow, deny and maxCalls. Names of Object.prototype members (and random ones) never
 * answer 5xx, whichever record they key.
 */
describe('fuzzing names that key records: Object.prototype members among them', () => {
  const prototypeNames = [...Object.getOwnPropertyNames(Object.prototype), '__proto__', 'prototype'];
  let named: FastifyInstance;

  beforeAll(async () => {
    const agentsByName = Object.fromEntries(
      ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf', 'echo'].map((name) => [
        name,
        {
          async invoke(task: unknown, ctx: { callTool: (tool: string, input: unknown) => Promise<unknown> }) {
            const tool = typeof task === 'object' && task !== null ? (task as { tool?: unknown }).tool : undefined;
            if (typeof tool === 'string') await ctx.callTool(tool, {}).catch(() => undefined);
            return { output: name };
          },
        },
      ]),
    );
    const toolsByName = Object.fromEntries(['constructor', 'toString', '__proto__', 'valueOf', 'search'].map((name) => [name, () => name]));
    named = await createServer({ agents: agentsByName, tools: toolsByName, apiKeys: [], policy: { maxToolCalls: 3, timeoutMs: 5_000 } });
  });

  afterAll(async () => {
    await named.close();
  });

  const name = fc.oneof({ arbitrary: fc.constantFrom(...prototypeNames), weight: 4 }, { arbitrary: fc.string({ maxLength: 12 }), weight: 1 });
  // Mostly valid limits, so that most requests get as far as a run.
  const limit = fc.oneof({ arbitrary: fc.nat({ max: 3 }), weight: 5 }, { arbitrary: junk, weight: 1 });

  /** A JSON text with `key` as an own key of an object (JSON.stringify of a literal would lose `__proto__`). */
  function objectText(entries: readonly (readonly [string, unknown])[]): string {
    return `{${entries.map(([key, value]) => `${JSON.stringify(key)}:${JSON.stringify(value) ?? 'null'}`).join(',')}}`;
  }

  const body = fc.record({
    agent: name,
    tool: name,
    maxCalls: fc.array(fc.tuple(name, limit), { maxLength: 3 }),
    allow: fc.option(fc.array(name, { maxLength: 3 }), { nil: undefined }),
    deny: fc.option(fc.array(name, { maxLength: 3 }), { nil: undefined }),
    jobs: fc.array(fc.tuple(name, name), { minLength: 1, maxLength: 3 }),
  });

  it('POST /run, /runs and /run-multi never answer 5xx, and answer errors in the one shape', async () => {
    await fc.assert(
      fc.asyncProperty(body, async ({ agent, tool, maxCalls, allow, deny, jobs }) => {
        const tools = [
          ...(allow === undefined ? [] : [`"allow":${JSON.stringify(allow)}`]),
          ...(deny === undefined ? [] : [`"deny":${JSON.stringify(deny)}`]),
          `"maxCalls":${objectText(maxCalls)}`,
        ].join(',');
        const policy = `{"tools":{${tools}}}`;
        const task = objectText([['tool', tool]]);
        const requests = [
          ['/run', `{"agent":${JSON.stringify(agent)},"task":${task},"policy":${policy}}`],
          ['/runs', `{"agent":${JSON.stringify(agent)},"task":${task},"policy":${policy}}`],
          ['/run-multi', `{"agents":${objectText(jobs)},"task":${task},"policy":${policy}}`],
        ] as const;
        for (const [url, payload] of requests) {
          const response = await named.inject({ method: 'POST', url, payload, headers: { 'content-type': 'application/json' } });
          const what = `${url} ${payload.slice(0, 200)}`;
          expect(response.statusCode, `${what} -> ${response.body.slice(0, 300)}`).toBeLessThan(500);
          if (response.statusCode >= 400) {
            const { error } = errorBodySchema.parse(response.json());
            expect(response.statusCode, what).toBe(errorRegistry[error.code as keyof typeof errorRegistry].status);
          }
        }
        const listed = await named.inject({ method: 'GET', url: `/runs?agent=${encodeURIComponent(agent)}` });
        expect(listed.statusCode, agent).toBeLessThan(500);
      }),
      { numRuns: 60 },
    );
  });
});
