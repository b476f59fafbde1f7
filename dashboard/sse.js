// Server-Sent Events over fetch(). EventSource cannot send an Authorization header, so the page
// reads the stream itself: SseParser implements the framing of the HTML standard (any line
// ending, chunks split anywhere, multi-line data, comments, id and retry fields) and
// followRunEvents reconnects with Last-Event-ID until the run's EXECUTION_COMPLETE arrives.

import { errorOf, networkError } from './api.js';

/** Turns decoded text, fed in pieces of any size, into messages `{ id, event, data }`. */
export class SseParser {
  #buffer = '';
  #data = [];
  #event = '';
  #lastEventId = '';
  #retry = null;
  /** The last piece ended with CR: a LF at the start of the next one belongs to that line end. */
  #afterCarriageReturn = false;

  /** The id of the last message, as the stream set it ('' when it never did). */
  get lastEventId() {
    return this.#lastEventId;
  }

  /** The reconnection delay the stream asked for, in ms, or null. */
  get retry() {
    return this.#retry;
  }

  /** Feeds text; returns the messages it completed, in order. */
  push(text) {
    if (text.length === 0) return [];
    let chunk = text;
    if (this.#afterCarriageReturn && chunk.startsWith('\n')) chunk = chunk.slice(1);
    this.#afterCarriageReturn = false;
    this.#buffer += chunk;
    const messages = [];
    const lineEnd = /\r\n|\r|\n/g;
    let lineStart = 0;
    let match;
    while ((match = lineEnd.exec(this.#buffer)) !== null) {
      const line = this.#buffer.slice(lineStart, match.index);
      lineStart = lineEnd.lastIndex;
      if (match[0] === '\r' && lineStart === this.#buffer.length) this.#afterCarriageReturn = true;
      const message = this.#processLine(line);
      if (message !== null) messages.push(message);
    }
    this.#buffer = this.#buffer.slice(lineStart);
    return messages;
  }

  #processLine(line) {
    if (line === '') return this.#dispatch();
    if (line.startsWith(':')) return null;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.#data.push(value);
    else if (field === 'event') this.#event = value;
    else if (field === 'id' && !value.includes('\0')) this.#lastEventId = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.#retry = Number(value);
    return null;
  }

  #dispatch() {
    if (this.#data.length === 0) {
      this.#event = '';
      return null;
    }
    const message = { id: this.#lastEventId, event: this.#event || 'message', data: this.#data.join('\n') };
    this.#data = [];
    this.#event = '';
    return message;
  }
}

/** A 4xx other than 429 will not get better by asking again. */
const isFinal = (status) => status >= 400 && status < 500 && status !== 429;

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}

/**
 * Follows one run's event stream until its EXECUTION_COMPLETE: `onEvent(event)` is called once
 * per event, in seq order, without gaps or repeats across reconnections. A connection that ends
 * (or fails) earlier is opened again after the stream's `retry` delay (backing off to
 * `maxRetryMs`), with `Last-Event-ID` set to the last seq received.
 *
 * Resolves `{ completed: true, lastSeq }` after EXECUTION_COMPLETE, `{ completed: false, ended: true,
 * lastSeq }` when the server answers 204 (the run was interrupted: no event will ever follow the
 * last one), `{ completed: false }` when `signal` aborts; rejects with the ApiError of an answer
 * that retrying cannot fix (401, 404...).
 * `onStatus` hears 'connecting', 'open', 'reconnecting' and 'closed'.
 */
export async function followRunEvents({
  url,
  headers = () => ({}),
  onEvent,
  onStatus = () => {},
  signal,
  fetch: fetchImpl = globalThis.fetch.bind(globalThis),
  maxRetryMs = 10_000,
}) {
  let lastSeq = -1;
  let retryMs = 1_000;
  let failures = 0;
  while (!signal?.aborted) {
    if (failures === 0) onStatus('connecting');
    const parser = new SseParser();
    let completed = false;
    try {
      const requestHeaders = { accept: 'text/event-stream', ...headers() };
      if (lastSeq >= 0) requestHeaders['last-event-id'] = String(lastSeq);
      let response;
      try {
        response = await fetchImpl(url, { headers: requestHeaders, signal, cache: 'no-store' });
      } catch (error) {
        throw networkError(error);
      }
      if (!response.ok) {
        const error = await errorOf(response);
        error.final = isFinal(response.status);
        throw error;
      }
      // No Content: the standard answer that tells an event-stream client to stop reconnecting.
      if (response.status === 204) {
        onStatus('closed');
        return { completed: false, ended: true, lastSeq };
      }
      onStatus('open');
      failures = 0;
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      try {
        reading: for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const message of parser.push(decoder.decode(value, { stream: true }))) {
            let event;
            try {
              event = JSON.parse(message.data);
            } catch {
              continue; // Not an event; the stream's own framing is still intact.
            }
            if (typeof event?.seq !== 'number' || event.seq <= lastSeq) continue;
            lastSeq = event.seq;
            onEvent(event);
            if (event.type === 'EXECUTION_COMPLETE') {
              completed = true;
              break reading;
            }
          }
        }
      } finally {
        reader.cancel().catch(() => {});
      }
    } catch (error) {
      if (signal?.aborted) break;
      if (error?.final) {
        onStatus('closed');
        throw error;
      }
    }
    if (parser.retry !== null) retryMs = parser.retry;
    if (completed) {
      onStatus('closed');
      return { completed: true, lastSeq };
    }
    if (signal?.aborted) break;
    failures += 1;
    onStatus('reconnecting');
    await sleep(Math.min(retryMs * 2 ** Math.min(failures - 1, 5), maxRetryMs), signal);
  }
  onStatus('closed');
  return { completed: false, lastSeq };
}
