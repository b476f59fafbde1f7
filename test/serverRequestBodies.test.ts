import { createServer as createHttpServer } from 'node:http';
import { connect } from 'node:net';
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorRegistry, type AgentContext } from '../src/index.js';
import { createServer, errorBodySchema, oaoClientErrorHandler, oaoPlugin } from '../src/server/index.js';

/**
 * What reaches the server as a body, and what Node refuses before any route: JSON only and in
 * UTF-8 (415 otherwise), a `__proto__` key taken as plain data, and the HTTP layer's own refusals
 * (a body longer than its Content-Length, headers over Node's limit) in the one error shape, over
 * a real socket where inject() would tidy the request up.
 */

/** Every task this agent saw, as it arrived. */
const seen: unknown[] = [];
const agents = {
  keep: {
    invoke(task: unknown, _ctx: AgentContext) {
      seen.push(task);
      return { output: 'kept' };
    },
  },
};

let app: FastifyInstance;
let port: number;

beforeAll(async () => {
  app = await createServer({ agents, apiKeys: [] });
  await app.listen({ port: 0, host: '127.0.0.1' });
  port = (app.server.address() as { port: number }).port;
});

afterAll(async () => {
  await app.close();
});

function expectError(response: LightMyRequestResponse, status: number, code: string) {
  expect(response.statusCode, response.body).toBe(status);
  const { error } = errorBodySchema.parse(response.json());
  expect(error.code).toBe(code);
  expect(errorRegistry[error.code as keyof typeof errorRegistry].status).toBe(status);
  return error;
}

interface RawAnswer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** Writes `request` as it is to a fresh connection and reads every answer until the server closes it. */
function sendRaw(request: string, to = port): Promise<RawAnswer[]> {
  return new Promise((resolve, reject) => {
    const socket = connect(to, '127.0.0.1');
    let received = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(parseAnswers(received)));
    socket.setTimeout(5_000, () => socket.destroy(new Error('the server did not close the connection')));
    socket.write(request);
  });
}

function parseAnswers(text: string): RawAnswer[] {
  const answers: RawAnswer[] = [];
  let rest = text;
  while (rest.startsWith('HTTP/1.1 ')) {
    const headEnd = rest.indexOf('\r\n\r\n');
    const [statusLine, ...lines] = rest.slice(0, headEnd).split('\r\n');
    const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
    const length = Number(headers['content-length'] ?? 0);
    const body = rest.slice(headEnd + 4, headEnd + 4 + length);
    answers.push({ status: Number(statusLine?.split(' ')[1]), headers, body });
    rest = rest.slice(headEnd + 4 + length);
  }
  return answers;
}

/** Every answer is in the documented shape, with a registry code whose status it has. */
function expectErrorShape(answers: readonly RawAnswer[]): void {
  expect(answers.length).toBeGreaterThan(0);
  for (const answer of answers) {
    expect(answer.headers['content-type']).toMatch(/^application\/json/);
    const { error } = errorBodySchema.parse(JSON.parse(answer.body));
    expect(errorRegistry[error.code as keyof typeof errorRegistry]?.status, answer.body).toBe(answer.status);
  }
}

describe('a __proto__ key is data', () => {
  it('reaches the agent as an own key of the task and never sets a prototype', async () => {
    seen.length = 0;
    const raw = '{"agent":"keep","task":{"__proto__":{"polluted":true},"topic":"x","nested":{"__proto__":{"deep":1}}}}';
    const answer = await app.inject({ method: 'POST', url: '/run', payload: raw, headers: { 'content-type': 'application/json' } });
    expect(answer.statusCode, answer.body).toBe(200);
    expect(answer.json().status).toBe('SUCCESS');
    const task = seen[0] as Record<string, unknown>;
    expect(Object.keys(task).sort()).toEqual(['__proto__', 'nested', 'topic']);
    expect(Object.getOwnPropertyDescriptor(task, '__proto__')?.value).toEqual({ polluted: true });
    expect((task as { polluted?: unknown }).polluted).toBeUndefined();
    expect(Object.keys(task.nested as object)).toEqual(['__proto__']);
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
  });

  it('comes back in the answer as the run recorded it: the report served is the report hashed', async () => {
    const back = await createServer({ agents: { back: { invoke: (task: unknown) => ({ output: task as never }) } }, apiKeys: [] });
    try {
      const raw = '{"agent":"back","task":{"__proto__":{"a":1},"b":2},"executionId":"proto-back"}';
      const answer = await back.inject({ method: 'POST', url: '/run', payload: raw, headers: { 'content-type': 'application/json' } });
      expect(answer.statusCode, answer.body).toBe(200);
      expect(answer.body).toContain('"finalOutput":{"__proto__":{"a":1},"b":2}');
      const run = await back.inject({ method: 'GET', url: '/runs/proto-back' });
      expect(run.body).toContain('"finalOutput":{"__proto__":{"a":1},"b":2}');
    } finally {
      await back.close();
    }
  });

  it('is an unknown key like any other at the top of a request, and a job name like any other', async () => {
    const top = await app.inject({ method: 'POST', url: '/run', payload: '{"__proto__":{"agent":"keep"},"agent":"keep","task":"t"}', headers: { 'content-type': 'application/json' } });
    expect(expectError(top, 400, 'OAO_ERR_INVALID_ARGUMENT').details?.field).toBe('body.__proto__');

    const batch = await app.inject({
      method: 'POST',
      url: '/run-multi',
      payload: '{"agents":{"__proto__":"keep","plain":"keep"},"task":"t"}',
      headers: { 'content-type': 'application/json' },
    });
    expect(batch.statusCode, batch.body).toBe(200);
    expect(Object.keys(batch.json().reports).sort()).toEqual(['__proto__', 'plain']);
  });
});

describe('JSON in UTF-8 only: everything else is 415 OAO_ERR_UNSUPPORTED_MEDIA_TYPE', () => {
  const body = JSON.stringify({ agent: 'keep', task: 'héllo' });

  it.each(['application/json', 'application/json; charset=utf-8', 'application/json;charset=UTF-8', 'application/json; charset="utf-8"', 'Application/JSON; Charset=Utf-8'])(
    'accepts %s',
    async (contentType) => {
      const answer = await app.inject({ method: 'POST', url: '/run', payload: Buffer.from(body, 'utf8'), headers: { 'content-type': contentType } });
      expect(answer.statusCode, answer.body).toBe(200);
    },
  );

  it('refuses a UTF-16 body instead of misreading it as UTF-8', async () => {
    const utf16 = Buffer.from(`\ufeff${body}`, 'utf16le');
    const answer = await app.inject({ method: 'POST', url: '/run', payload: utf16, headers: { 'content-type': 'application/json; charset=utf-16' } });
    const error = expectError(answer, 415, 'OAO_ERR_UNSUPPORTED_MEDIA_TYPE');
    expect(error.details?.field).toBe('headers.content-type');
    expect(error.message).toContain('utf-16');
  });

  it.each(['application/json; charset=latin1', 'application/json; charset=utf-16le', 'text/plain', 'text/plain; charset=utf-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml'])(
    'refuses %s',
    async (contentType) => {
      expectError(await app.inject({ method: 'POST', url: '/runs', payload: body, headers: { 'content-type': contentType } }), 415, 'OAO_ERR_UNSUPPORTED_MEDIA_TYPE');
    },
  );
});

describe("what Node's HTTP parser refuses, answered in the one error shape (real socket)", () => {
  it('a body longer than its Content-Length', async () => {
    const body = '{"agent":"keep","task":"a task longer than the declared length"}';
    const answers = await sendRaw(`POST /run HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n${body}`);
    expectErrorShape(answers);
    expect(answers.every((answer) => answer.status === 400)).toBe(true);
  });

  it('a URL over the header limit is 431 (Node never answers 414), and so is a header', async () => {
    const longUrl = await sendRaw(`GET /runs/${'x'.repeat(20_000)} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    expectErrorShape(longUrl);
    expect(longUrl.map((answer) => answer.status)).toEqual([431]);
    expect(JSON.parse(longUrl[0]?.body ?? '{}').error.code).toBe('OAO_ERR_HEADERS_TOO_LARGE');

    const longHeader = await sendRaw(`GET /health HTTP/1.1\r\nHost: localhost\r\nX-Padding: ${'p'.repeat(20_000)}\r\n\r\n`);
    expect(longHeader.map((answer) => answer.status)).toEqual([431]);
    expectErrorShape(longHeader);
  });

  it('a long URL under the limit reaches the router: 404 in the same shape', async () => {
    const answers = await sendRaw(`GET /${'y'.repeat(8_000)} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    expect(answers.map((answer) => answer.status)).toEqual([404]);
    expectErrorShape(answers);
  });

  it('garbage instead of a request line', async () => {
    const answers = await sendRaw('NOT HTTP AT ALL\r\n\r\n');
    expect(answers.map((answer) => answer.status)).toEqual([400]);
    expectErrorShape(answers);
  });

  it('headers that never finish arriving: 408, in an app of its own that installs oaoClientErrorHandler', async () => {
    // Node checks for stalled requests every connectionsCheckingInterval: short ones here, so the
    // test waits a fraction of a second for the server's answer instead of a minute.
    const app = Fastify({
      clientErrorHandler: oaoClientErrorHandler,
      serverFactory: (handler) => createHttpServer({ headersTimeout: 200, requestTimeout: 300, connectionsCheckingInterval: 50 }, handler),
    });
    await app.register(oaoPlugin, { prefix: '/oao', agents, apiKeys: [] });
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const answers = await sendRaw('GET /oao/health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ', (app.server.address() as { port: number }).port);
      expect(answers.map((answer) => answer.status)).toEqual([408]);
      expectErrorShape(answers);
      expect(JSON.parse(answers[0]?.body ?? '{}').error.code).toBe('OAO_ERR_REQUEST_TIMEOUT');
    } finally {
      await app.close();
    }
  });
});
