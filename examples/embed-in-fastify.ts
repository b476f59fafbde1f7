// The OAO HTTP API inside your own Fastify app: your routes, hooks and CORS next to it, the API
// under a prefix of your choice.
// Run: npx tsx --conditions=oao-source examples/embed-in-fastify.ts
import cors from '@fastify/cors';
import Fastify from 'fastify';
import { oaoClientErrorHandler, oaoPlugin } from 'open-agent-orchestrator/server';

const app = Fastify({
  // Run ids of up to 128 characters fit in /oao/runs/:id (Fastify's default is 100).
  routerOptions: { maxParamLength: 256 },
  // Malformed HTTP (a URL over 16 KiB, a bad Content-Length) answered in the API's error shape.
  clientErrorHandler: oaoClientErrorHandler,
});
app.addHook('onRequest', async (request) => {
  request.log.debug({ url: request.url }, 'your own hook sees every request, the API\'s too');
});
await app.register(cors, { origin: 'https://console.example.com' });
app.get('/hello', () => ({ hello: 'world' }));

await app.register(oaoPlugin, {
  prefix: '/oao',
  agents: { echo: { invoke: (task: string) => ({ output: `echo: ${task}` }) } },
  policy: { maxSteps: 3 },
  apiKeys: [],
});
await app.ready();

const hello = await app.inject({ method: 'GET', url: '/hello' });
console.log('your route:', hello.json().hello);

const report = (await app.inject({ method: 'POST', url: '/oao/run', payload: { agent: 'echo', task: 'hi' } })).json();
console.log('POST /oao/run:', report.status, report.agentName, report.finalOutput);

const started = await app.inject({
  method: 'POST',
  url: '/oao/runs',
  headers: { origin: 'https://console.example.com' },
  payload: { agent: 'echo', task: 'later', policy: { maxSteps: 50 } },
});
const body = started.json();
console.log('POST /oao/runs:', started.statusCode, body.statusUrl.replace(body.executionId, '<id>'), 'maxSteps', body.effectivePolicy.maxSteps);
console.log('CORS:', started.headers['access-control-allow-origin']);

const document = (await app.inject({ method: 'GET', url: '/oao/openapi.json' })).json();
console.log('OpenAPI servers:', document.servers.map((server: { url: string }) => server.url).join(', '));
console.log('dashboard:', (await app.inject({ method: 'GET', url: '/oao/dashboard/' })).statusCode);

await app.close();
