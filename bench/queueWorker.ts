/**
 * A worker process of the queue bench (bench/cases/queue.ts): `createWorker()` with a trivial
 * agent, recording in PostgreSQL. Prints `ready` once it takes jobs; SIGTERM closes it.
 * `node --conditions=oao-source --import tsx bench/queueWorker.ts <redisUrl> <postgresUrl> <queueName> <concurrency>`
 */
import { createPostgresStore } from 'open-agent-orchestrator/postgres';
import { createWorker } from 'open-agent-orchestrator/queue';

const [redisUrl, postgresUrl, queueName, concurrency] = process.argv.slice(2);
if (redisUrl === undefined || postgresUrl === undefined || queueName === undefined) throw new Error('usage: queueWorker.ts <redisUrl> <postgresUrl> <queueName> <concurrency>');
const store = await createPostgresStore({ connectionString: postgresUrl });
const worker = await createWorker({
  connection: redisUrl,
  queueName,
  store,
  agents: { echo: (task: string) => `Processed: ${task}` },
  concurrency: Number(concurrency ?? 16),
});
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  void worker
    .close()
    .then(() => store.close())
    .then(() => process.exit(0));
});
