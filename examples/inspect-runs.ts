/**
 * Streams a run and a supervised batch to an XState inspector over WebSocket.
 *
 * With OAO_INSPECT_URL set (for example ws://localhost:8080 from `createInspectorServer()` of
 * `@statelyai/inspect/server`, which opens the Stately inspector in a browser), the actors show up
 * there. Without it, a small local endpoint stands in for the inspector and prints what it receives.
 *
 *   npx tsx --conditions=oao-source examples/inspect-runs.ts
 */
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { MultiAgentOrchestrator, Orchestrator, type AgentContext } from 'open-agent-orchestrator';
import { createRunInspector } from 'open-agent-orchestrator/inspect';

interface Message {
  type: string;
  name?: string;
  sessionId: string;
  parentId?: string;
  event?: { type: string };
  snapshot?: { value?: unknown; status?: string; context?: { session?: { steps: number; tokens: { total: number } } } };
}

/** 'TERMINATE', or { EXECUTE: { running: 'working' } } as 'EXECUTE.running.working'. */
function stateName(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value !== 'object' || value === null) return String(value);
  return Object.entries(value).map(([parent, child]) => `${parent}.${stateName(child)}`).join(',');
}

let local: WebSocketServer | undefined;
const received: Message[] = [];
let url = process.env.OAO_INSPECT_URL;
if (url === undefined) {
  local = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => local?.once('listening', resolve));
  local.on('connection', (socket) => socket.on('message', (data: Buffer) => received.push(JSON.parse(data.toString('utf8')) as Message)));
  url = `ws://127.0.0.1:${(local.address() as AddressInfo).port}`;
}

const inspector = createRunInspector({ url });
await inspector.ready();
console.log(`inspector connected: ${inspector.connected}`);

const researcher = {
  name: 'researcher',
  async invoke(task: string, ctx: AgentContext) {
    ctx.usage({ input: 120, output: 80 });
    return { output: `notes on ${task}: ${String(await ctx.callTool('search', { q: task }))}` };
  },
};
const tools = { search: ({ q }: { q: string }) => `3 results for ${q}` };

const orch = new Orchestrator({ inspect: inspector.inspect });
const report = await orch.run({ agent: researcher, task: 'actors', tools });
console.log(`run: ${report.status} in ${report.totalSteps} step(s)`);

const multi = new MultiAgentOrchestrator({ maxConcurrency: 2, inspect: inspector.inspect });
const reports = await multi.runAll([
  { agent: researcher, task: 'supervision', tools },
  { agent: (task: string) => `summary of ${task}`, task: 'supervision' },
]);
console.log(`batch: ${reports.map((r) => r.status).join(', ')}`);

await inspector.stop();

if (local !== undefined) {
  // What an inspector is shown: each actor as it registers, then its states, with the run's ledger summarized.
  const names = new Map<string, string>();
  for (const message of received) {
    if (message.type === '@xstate.actor') names.set(message.sessionId, message.name ?? message.sessionId);
  }
  const runs = [report.executionId, ...reports.map((r) => r.executionId)];
  for (const [index, executionId] of runs.entries()) {
    const sessionId = [...names].find(([, name]) => name === executionId)?.[0];
    const states = received
      .filter((m) => m.type === '@xstate.snapshot' && m.sessionId === sessionId)
      .map((m) => stateName(m.snapshot?.value));
    const last = received.filter((m) => m.sessionId === sessionId && m.snapshot?.context?.session !== undefined).at(-1);
    const parent = received.find((m) => m.type === '@xstate.actor' && m.sessionId === sessionId)?.parentId;
    console.log(
      `run ${index + 1}: ${states.join(' -> ')}; ledger: ${last?.snapshot?.context?.session?.steps} step, ${last?.snapshot?.context?.session?.tokens.total} tokens` +
        (parent === undefined ? '' : `; child of ${names.get(parent) ?? parent}`),
    );
  }
  console.log(`messages received: ${received.length} (actor, event and snapshot)`);
  await new Promise((resolve) => local?.close(resolve));
}
