import { oaoEventSchema, type OaoEvent } from '../src/index.js';

/** One Server-Sent Events message as the API sends it: `id` (the seq), `event` (the type), the event. */
export interface SseEventMessage {
  readonly id: string;
  readonly event: string;
  readonly data: OaoEvent;
}

/** Splits SSE text into the messages that carry data (comments and `retry` lines are skipped). */
export function parseSseMessages(text: string): SseEventMessage[] {
  const messages: SseEventMessage[] = [];
  for (const block of text.split('\n\n')) {
    let id = '';
    let event = '';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('id: ')) id = line.slice(4);
      else if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data.push(line.slice(6));
    }
    if (data.length > 0) messages.push({ id, event, data: oaoEventSchema.parse(JSON.parse(data.join('\n'))) });
  }
  return messages;
}

/**
 * GET a run's event stream and read it until the server ends it. `status` is the HTTP status
 * (a 204 has no messages).
 */
export async function readEventStream(url: string, headers: Record<string, string> = {}): Promise<{ status: number; messages: SseEventMessage[] }> {
  const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers } });
  const text = await response.text();
  return { status: response.status, messages: response.status === 200 ? parseSseMessages(text) : [] };
}

/**
 * Opens a run's event stream and hands back its messages as they arrive; `close()` drops the
 * connection (as a client that goes away, or a server that is killed, would).
 */
export async function openEventStream(url: string): Promise<{ next(): Promise<SseEventMessage | null>; close(): void }> {
  const controller = new AbortController();
  const response = await fetch(url, { headers: { accept: 'text/event-stream' }, signal: controller.signal });
  if (response.status !== 200 || response.body === null) throw new Error(`expected an event stream, got ${response.status}`);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const ready: SseEventMessage[] = [];
  return {
    async next() {
      for (;;) {
        const message = ready.shift();
        if (message !== undefined) return message;
        const end = buffer.indexOf('\n\n');
        if (end >= 0) {
          ready.push(...parseSseMessages(buffer.slice(0, end + 2)));
          buffer = buffer.slice(end + 2);
          continue;
        }
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await reader.read();
        } catch {
          return null;
        }
        if (chunk.done) return null;
        buffer += decoder.decode(chunk.value, { stream: true });
      }
    },
    close: () => controller.abort(),
  };
}
