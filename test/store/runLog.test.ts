import { afterEach, describe, expect, it, vi } from 'vitest';
import { OaoError, type OaoEvent } from '../../src/index.js';
import { createMemoryStore, type MemoryRunStore } from '../../src/store/createMemoryStore.js';
import { RunLog } from '../../src/store/RunLog.js';
import type { AppendOptions, Lease, RunStore } from '../../src/store/RunStore.js';
import { FAKE_EPOCH, fakeRun, texts } from './fakeLog.js';

/** Every call a store receives, by method, with the append options it was given. */
interface Recorder {
  readonly store: RunStore;
  readonly calls: string[];
  readonly appendOptions: (AppendOptions | undefined)[];
}

/**
 * `inner` seen through a recorder; `asynchronous` answers every call with a promise a macrotask
 * later (as a database would); `rewrite` changes the append options on their way (a wrapper).
 */
function recorded(inner: MemoryRunStore, asynchronous = false, rewrite?: (options: AppendOptions | undefined) => AppendOptions | undefined): Recorder {
  const calls: string[] = [];
  const appendOptions: (AppendOptions | undefined)[] = [];
  const answer = <T>(fn: () => T): T | Promise<T> =>
    asynchronous
      ? new Promise<T>((resolve, reject) =>
          setImmediate(() => {
            Promise.resolve().then(fn).then(resolve, reject);
          }),
        )
      : fn();
  const store = new Proxy(inner, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (property === 'synchronous') return !asynchronous;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.push(String(property));
        if (property === 'append') {
          const options = rewrite === undefined ? (args[2] as AppendOptions | undefined) : rewrite(args[2] as AppendOptions | undefined);
          appendOptions.push(options);
          return answer(() => target.append(args[0] as string, args[1] as OaoEvent[], options));
        }
        return answer(() => (value as (...a: unknown[]) => unknown).apply(target, args));
      };
    },
  }) as RunStore;
  return { store, calls, appendOptions };
}

const ownership = { owner: 'worker-1', ttlMs: 60_000 };

function failures(): { readonly seen: OaoError[]; readonly onFailure: (error: OaoError) => void } {
  const seen: OaoError[] = [];
  return { seen, onFailure: (error) => seen.push(error) };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('RunLog and the lease of its run', () => {
  it.each([false, true])('takes the lease with the first append and releases it with the last: one call per batch (asynchronous %s)', async (asynchronous) => {
    const inner = createMemoryStore();
    const { store, calls, appendOptions } = recorded(inner, asynchronous);
    const { seen, onFailure } = failures();
    const log = new RunLog(store, 'run-a', onFailure, ownership);
    const events = fakeRun('run-a', { steps: 2 });
    for (const event of events.slice(0, 6)) log.add(event);
    await log.flush();
    expect(log.lease).toMatchObject({ executionId: 'run-a', owner: 'worker-1', token: 1 });
    expect(appendOptions[0]).toMatchObject({ acquire: { owner: 'worker-1', ttlMs: 60_000 } });
    expect(appendOptions[0]?.release).toBeUndefined();
    expect(inner.acquireLease('run-a', 'worker-2', 1_000)).toBeUndefined();

    for (const event of events.slice(6)) log.add(event);
    await log.flush();
    expect(appendOptions[1]).toEqual({ lease: log.lease, release: true });
    log.end();
    expect(calls).toEqual(['append', 'append']);
    expect(seen).toEqual([]);
    expect(texts(inner.events('run-a'))).toEqual(texts(events));
    expect(inner.get('run-a')?.status).toBe('SUCCESS');
    // Released by the last append: another owner takes the run at once.
    expect(inner.acquireLease('run-a', 'worker-2', 1_000)?.token).toBe(2);
  });

  it('writes a run whose whole log is one batch with one call, taking and releasing the lease in it', () => {
    const inner = createMemoryStore();
    const { store, calls, appendOptions } = recorded(inner);
    const log = new RunLog(store, 'run-a', () => {}, ownership);
    for (const event of fakeRun('run-a')) log.add(event);
    // A synchronous store: the flush is done when it returns.
    expect(log.flush()).toBeUndefined();
    log.end();
    expect(calls).toEqual(['append']);
    expect(appendOptions[0]).toMatchObject({ acquire: { owner: 'worker-1', ttlMs: 60_000 }, release: true });
    expect(inner.acquireLease('run-a', 'worker-2', 1_000)?.token).toBe(2);
  });

  it('passes no lease options without an ownership', () => {
    const inner = createMemoryStore();
    const { store, calls, appendOptions } = recorded(inner);
    const log = new RunLog(store, 'run-a', () => {}, undefined);
    for (const event of fakeRun('run-a')) log.add(event);
    // A synchronous store: the flush is done when it returns.
    expect(log.flush()).toBeUndefined();
    log.end();
    expect(calls).toEqual(['append']);
    expect(appendOptions).toEqual([undefined]);
    expect(log.lease).toBeUndefined();
  });

  it('uses a lease it is given from the first append, renews it on time and releases it with the last append', async () => {
    vi.useFakeTimers();
    let now = FAKE_EPOCH;
    const inner = createMemoryStore({ now: () => now });
    const lease = inner.acquireLease('run-a', 'resumer', 300)!;
    const { store, calls, appendOptions } = recorded(inner);
    const { seen, onFailure } = failures();
    const log = new RunLog(store, 'run-a', onFailure, { owner: 'resumer', ttlMs: 300 }, { lease });
    expect(log.lease).toBe(lease);
    const events = fakeRun('run-a');
    for (const event of events.slice(0, 6)) log.add(event);
    // A synchronous store: the flush is done when it returns.
    expect(log.flush()).toBeUndefined();
    expect(appendOptions[0]).toEqual({ lease });
    // Renewed every third of its time to live: past the first expiry, the run is still held.
    now += 100;
    await vi.advanceTimersByTimeAsync(100);
    expect(calls).toEqual(['append', 'renewLease']);
    now += 250;
    expect(inner.get('run-a')?.status).toBe('running');
    expect(inner.acquireLease('run-a', 'intruder', 1_000)).toBeUndefined();

    for (const event of events.slice(6)) log.add(event);
    // A synchronous store: the flush is done when it returns.
    expect(log.flush()).toBeUndefined();
    expect(appendOptions[1]).toEqual({ lease, release: true });
    // Released: no more renewals, and end() has nothing left to do.
    await vi.advanceTimersByTimeAsync(1_000);
    log.end();
    expect(calls.filter((call) => call !== 'renewLease')).toEqual(['append', 'append']);
    expect(calls.lastIndexOf('renewLease')).toBeLessThan(calls.lastIndexOf('append'));
    expect(seen).toEqual([]);
    expect(inner.acquireLease('run-a', 'intruder', 1_000)?.token).toBe(lease.token + 1);
  });

  it('renews the leases of many live runs with one timer, and stops it when the last one ends', async () => {
    vi.useFakeTimers();
    const setIntervalSpy = vi.spyOn(globalThis, 'setInterval');
    const clearIntervalSpy = vi.spyOn(globalThis, 'clearInterval');
    let now = FAKE_EPOCH;
    const inner = createMemoryStore({ now: () => now });
    const { store, calls } = recorded(inner);
    const logs = Array.from({ length: 20 }, (_, i) => {
      const id = `run-${i}`;
      const lease = inner.acquireLease(id, 'owner', 300)!;
      const log = new RunLog(store, id, failures().onFailure, { owner: 'owner', ttlMs: 300 }, { lease });
      for (const event of fakeRun(id).slice(0, 3)) log.add(event);
      expect(log.flush()).toBeUndefined();
      return log;
    });
    expect(setIntervalSpy).toHaveBeenCalledTimes(1);
    // Each lease is renewed every third of its time to live, so every run outlives its first expiry.
    for (let round = 0; round < 4; round += 1) {
      now += 100;
      await vi.advanceTimersByTimeAsync(100);
    }
    expect(calls.filter((call) => call === 'renewLease')).toHaveLength(80);
    expect(logs.every((_, i) => inner.get(`run-${i}`)?.status === 'running')).toBe(true);
    for (const log of logs.slice(1)) log.end();
    expect(clearIntervalSpy).not.toHaveBeenCalled();
    logs[0]!.end();
    expect(clearIntervalSpy).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls.filter((call) => call === 'renewLease')).toHaveLength(80);
    setIntervalSpy.mockRestore();
    clearIntervalSpy.mockRestore();
  });

  it('fails the first append with OAO_ERR_LEASE_LOST when a given lease was taken over, reporting it once', () => {
    let now = FAKE_EPOCH;
    const inner = createMemoryStore({ now: () => now });
    const stale = inner.acquireLease('run-a', 'resumer', 100)!;
    now += 100;
    inner.acquireLease('run-a', 'heir', 1_000);
    const { seen, onFailure } = failures();
    const log = new RunLog(inner, 'run-a', onFailure, { owner: 'resumer', ttlMs: 100 }, { lease: stale });
    for (const event of fakeRun('run-a').slice(0, 4)) log.add(event);
    expect(() => log.flush()).toThrow(expect.objectContaining({ code: 'OAO_ERR_LEASE_LOST' }));
    expect(seen.map((error) => error.code)).toEqual(['OAO_ERR_LEASE_LOST']);
    expect(inner.get('run-a')).toBeUndefined();
    log.end();
  });

  it('fails when another owner holds the run: nothing is written', async () => {
    const inner = createMemoryStore();
    inner.acquireLease('run-a', 'someone-else', 60_000);
    const { store } = recorded(inner, true);
    const { seen, onFailure } = failures();
    const log = new RunLog(store, 'run-a', onFailure, ownership);
    for (const event of fakeRun('run-a').slice(0, 4)) log.add(event);
    await log.settled();
    expect(seen.map((error) => error.code)).toEqual(['OAO_ERR_LEASE_LOST']);
    expect(log.lease).toBeUndefined();
    expect(inner.get('run-a')).toBeUndefined();
  });

  it.each([false, true])('asks for the lease again when a wrapper drops onAcquired, and stays fenced (asynchronous %s)', async (asynchronous) => {
    const inner = createMemoryStore();
    const dropCallback = (options: AppendOptions | undefined): AppendOptions | undefined =>
      options?.acquire === undefined ? options : { ...options, acquire: { owner: options.acquire.owner, ttlMs: options.acquire.ttlMs } };
    const { store, calls } = recorded(inner, asynchronous, dropCallback);
    const log = new RunLog(store, 'run-a', () => {}, ownership);
    const events = fakeRun('run-a', { steps: 2 });
    for (const event of events.slice(0, 6)) log.add(event);
    await log.flush();
    expect(calls).toEqual(['append', 'acquireLease']);
    expect(log.lease).toMatchObject({ owner: 'worker-1', token: 1 });
    for (const event of events.slice(6)) log.add(event);
    await log.flush();
    log.end();
    expect(calls).toEqual(['append', 'acquireLease', 'append']);
    expect(inner.get('run-a')?.status).toBe('SUCCESS');
    expect(inner.acquireLease('run-a', 'worker-2', 1_000)?.token).toBe(2);
  });

  it('releases the lease at end() when the append that would have released it failed', () => {
    const inner = createMemoryStore();
    let appends = 0;
    const failing = new Proxy(inner, {
      get(target, property) {
        const value: unknown = Reflect.get(target, property, target);
        if (property === 'append') {
          return (...args: Parameters<RunStore['append']>) => {
            appends += 1;
            if (appends === 2) throw new OaoError('OAO_ERR_STORE', 'disk full');
            return target.append(...args);
          };
        }
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    }) as RunStore;
    const { seen, onFailure } = failures();
    const log = new RunLog(failing, 'run-a', onFailure, ownership);
    const events = fakeRun('run-a');
    for (const event of events.slice(0, 6)) log.add(event);
    // A synchronous store: the flush is done when it returns.
    expect(log.flush()).toBeUndefined();
    const lease = log.lease as Lease;
    for (const event of events.slice(6)) log.add(event);
    expect(() => log.flush()).toThrow(expect.objectContaining({ code: 'OAO_ERR_STORE' }));
    expect(seen.map((error) => error.code)).toEqual(['OAO_ERR_STORE']);
    expect(inner.renewLease(lease, 60_000)).toBe(true);
    log.end();
    expect(inner.renewLease(lease, 60_000)).toBe(false);
    // Nobody holds it, and the run never got its report: it is interrupted.
    expect(inner.get('run-a')?.status).toBe('interrupted');
  });
});

/** Resolves after `count` turns of the microtask queue. */
async function microtasks(count: number): Promise<void> {
  for (let i = 0; i < count; i++) await Promise.resolve();
}

describe('RunLog batching while a run goes on within microtasks', () => {
  it.each([false, true])('writes a run whose steps answer without I/O in one append, lease taken and released (asynchronous %s)', async (asynchronous) => {
    const inner = createMemoryStore();
    const { store, calls, appendOptions } = recorded(inner, asynchronous);
    const log = new RunLog(store, 'run-a', () => {}, ownership);
    const events = fakeRun('run-a', { steps: 3 });
    // As a trivial run emits: a few events per macrostep, a few microtasks apart, then its end.
    for (const [index, event] of events.entries()) {
      if (index % 3 === 0) await microtasks(3);
      log.add(event);
    }
    await log.flush();
    log.end();
    expect(calls).toEqual(['append']);
    expect(appendOptions[0]).toMatchObject({ acquire: { owner: 'worker-1' }, release: true });
    expect(inner.events('run-a')).toEqual(events);
    expect(inner.get('run-a')?.status).toBe('SUCCESS');
  });

  it('writes what a run emitted once it waits, without being asked', async () => {
    const inner = createMemoryStore();
    const log = new RunLog(inner, 'run-a', () => {}, ownership);
    const events = fakeRun('run-a');
    for (const event of events.slice(0, 7)) log.add(event);
    // The run now waits for I/O (its step calls a model, say): a macrotask later, the log holds it.
    await new Promise((resolve) => setImmediate(resolve));
    expect(inner.events('run-a')).toEqual(events.slice(0, 7));
    expect(inner.get('run-a')?.status).toBe('running');
  });

  it('writes a run that keeps emitting every microtask within a bounded number of them', async () => {
    const inner = createMemoryStore();
    const log = new RunLog(inner, 'run-a', () => {});
    const events = fakeRun('run-a', { steps: 40 });
    let written = -1;
    for (const [index, event] of events.entries()) {
      log.add(event);
      await Promise.resolve();
      if (written < 0 && inner.events('run-a').length > 0) written = index;
    }
    // Never quiet for long, yet not held back to the end: the first append came within 64 microtasks.
    expect(events.length).toBeGreaterThan(150);
    expect(written).toBeGreaterThan(0);
    expect(written).toBeLessThanOrEqual(64);
    await log.flush();
    expect(inner.events('run-a')).toEqual(events);
  });
});

describe('RunLog on an asynchronous store', () => {
  it('coalesces what a run emits while an append is in flight into one append, in order', async () => {
    const inner = createMemoryStore();
    const { store, calls } = recorded(inner, true);
    const { seen, onFailure } = failures();
    const log = new RunLog(store, 'run-a', onFailure);
    const events = fakeRun('run-a', { steps: 3 });
    // The run waits (a macrotask): its first event goes out, and the store answers a macrotask later.
    log.add(events[0] as OaoEvent);
    await new Promise((resolve) => setImmediate(resolve));
    expect(calls).toEqual(['append']);
    // One event per macrostep, as a run emits them while the first append is still in flight.
    for (const event of events.slice(1)) {
      await Promise.resolve();
      log.add(event);
    }
    await log.settled();
    expect(seen).toEqual([]);
    // The first batch, then everything that arrived while it was being written: two appends, not one per macrostep.
    expect(calls.filter((call) => call === 'append')).toHaveLength(2);
    expect(inner.events('run-a')).toEqual(events);
  }, 10_000);

  it('makes a write-ahead wait for the coalesced append that carries its event', async () => {
    const inner = createMemoryStore();
    const { store } = recorded(inner, true);
    const log = new RunLog(store, 'run-a', () => {});
    const events = fakeRun('run-a');
    log.add(events[0] as OaoEvent);
    const first = log.flush();
    log.add(events[1] as OaoEvent);
    const second = log.writeAhead();
    log.add(events[2] as OaoEvent);
    // Both later events ride on the one append queued behind the first.
    expect(log.writeAhead()).toBe(second);
    await first;
    expect(inner.events('run-a')).toHaveLength(1);
    await second;
    expect(inner.events('run-a')).toEqual(events.slice(0, 3));
  }, 10_000);

  it('fails the coalesced append with the typed error of the append before it', async () => {
    const inner = createMemoryStore();
    let appends = 0;
    const failing = new Proxy(inner, {
      get(target, property) {
        const value: unknown = Reflect.get(target, property, target);
        if (property === 'synchronous') return false;
        if (property === 'append') {
          return (...args: Parameters<RunStore['append']>) => {
            appends += 1;
            return new Promise<void>((resolve, reject) =>
              setImmediate(() => (appends === 1 ? reject(new Error('connection reset')) : resolve(target.append(...args)))),
            );
          };
        }
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    }) as RunStore;
    const { seen, onFailure } = failures();
    const log = new RunLog(failing, 'run-a', onFailure);
    const events = fakeRun('run-a');
    log.add(events[0] as OaoEvent);
    const first = log.flush();
    log.add(events[1] as OaoEvent);
    const second = log.writeAhead();
    await expect(first).rejects.toMatchObject({ code: 'OAO_ERR_STORE' });
    await expect(second).rejects.toMatchObject({ code: 'OAO_ERR_STORE' });
    expect(appends).toBe(1);
    expect(seen.map((error) => error.code)).toEqual(['OAO_ERR_STORE']);
  }, 10_000);
});
