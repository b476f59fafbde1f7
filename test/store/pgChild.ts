/**
 * A second process on a PostgreSQL store, for test/store/postgresStore.test.ts. Run with
 * `node --conditions=oao-source --import tsx test/store/pgChild.ts <command> <connection> <schema> ...`.
 * It answers on stdout, one JSON object per line, and waits for a line on stdin before it starts,
 * so that the parent can release several children at once.
 *
 * - `open <connection> <schema>`: prints `{"ready":true}`, then on the go line opens the store
 *   (migrating the schema) and prints `{"opened":true}` or `{"failure":{code,message}}`.
 * - `write <connection> <schema> <prefix> <count>`: opens the store, prints `{"ready":true}`, then
 *   on the go line appends `count` runs (`<prefix>-<i>`, each 13 events in appends of 1, 8 and 4)
 *   and prints `{"done":count}`.
 */
import { createInterface } from 'node:readline';
import { OaoError } from '../../src/errors.js';
import { createPostgresStore } from '../../src/store/postgres/index.js';
import { FAKE_EPOCH, batches, fakeRun } from './fakeLog.js';

const [command, connectionString, schema, ...rest] = process.argv.slice(2);
if (connectionString === undefined || schema === undefined) throw new Error('usage: pgChild.ts <open|write> <connection> <schema> ...');

function say(message: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

async function go(): Promise<void> {
  const lines = createInterface({ input: process.stdin });
  await new Promise<void>((resolve) => lines.once('line', () => resolve()));
  lines.close();
}

if (command === 'open') {
  say({ ready: true });
  await go();
  try {
    const store = await createPostgresStore({ connectionString, schema });
    await store.close();
    say({ opened: true });
  } catch (error) {
    say({ failure: OaoError.isInstance(error) ? { code: error.code, message: error.message } : { raw: String(error) } });
  }
} else if (command === 'write') {
  const [prefix = 'child', countText = '1'] = rest;
  const store = await createPostgresStore({ connectionString, schema, max: 1 });
  say({ ready: true });
  await go();
  const count = Number(countText);
  for (let i = 0; i < count; i += 1) {
    const id = `${prefix}-${i}`;
    for (const batch of batches(fakeRun(id, { startedAt: FAKE_EPOCH + i, agentName: prefix }), 1, 8)) await store.append(id, batch);
  }
  await store.close();
  say({ done: count });
} else {
  throw new Error(`unknown command ${String(command)}`);
}
