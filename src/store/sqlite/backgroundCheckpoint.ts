import { Worker } from 'node:worker_threads';
import type { Database } from 'better-sqlite3';

/** Slots of the memory the thread shares with the store: the thread writes, the store reads. */
const STATE = 0;
const ROUNDS = 1;
const CLOSED = 2;
/** Passes of one round at most, and the pass small enough to end a round after it. */
const MAX_PASSES = 4;
const SMALL_PASS_FRAMES = 256;
/** Values of the STATE slot (0 while the thread is starting). */
const READY = 1;
const FAILED = 2;

/**
 * What the checkpoint thread runs: its own connection to the file, a round of PASSIVE checkpoints
 * per request, and a goodbye `close()` can wait for synchronously, so that the store's connection
 * is the last one closed. It answers through shared memory, not messages: a program that awaits
 * runs back to back may never return to the event loop, where messages are delivered.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Driver = require(workerData.driverPath);
const shared = new Int32Array(workerData.shared);
let db;
try {
  db = new Driver(workerData.path, { fileMustExist: true, timeout: workerData.busyTimeoutMs });
  Atomics.store(shared, ${STATE}, ${READY});
} catch (error) {
  Atomics.store(shared, ${STATE}, ${FAILED});
}
parentPort.on('message', (message) => {
  if (message === 'close') {
    try { if (db !== undefined) db.close(); } catch {}
    db = undefined;
    Atomics.store(shared, ${CLOSED}, 1);
    Atomics.notify(shared, ${CLOSED});
    parentPort.close();
    return;
  }
  if (db === undefined) return;
  try {
    // Again while the last pass found much that was appended during the one before, so that
    // what the appending thread is left to copy is small.
    let copied = 0;
    for (let pass = 0; pass < ${MAX_PASSES}; pass += 1) {
      const [result] = db.pragma('wal_checkpoint(PASSIVE)');
      const fresh = result.checkpointed - copied;
      copied = result.checkpointed;
      if (result.busy !== 0 || result.checkpointed < 0 || fresh <= ${SMALL_PASS_FRAMES}) break;
    }
  } catch {}
  Atomics.add(shared, ${ROUNDS}, 1);
});
`;

/** What a checkpoint thread did, for `SqliteRunStore.checkpoints()`. */
export interface CheckpointStats {
  /** `background` once the thread is up; `inline` before, and for good after it failed. */
  readonly mode: 'inline' | 'background';
  /** Checkpoints the thread completed, each followed by one on the writing connection for the rest. */
  readonly completed: number;
  /** Why the thread was given up, when it was. */
  readonly failure?: string;
}

export interface BackgroundCheckpointOptions {
  readonly path: string;
  /** The resolved file of the driver, for the thread to load the same one. */
  readonly driverPath: string;
  readonly busyTimeoutMs: number;
  /** Appends before the thread is started, and from the end of one round to the next request. */
  readonly everyAppends: number;
  /** SQLite's own checkpoint threshold while the thread works: a backstop if it falls behind. */
  readonly backstopPages: number;
  /** SQLite's own checkpoint threshold without the thread (before it starts, after it failed). */
  readonly inlinePages: number;
}

/** How long `close()` waits for the thread to let go of the file. */
const CLOSE_WAIT_MS = 2_000;

/**
 * Moves most of the cost of WAL checkpoints off the thread that appends. A checkpoint copies the
 * write-ahead log into the database file and, with `synchronous` NORMAL or FULL, syncs both files
 * to disk: tens of milliseconds, mostly waiting for the disk, that SQLite otherwise spends inside
 * whichever append crosses `wal_autocheckpoint`.
 *
 * After `everyAppends` appends a worker thread is started with its own connection. Once it is up,
 * and then `everyAppends` appends after each round it finished, it runs a round of PASSIVE
 * checkpoints (copying and syncing what the log holds, while appends go on); when it reports back,
 * the writing connection checkpoints the few frames appended meanwhile, so the log is wholly copied
 * and the next append starts it over from the beginning. A checkpoint another thread runs never
 * completes a log that keeps growing, so without that second, short step the file would grow for as
 * long as appends come.
 *
 * The thread never keeps the process alive and costs nothing until a store has taken
 * `everyAppends` appends. If it cannot start or fails, SQLite's own checkpoints take over again.
 */
export class BackgroundCheckpointer {
  readonly #db: Database;
  readonly #options: BackgroundCheckpointOptions;
  #worker: Worker | undefined;
  #shared: Int32Array | undefined;
  #state: 'waiting' | 'starting' | 'running' | 'failed' | 'closed' = 'waiting';
  #appends = 0;
  /** Rounds the thread had completed when the last request went out; undefined while none is out. */
  #requestedAt: number | undefined;
  #completed = 0;
  #failure: string | undefined;

  constructor(db: Database, options: BackgroundCheckpointOptions) {
    this.#db = db;
    this.#options = options;
  }

  stats(): CheckpointStats {
    this.#poll();
    return {
      mode: this.#state === 'running' ? 'background' : 'inline',
      completed: this.#completed,
      ...(this.#failure === undefined ? {} : { failure: this.#failure }),
    };
  }

  /** Called after every committed append. */
  appended(): void {
    this.#poll();
    if (++this.#appends < this.#options.everyAppends) return;
    if (this.#state === 'waiting') {
      this.#appends = 0;
      this.#start();
    } else if (this.#state === 'running' && this.#requestedAt === undefined) {
      this.#appends = 0;
      this.#requestedAt = Atomics.load(this.#shared as Int32Array, ROUNDS);
      this.#worker?.postMessage('checkpoint');
    }
  }

  /** Stops the thread and waits (up to 2 s) until its connection is closed. */
  close(): void {
    const worker = this.#worker;
    const shared = this.#shared;
    this.#state = 'closed';
    this.#worker = undefined;
    if (worker === undefined || shared === undefined) return;
    worker.removeAllListeners();
    // An error after this point has nobody to tell: the store is closing.
    worker.on('error', () => {});
    worker.postMessage('close');
    Atomics.wait(shared, CLOSED, 0, CLOSE_WAIT_MS);
    void worker.terminate().catch(() => {});
  }

  /** Takes in what the thread has done since the last look. */
  #poll(): void {
    const shared = this.#shared;
    if (shared === undefined) return;
    if (this.#state === 'starting') {
      const state = Atomics.load(shared, STATE);
      if (state === READY) {
        if (this.#setAutocheckpoint(this.#options.backstopPages)) this.#state = 'running';
        else this.#fail('the store could not hand its checkpoints over');
      } else if (state === FAILED) {
        this.#fail('the checkpoint thread could not open the file');
      }
      return;
    }
    const requestedAt = this.#requestedAt;
    if (this.#state !== 'running' || requestedAt === undefined || Atomics.load(shared, ROUNDS) === requestedAt) return;
    this.#requestedAt = undefined;
    this.#completed += 1;
    // The next round comes `everyAppends` appends from now, not at the next append: the append
    // right after this one starts the log over, which it cannot do while the thread is reading it.
    this.#appends = 0;
    // The frames appended while the thread worked: copied here, where no append can come between,
    // so the log is complete and the next append starts it over. A failure (another process
    // checkpointing, a busy reader) only leaves this for the next round.
    try {
      this.#db.pragma('wal_checkpoint(PASSIVE)');
    } catch {
      // the next round copies it
    }
  }

  #start(): void {
    this.#state = 'starting';
    const shared = new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT);
    let worker: Worker;
    try {
      worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { path: this.#options.path, driverPath: this.#options.driverPath, busyTimeoutMs: this.#options.busyTimeoutMs, shared },
        // Its own small heap: it holds one connection and handles one request at a time.
        resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 },
      });
    } catch (error) {
      this.#fail(`the checkpoint thread could not start: ${String((error as Error)?.message ?? error)}`);
      return;
    }
    worker.unref();
    this.#worker = worker;
    this.#shared = new Int32Array(shared);
    worker.on('error', (error) => this.#fail(`the checkpoint thread failed: ${error.message}`));
    worker.on('exit', (code) => this.#fail(`the checkpoint thread exited (${code})`));
  }

  #fail(reason: string): void {
    if (this.#state === 'closed' || this.#state === 'failed') return;
    this.#state = 'failed';
    this.#failure = reason;
    this.#requestedAt = undefined;
    const worker = this.#worker;
    this.#worker = undefined;
    if (worker !== undefined) {
      worker.removeAllListeners();
      worker.on('error', () => {});
      void worker.terminate().catch(() => {});
    }
    this.#setAutocheckpoint(this.#options.inlinePages);
  }

  #setAutocheckpoint(pages: number): boolean {
    try {
      this.#db.pragma(`wal_autocheckpoint = ${pages}`);
      return true;
    } catch {
      return false;
    }
  }
}
