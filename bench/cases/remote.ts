import { Role, type SendMessageRequest } from '@a2a-js/sdk';
import { ClientFactory } from '@a2a-js/sdk/client';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Orchestrator, type ExecutionReport } from 'open-agent-orchestrator';
import { fromRemoteAgent } from 'open-agent-orchestrator/remote';
import { startA2AAgentServer } from '../../examples/support/a2aAgentServer.js';
import type { BenchCase, BenchRatio } from '../harness.js';

/**
 * What governing a remote agent costs over the same loopback round trip done raw: a plain-HTTP
 * agent (node:http, one JSON POST per turn) and an A2A agent (express and @a2a-js/sdk's server,
 * one `message/stream` per turn, as the adapter sends it). The servers answer at once, so the rows
 * measure the client, the wire on loopback and OAO, not a model.
 */

const USAGE = { inputTokens: 12, outputTokens: 3 };

function expectSuccess(report: ExecutionReport, what: string): void {
  if (report.status !== 'SUCCESS') throw new Error(`bench: ${what} ended ${JSON.stringify(report.termination)} ${JSON.stringify(report.error)}`);
}

function subscribedOrchestrator(): Orchestrator {
  const orch = new Orchestrator();
  orch.events$.subscribe(() => {});
  return orch;
}

/**
 * A loopback JSON agent that answers every turn at once; it does not keep the process alive. It
 * keeps idle connections open: the bench runs other cases for seconds between two batches of this
 * one, and a server that closes an idle connection (Node's default: after 5 s) can do so just as
 * fetch reuses it, which fails that turn with ECONNRESET and the bench with it.
 */
let httpAgent: Promise<string> | undefined;
export function httpAgentUrl(): Promise<string> {
  httpAgent ??= (async () => {
    const body = JSON.stringify({ output: 'Governed.', usage: USAGE });
    const server: Server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    });
    server.keepAliveTimeout = 0;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    server.unref();
    server.on('connection', (socket) => socket.unref());
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/turn`;
  })();
  return httpAgent;
}

let a2aAgent: Promise<string> | undefined;
export function a2aAgentUrl(): Promise<string> {
  a2aAgent ??= (async () => {
    const server = await startA2AAgentServer({ name: 'bench', answer: () => ({ text: 'Governed.', usage: USAGE }) });
    server.unref();
    return server.url;
  })();
  return a2aAgent;
}

function a2aRequest(text: string): SendMessageRequest {
  return {
    tenant: '',
    message: {
      messageId: crypto.randomUUID(),
      contextId: '',
      taskId: '',
      role: Role.ROLE_USER,
      parts: [{ content: { $case: 'text', value: text }, metadata: undefined, filename: '', mediaType: 'text/plain' }],
      metadata: undefined,
      extensions: [],
      referenceTaskIds: [],
    },
    configuration: undefined,
    metadata: undefined,
  };
}

export const remoteCases: readonly BenchCase[] = [
  {
    kind: 'time',
    id: 'remote.http.raw',
    group: 'remote',
    label: 'raw: fetch() POST to a loopback JSON agent',
    description: 'One turn of the plain-HTTP contract sent with fetch and its JSON answer parsed, no OAO.',
    mode: 'async',
    setup: async () => {
      const url = await httpAgentUrl();
      const turn = async () => {
        const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ task: 't', runId: 'r', turn: 1, history: [] }) });
        return response.json();
      };
      await turn();
      return turn;
    },
  },
  {
    kind: 'time',
    id: 'remote.http.governed',
    group: 'remote',
    label: 'governed: run() of fromRemoteAgent over HTTP',
    description: 'The same turn as a governed run: lifecycle, a reserved and metered model call, the turn timer, events with one subscriber.',
    mode: 'async',
    setup: async () => {
      const orch = subscribedOrchestrator();
      const agent = fromRemoteAgent({ name: 'bench', transport: { kind: 'http', url: await httpAgentUrl() }, maxOutputTokens: 100 });
      expectSuccess(await orch.run({ agent, task: 't' }), 'the HTTP remote agent');
      return () => orch.run({ agent, task: 't' });
    },
  },
  {
    kind: 'time',
    id: 'remote.a2a.raw',
    group: 'remote',
    label: 'raw: A2A client.sendMessageStream() on loopback',
    description: "One A2A turn with @a2a-js/sdk's Client, its stream read to the end, no OAO.",
    mode: 'async',
    setup: async () => {
      const client = await new ClientFactory().createFromUrl(await a2aAgentUrl());
      const turn = async () => {
        let events = 0;
        for await (const _event of client.sendMessageStream(a2aRequest('t'))) events += 1;
        return events;
      };
      await turn();
      return turn;
    },
  },
  {
    kind: 'time',
    id: 'remote.a2a.governed',
    group: 'remote',
    label: 'governed: run() of fromRemoteAgent over A2A',
    description: 'The same A2A turn as a governed run: lifecycle, a reserved and metered model call, cancel wiring, events with one subscriber.',
    mode: 'async',
    setup: async () => {
      const orch = subscribedOrchestrator();
      const agent = fromRemoteAgent({ name: 'bench', transport: { kind: 'a2a', url: await a2aAgentUrl() }, maxOutputTokens: 100 });
      expectSuccess(await orch.run({ agent, task: 't' }), 'the A2A remote agent');
      return () => orch.run({ agent, task: 't' });
    },
  },
];

export const remoteRatios: readonly BenchRatio[] = [
  { id: 'remoteHttpGoverned/raw', label: 'governed HTTP remote turn / raw fetch', numerator: 'remote.http.governed', denominator: 'remote.http.raw' },
  { id: 'remoteA2aGoverned/raw', label: 'governed A2A remote turn / raw A2A client', numerator: 'remote.a2a.governed', denominator: 'remote.a2a.raw' },
];
