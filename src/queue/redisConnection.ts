import type { Redis, RedisOptions } from 'ioredis';
import { requirePackages } from '../cli/optionalPackages.js';
import { OaoError } from '../errors.js';
import { invalidOption, typeOf } from '../options.js';

/**
 * Where Redis is: a URL (`redis://127.0.0.1:6380`, `rediss://user:secret@host:6379/2`) or ioredis
 * options (`{ host, port, password, db, tls }`). The queue and the worker open their own
 * connections from it (BullMQ needs several: a blocking one per worker, one for pub/sub).
 */
export type RedisConnection = string | RedisOptions;

/** The default BullMQ queue name runs are enqueued on. */
export const DEFAULT_QUEUE_NAME = 'oao-runs';

/** Checks the `connection` option at once: a typed error naming it, never a late socket error. */
export function checkConnection(connection: unknown): RedisConnection {
  if (typeof connection === 'string') {
    let url: URL;
    try {
      url = new URL(connection);
    } catch {
      throw invalidOption('connection', `Expected "connection" to be a redis:// URL, got "${connection.slice(0, 200)}"`);
    }
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
      throw invalidOption('connection', `Expected "connection" to be a redis:// or rediss:// URL, got protocol "${url.protocol}"`);
    }
    return connection;
  }
  if (typeof connection === 'object' && connection !== null && !Array.isArray(connection)) return connection;
  throw invalidOption('connection', `Expected "connection" to be a redis:// URL or ioredis options, got ${typeOf(connection)}`);
}

/** Checks a queue name: BullMQ keys are built from it, so it must not contain ':'. */
export function checkQueueName(name: unknown): string {
  if (name === undefined) return DEFAULT_QUEUE_NAME;
  if (typeof name !== 'string' || !/^[A-Za-z0-9_.-]{1,100}$/.test(name)) {
    throw invalidOption('queueName', `Expected "queueName" to be 1 to 100 letters, digits, "_", "." or "-", got ${typeof name === 'string' ? `"${name.slice(0, 120)}"` : typeOf(name)}`);
  }
  return name;
}

type RedisClass = new (...args: unknown[]) => Redis;

let redisClass: RedisClass | undefined;

/** Loads ioredis and bullmq (optional peers of this subpath), with one typed error for what is missing. */
export async function loadQueuePackages(feature: string): Promise<{ Redis: RedisClass; bullmq: typeof import('bullmq') }> {
  await requirePackages(feature, ['bullmq', 'ioredis']);
  const bullmq = await import('bullmq');
  if (redisClass === undefined) {
    const ioredis = await import('ioredis');
    // ioredis is CommonJS: its class is a named export and the default one.
    redisClass = (ioredis as unknown as { Redis?: RedisClass }).Redis ?? (ioredis as unknown as { default: RedisClass }).default;
  }
  return { Redis: redisClass, bullmq };
}

/** Opens one ioredis client on `connection` with `overrides` on top of the caller's options. */
export function openRedis(Redis: RedisClass, connection: RedisConnection, overrides: RedisOptions): Redis {
  const client = typeof connection === 'string' ? new Redis(connection, overrides) : new Redis({ ...connection, ...overrides });
  // Connection errors surface as failed commands (typed by the caller); an unhandled 'error'
  // event would crash the process while Redis is down.
  client.on('error', () => {});
  return client;
}

/** Redis keys and channels of one queue, beside BullMQ's own (`bull:<name>:*`). */
export function queueKeys(name: string) {
  const base = `oao:${name}`;
  return {
    /** Pub/sub: `{ executionId, reason }` of a run to cancel, wherever it runs. */
    cancelChannel: `${base}:cancel`,
    /** Pub/sub: the execution id of a run whose report is now in the store. */
    doneChannel: `${base}:done`,
    /** A string key per cancelled run, so a worker that takes the job later still cancels it. */
    cancelled: (executionId: string) => `${base}:cancelled:${executionId}`,
    /** A sorted set per agent: the runs holding one of its slots, scored by when the slot expires. */
    agentSlots: (agent: string) => `${base}:agent-slots:${agent}`,
    /** A hash per queued batch: what is left of its shared budget, and the chunk each running run holds. */
    batchBudget: (batchId: string) => `${base}:batch-budget:${batchId}`,
    /**
     * A hash per tenant with a budget: its window and limits (written by the servers that admit its
     * runs), what its running runs hold (`held:<field>`) and the chunk each holds (`run:<id>`).
     */
    tenantBudget: (tenant: string) => `${base}:tenant:${tenant}`,
    /** A sorted set per tenant: the runs holding a chunk of its window, scored by when the hold expires. */
    tenantHolds: (tenant: string) => `${base}:tenant-holds:${tenant}`,
    /** A hash per tenant and window span (a UTC day or month, or a rolling bucket): what the tenant spent in it. */
    tenantSpan: (tenant: string, span: string) => `${base}:tenant-span:${tenant}:${span}`,
  };
}

/** Quits a client, or disconnects it when Redis does not answer (a stopped or paused server). */
export async function closeRedis(client: Redis): Promise<void> {
  if (client.status === 'end') return;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.quit(),
      new Promise((resolve) => {
        timer = setTimeout(resolve, 1_000);
      }),
    ]);
  } catch {
    // already closed
  } finally {
    clearTimeout(timer);
    client.disconnect();
  }
}

/** The typed error of a Redis operation that failed: `OAO_ERR_QUEUE_UNAVAILABLE` (an OAO error passes as it is). */
export function queueUnavailable(error: unknown, message: string): OaoError {
  if (OaoError.isInstance(error)) return error;
  return new OaoError('OAO_ERR_QUEUE_UNAVAILABLE', `${message}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
}
