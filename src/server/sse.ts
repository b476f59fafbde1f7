import type { ServerResponse } from 'node:http';
import type { Observable, Subscription } from 'rxjs';
import type { OaoEvent } from '../events/schema.js';

/** A comment line every so often keeps proxies and load balancers from closing a quiet stream. */
const HEARTBEAT_MS = 15_000;
/**
 * A client that falls this far behind (bytes not yet taken by its socket) is disconnected rather
 * than buffered without bound; it can reconnect with Last-Event-ID and lose nothing.
 */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

/** What a stream sends: a run's events, or a workflow run's (both carry a per-stream seq and a type). */
export type SseEvent = OaoEvent | { readonly seq: number; readonly type: string };

export interface SseStream {
  readonly ended: boolean;
  /** Ends the stream (idempotent). */
  end(): void;
}

/** One SSE message: `id` is the event's seq, `event` its type, `data` the event as one line of JSON. */
export function formatSseEvent(event: SseEvent): string {
  return `id: ${event.seq}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
}

/**
 * Writes a run's events to a hijacked response as Server-Sent Events: the events of `events$`
 * with a seq after `afterSeq` (recorded ones, then live ones), ending when `events$` completes
 * (after EXECUTION_COMPLETE). Stops cleanly when the client goes away (the subscription and the
 * heartbeat are released).
 */
export function streamRunEvents(res: ServerResponse, events$: Observable<SseEvent>, afterSeq: number, onEnd: (stream: SseStream) => void): SseStream {
  const stream = new RunEventStream(res, afterSeq, onEnd);
  stream.start(events$);
  return stream;
}

class RunEventStream implements SseStream {
  readonly #res: ServerResponse;
  readonly #afterSeq: number;
  readonly #onEnd: (stream: SseStream) => void;
  readonly #onClose = (): void => this.end();
  #ended = false;
  #subscription: Subscription | undefined;
  #heartbeat: NodeJS.Timeout | undefined;

  constructor(res: ServerResponse, afterSeq: number, onEnd: (stream: SseStream) => void) {
    this.#res = res;
    this.#afterSeq = afterSeq;
    this.#onEnd = onEnd;
  }

  get ended(): boolean {
    return this.#ended;
  }

  start(events$: Observable<SseEvent>): void {
    const res = this.#res;
    res.on('close', this.#onClose);
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      // One stream per connection: once it ends, the socket goes too (nothing waits on an idle one).
      connection: 'close',
      'x-accel-buffering': 'no',
    });
    // Tells EventSource clients how soon to reconnect, and sends the headers at once.
    res.write('retry: 1000\n\n');
    this.#heartbeat = setInterval(() => {
      if (!this.#ended) res.write(': keep-alive\n\n');
    }, HEARTBEAT_MS);
    this.#heartbeat.unref();
    const subscription = events$.subscribe({
      next: (event) => this.#send(event),
      complete: () => this.end(),
      error: () => this.end(),
    });
    // The stream may have completed during subscribe (a finished run): release it at once.
    if (this.#ended) subscription.unsubscribe();
    else this.#subscription = subscription;
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#subscription?.unsubscribe();
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    this.#res.off('close', this.#onClose);
    if (!this.#res.writableEnded) this.#res.end();
    this.#onEnd(this);
  }

  #send(event: SseEvent): void {
    if (this.#ended || event.seq <= this.#afterSeq) return;
    let message: string;
    try {
      message = formatSseEvent(event);
    } catch {
      // Events are JSON-safe by construction; if one is not, end rather than send a broken stream.
      this.end();
      return;
    }
    this.#res.write(message);
    if (this.#res.writableLength > MAX_BUFFERED_BYTES) this.end();
  }
}
