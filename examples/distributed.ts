// Runs on workers through a queue: BullMQ on Redis, every run's log in one store.
// Starts its own redis-server (Debian's package) on a free loopback port and stops it at the end.
// Run: npx tsx --conditions=oao-source examples/distributed.ts
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryStore, type AgentContext } from 'open-agent-orchestrator';
import { createQueue, createWorker } from 'open-agent-orchestrator/queue';

// A private Redis: a free port, no persistence (the store is the record of every run).
const port = await new Promise<number>((resolve) => {
  const probe = createServer().listen(0, '127.0.0.1', () => {
    const address = probe.address();
    probe.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
  });
});
const dir = mkdtempSync(join(tmpdir(), 'oao-example-redis-'));
const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: ['ignore', 'pipe', 'ignore'] });
await new Promise<void>((resolve, reject) => {
  redis.once('error', reject);
  redis.stdout.on('data', (chunk: Buffer) => {
    if (chunk.toString().includes('Ready to accept connections')) resolve();
  });
});
// Whatever happens below, the server goes when this process does.
process.once('exit', () => {
  redis.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});
const connection = `redis://127.0.0.1:${port}`;

// One process here, so a memory store can be shared; across processes use PostgreSQL or SQLite.
const store = createMemoryStore();
const agents = {
  summarize: async (text: string, ctx: AgentContext) => {
    ctx.usage({ input: text.length, output: 10 });
    return `summary of "${text}"`;
  },
  // Waits until it is cancelled.
  watcher: (_task: unknown, ctx: AgentContext) => new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('stopped')))),
};
const workers = [
  await createWorker({ connection, store, agents, concurrency: 4, owner: 'worker-a' }),
  await createWorker({ connection, store, agents, concurrency: 4, owner: 'worker-b' }),
];
const queue = await createQueue({ connection, store });

const ids = await Promise.all(['the design doc', 'the release notes', 'the incident report'].map((task) => queue.enqueue({ agent: 'summarize', task })));
for (const id of ids) {
  const report = await queue.waitForReport(id);
  console.log(`${report.status}: ${report.finalOutput as string}`);
}

const watching = await queue.enqueue({ agent: 'watcher', task: 'the logs' });
while (!store.events(watching).some((event) => event.type === 'STEP_START')) await new Promise((resolve) => setTimeout(resolve, 10));
await queue.cancel(watching, 'seen enough');
const cancelled = await queue.waitForReport(watching);
console.log(`watcher: ${cancelled.status} ${cancelled.termination.reason} (${cancelled.termination.message ?? ''})`);

for (const worker of workers) await worker.close();
await queue.close();
redis.kill('SIGTERM');
