import { createInspector, type StatelyInspectionEvent } from '@statelyai/inspect';
import type { InspectionEvent } from 'xstate';
import WebSocket from 'ws';
import { OaoError } from '../../errors.js';
import { invalidOption, positiveIntegerOption } from '../../options.js';
import { inspectRuns } from './inspectRuns.js';
import { toInspectorJson } from './toInspectorJson.js';

export const DEFAULT_INSPECTOR_URL = 'ws://localhost:8080';

export interface RunInspectorOptions {
  /**
   * The WebSocket endpoint of the inspector, for example the one `createInspectorServer()` from
   * `@statelyai/inspect/server` opens.
   * @default 'ws://localhost:8080'
   */
  readonly url?: string;
  /**
   * Inspection messages held while the socket is not open; past this the oldest are dropped (and
   * counted in `dropped`).
   * @default 1000
   */
  readonly maxBufferedMessages?: number;
  /**
   * How deep snapshots and events are serialized; deeper values show as "[Object]".
   * @default 10
   */
  readonly serializationDepthLimit?: number;
  /** Which messages to send (after OAO's ledgers are summarized). @default every message */
  readonly filter?: (message: StatelyInspectionEvent) => boolean;
  /**
   * Called when the socket cannot connect or drops (it reconnects by itself, with backoff).
   * @default one console.warn per failure streak
   */
  readonly onError?: (error: Error) => void;
}

export interface RunInspector {
  /** Pass as the `inspect` option of an Orchestrator, a MultiAgentOrchestrator or createServer. */
  readonly inspect: (event: InspectionEvent) => void;
  readonly url: string;
  /** True while the socket is open. */
  readonly connected: boolean;
  /** Messages dropped because the buffer was full while the socket was not open. */
  readonly dropped: number;
  /** Resolves once the socket is open (rejects if stopped first). */
  ready(): Promise<void>;
  /**
   * Sends what is already queued (when connected), then closes the socket; stops reconnecting.
   * Inspection events after this are ignored.
   */
  stop(): Promise<void>;
}

const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 5_000;
const CLOSE_WAIT_MS = 1_000;

/**
 * Streams every run actor (and every supervisor with its children) to an `@statelyai/inspect`
 * WebSocket inspector. Messages are the Stately inspection protocol built by `@statelyai/inspect`;
 * OAO's ledgers are summarized first (`inspectRuns`), so an inspector shows each run's state,
 * counters and limits, never the agent or its tools. The socket reconnects with backoff, holds a
 * bounded buffer while closed, and never keeps the process alive on its own.
 *
 * @example
 * ```ts
 * import { createRunInspector } from 'open-agent-orchestrator/inspect';
 * const inspector = createRunInspector({ url: 'ws://localhost:8080' });
 * const orch = new Orchestrator({ inspect: inspector.inspect });
 * await orch.run({ agent, task: 'hi' });
 * await inspector.stop();
 * ```
 */
export function createRunInspector(options: RunInspectorOptions = {}): RunInspector {
  if (typeof options !== 'object' || options === null) {
    throw invalidOption('options', `Expected inspector options to be an object, got ${options === null ? 'null' : typeof options}`);
  }
  const url = options.url ?? DEFAULT_INSPECTOR_URL;
  if (typeof url !== 'string' || !/^wss?:\/\//.test(url) || !URL.canParse(url)) {
    throw invalidOption('url', `Expected url to be a ws:// or wss:// URL, got ${JSON.stringify(url)}`);
  }
  const maxBuffered = positiveIntegerOption(options.maxBufferedMessages ?? 1_000, 'maxBufferedMessages');
  const depthLimit = positiveIntegerOption(options.serializationDepthLimit ?? 10, 'serializationDepthLimit');
  if (options.filter !== undefined && typeof options.filter !== 'function') throw invalidOption('filter', 'Expected filter to be a function');
  if (options.onError !== undefined && typeof options.onError !== 'function') throw invalidOption('onError', 'Expected onError to be a function');

  let warned = false;
  const onError =
    options.onError ??
    ((error: Error) => {
      if (warned) return;
      warned = true;
      console.warn(`OAO inspector: ${error.message} (retrying in the background)`);
    });
  const transport = new SocketTransport(url, maxBuffered, depthLimit, (error) => {
    try {
      onError(error);
    } catch {
      // An error reporter that throws must not break the runs being inspected.
    }
  }, () => (warned = false));
  const stately = createInspector(transport, {
    serializationDepthLimit: depthLimit,
    ...(options.filter === undefined ? {} : { filter: options.filter }),
  });
  transport.start();
  const forward = inspectRuns(stately.inspect);
  return {
    inspect: (event) => {
      if (!transport.stopped) forward(event);
    },
    url,
    get connected() {
      return transport.open;
    },
    get dropped() {
      return transport.dropped;
    },
    ready: () => transport.ready(),
    stop: () => transport.stop(),
  };
}

/** The adapter @statelyai/inspect sends through: one `ws` socket, reconnecting, with a bounded buffer. */
class SocketTransport {
  readonly #url: string;
  readonly #maxBuffered: number;
  readonly #depthLimit: number;
  readonly #onError: (error: Error) => void;
  readonly #onOpen: () => void;
  readonly #buffer: string[] = [];
  readonly #waiting = new Set<{ resolve: () => void; reject: (error: Error) => void }>();
  #socket: WebSocket | undefined;
  #retryMs = RECONNECT_MIN_MS;
  #retryTimer: NodeJS.Timeout | undefined;
  #stopping: Promise<void> | undefined;
  stopped = false;
  dropped = 0;

  constructor(url: string, maxBuffered: number, depthLimit: number, onError: (error: Error) => void, onOpen: () => void) {
    this.#url = url;
    this.#maxBuffered = maxBuffered;
    this.#depthLimit = depthLimit;
    this.#onError = onError;
    this.#onOpen = onOpen;
  }

  get open(): boolean {
    return this.#socket?.readyState === WebSocket.OPEN;
  }

  start(): void {
    if (this.stopped) return;
    const socket = new WebSocket(this.#url);
    this.#socket = socket;
    socket.on('open', () => {
      this.#retryMs = RECONNECT_MIN_MS;
      this.#onOpen();
      // The socket must not hold the process open: an inspector only watches.
      unrefSocket(socket);
      for (const message of this.#buffer.splice(0)) socket.send(message);
      this.#buffer.length = 0;
      for (const waiter of this.#waiting) waiter.resolve();
      this.#waiting.clear();
    });
    socket.on('error', (error) => {
      if (!this.stopped) this.#onError(new Error(`cannot reach the inspector at ${this.#url}: ${error.message}`));
    });
    socket.on('close', () => {
      if (this.#socket === socket) this.#socket = undefined;
      if (this.stopped) return;
      this.#retryTimer = setTimeout(() => this.start(), this.#retryMs);
      this.#retryTimer.unref();
      this.#retryMs = Math.min(this.#retryMs * 2, RECONNECT_MAX_MS);
    });
  }

  send(message: StatelyInspectionEvent): void {
    if (this.stopped) return;
    const text = toInspectorJson(message, this.#depthLimit + 2);
    const socket = this.#socket;
    if (socket?.readyState === WebSocket.OPEN) {
      socket.send(text);
      return;
    }
    this.#buffer.push(text);
    if (this.#buffer.length > this.#maxBuffered) {
      this.#buffer.shift();
      this.dropped += 1;
    }
  }

  ready(): Promise<void> {
    if (this.open) return Promise.resolve();
    if (this.stopped) return Promise.reject(new OaoError('OAO_ERR_INSPECTOR_STOPPED', 'The inspector was stopped'));
    return new Promise((resolve, reject) => this.#waiting.add({ resolve, reject }));
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#close();
    return this.#stopping;
  }

  async #close(): Promise<void> {
    // @statelyai/inspect converts each event on a later timer tick: let those already scheduled run.
    await new Promise((resolve) => setTimeout(resolve, 0));
    this.stopped = true;
    clearTimeout(this.#retryTimer);
    let socket = this.#socket;
    if (socket?.readyState === WebSocket.CONNECTING) {
      // What was buffered before the socket opened still goes out, if it opens soon.
      const opened = await within(CLOSE_WAIT_MS, (done) => {
        socket?.once('open', () => done(true));
        socket?.once('close', () => done(false));
      });
      if (!opened) socket.terminate();
      socket = this.#socket;
    }
    this.#buffer.length = 0;
    for (const waiter of this.#waiting) waiter.reject(new OaoError('OAO_ERR_INSPECTOR_STOPPED'));
    this.#waiting.clear();
    if (socket?.readyState !== WebSocket.OPEN) return;
    const open = socket;
    const closed = await within(CLOSE_WAIT_MS, (done) => {
      open.once('close', () => done(true));
      // A normal close goes out after the messages already queued on the socket.
      open.close(1000, 'inspector stopped');
    });
    if (!closed) open.terminate();
  }
}

/** Waits for `begin`'s callback, or `ms` (then resolves false). */
function within(ms: number, begin: (done: (value: boolean) => void) => void): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    timer.unref();
    begin((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

function unrefSocket(socket: WebSocket): void {
  const raw = (socket as unknown as { _socket?: { unref?: () => void } })._socket;
  raw?.unref?.();
}
