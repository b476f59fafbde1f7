import type { Redis } from 'ioredis';

/**
 * Takes (or renews) a slot of an agent for one run: a sorted set per agent whose members are the
 * runs holding a slot, scored by when the slot expires (Redis's own clock, so workers on other
 * hosts agree). Expired slots are dropped first, so a worker that died gives its slots back within
 * one time to live. Returns 1 when the run holds a slot, 0 when every slot is taken.
 *
 * KEYS[1] the agent's set; ARGV: run id, slots allowed, time to live in ms.
 */
const TAKE_SLOT = `
local now = redis.call('TIME')
local nowMs = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', nowMs)
local expires = nowMs + tonumber(ARGV[3])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], expires, ARGV[1])
  return 1
end
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], expires, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
  return 1
end
return 0
`;

/**
 * Per-agent concurrency caps over every worker of a queue: a run takes a slot of its agent before
 * it starts, renews it while it runs and gives it back when it ends.
 */
export class AgentSlots {
  readonly #client: Redis;
  readonly #key: (agent: string) => string;
  readonly #caps: ReadonlyMap<string, number>;
  readonly #ttlMs: number;

  constructor(client: Redis, key: (agent: string) => string, caps: ReadonlyMap<string, number>, ttlMs: number) {
    this.#client = client;
    this.#key = key;
    this.#caps = caps;
    this.#ttlMs = ttlMs;
  }

  /** Whether `agent` has a cap at all. */
  capped(agent: string): boolean {
    return this.#caps.has(agent);
  }

  /** Takes or renews the run's slot; false when the agent's every slot is held by other runs. */
  async take(agent: string, executionId: string): Promise<boolean> {
    const cap = this.#caps.get(agent);
    if (cap === undefined) return true;
    const taken = await this.#client.eval(TAKE_SLOT, 1, this.#key(agent), executionId, cap, this.#ttlMs);
    return taken === 1;
  }

  /** Keeps the slot while the run is live; the returned function stops renewing and gives it back. */
  hold(agent: string, executionId: string): () => Promise<void> {
    const timer = setInterval(() => {
      this.take(agent, executionId).catch(() => {});
    }, Math.max(1, Math.floor(this.#ttlMs / 3)));
    timer.unref();
    return async () => {
      clearInterval(timer);
      // A slot that cannot be given back (Redis down) expires within its time to live.
      await this.#client.zrem(this.#key(agent), executionId).catch(() => 0);
    };
  }
}
