import { connect } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorBodySchema } from '../src/server/index.js';
import { createServer } from '../src/server/index.js';

/** Answers the router and Node's HTTP layer give before any route, in the API's error shape. */

let app: FastifyInstance;
let port: number;

beforeAll(async () => {
  app = await createServer({ agents: { echo: (task: string) => task }, apiKeys: [] });
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as { port: number }).port;
});

afterAll(async () => {
  await app.close();
});

/** Sends raw bytes and returns the status and the body of the answer. */
function raw(request: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(request));
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const [head = '', ...rest] = data.split('\r\n\r\n');
      resolve({ status: Number(head.split(' ')[1]), body: rest.join('\r\n\r\n') });
    });
  });
}

describe('answers given before any route', () => {
  it('a run id with broken percent-encoding is 400 in the error shape', async () => {
    for (const method of ['GET', 'POST'] as const) {
      const answer = await app.inject({ method, url: '/runs/%ff/cancel' });
      expect(answer.statusCode).toBe(400);
      expect(errorBodySchema.parse(answer.json()).error.code).toBe('OAO_ERR_INVALID_ARGUMENT');
    }
  });

  it('a path parameter longer than any run id is 404 OAO_ERR_ROUTE_NOT_FOUND, not 414', async () => {
    for (const url of [`/runs/${'x'.repeat(300)}`, `/runs/${'x'.repeat(300)}/events`]) {
      const answer = await app.inject({ method: 'GET', url });
      expect(answer.statusCode).toBe(404);
      expect(errorBodySchema.parse(answer.json()).error.code).toBe('OAO_ERR_ROUTE_NOT_FOUND');
    }
  });

  it('an unsupported Expect header is 417 in the error shape', async () => {
    const answer = await raw('POST /run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nExpect: bogus\r\nConnection: close\r\n\r\n{}');
    expect(answer.status).toBe(417);
    expect(errorBodySchema.parse(JSON.parse(answer.body)).error.code).toBe('OAO_ERR_EXPECTATION_FAILED');
  });

  it('a request without Host is served like any other', async () => {
    const answer = await raw('GET /health HTTP/1.1\r\nConnection: close\r\n\r\n');
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ status: 'ok' });
  });
});
