import { z } from 'zod';
import { OaoError } from '../../errors.js';
import { jsonValueSchema, type JsonValue } from '../../report/schema.js';
import { parseRemoteUsage, remoteError, type RemoteTransport, type RemoteTurnRequest, type RemoteTurnResult } from './remoteTurn.js';

/**
 * The plain-HTTP contract: one `POST` per turn with this JSON body. `task` is the run's task,
 * `runId` its execution id, `turn` counts from 1, and `history` holds the earlier turns' outputs.
 */
export interface RemoteHttpRequestBody {
  readonly task: JsonValue;
  readonly runId: string;
  readonly turn: number;
  readonly history: readonly { readonly turn: number; readonly output: JsonValue }[];
}

/**
 * What the remote answers (status 2xx, a JSON object): `output` is the turn's result, `usage` what
 * it cost, and `done: false` asks for another turn. @see remoteHttpResponseSchema
 */
export interface RemoteHttpResponseBody {
  readonly output: JsonValue;
  readonly usage?: { readonly inputTokens: number; readonly outputTokens: number; readonly model?: string };
  readonly done?: boolean;
}

/** The response body's schema (usage is checked on its own, for a precise error). */
export const remoteHttpResponseSchema = z.object({
  output: jsonValueSchema,
  usage: z.unknown().optional(),
  done: z.boolean().optional(),
});

export interface HttpTransportOptions {
  readonly url: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** A transport that POSTs each turn to `url` as JSON (see {@link RemoteHttpRequestBody}). */
export function httpTransport(options: HttpTransportOptions): RemoteTransport {
  const { url } = options;
  const headers = { ...options.headers, 'content-type': 'application/json', accept: 'application/json' };
  return {
    kind: 'http',
    async turn(request: RemoteTurnRequest): Promise<RemoteTurnResult> {
      const { turn, signal } = request;
      const body: RemoteHttpRequestBody = {
        task: request.task as JsonValue,
        runId: request.runId,
        turn,
        history: request.history,
      };
      let response: Response;
      try {
        response = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body), signal });
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        throw remoteError(`The remote agent at ${url} could not be reached: ${messageOf(error)}`, { transport: 'http', reason: 'unreachable', turn, url }, { retryable: true, cause: error });
      }
      let text: string;
      try {
        text = await response.text();
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        throw remoteError(`The remote agent's response broke off: ${messageOf(error)}`, { transport: 'http', reason: 'unreachable', turn, url }, { retryable: true, cause: error });
      }
      if (!response.ok) {
        const status = response.status;
        throw remoteError(
          `The remote agent answered HTTP ${status}${text.length > 0 ? `: ${text.slice(0, 200)}` : ''}`,
          { transport: 'http', reason: 'http_status', turn, status, url },
          { retryable: status >= 500 || status === 429 },
        );
      }
      let json: unknown;
      try {
        json = JSON.parse(text) as unknown;
      } catch {
        throw remoteError(`The remote agent's response is not JSON: ${JSON.stringify(text.slice(0, 80))}`, { transport: 'http', reason: 'malformed_response', turn, url });
      }
      const parsed = remoteHttpResponseSchema.safeParse(json);
      if (!parsed.success) {
        throw remoteError('The remote agent\'s response is not { output, usage?, done? }', {
          transport: 'http',
          reason: 'malformed_response',
          turn,
          url,
          issues: parsed.error.issues.map((issue) => `${issue.path.join('.') || '(body)'}: ${issue.message}`),
        });
      }
      const usage = parseRemoteUsage(parsed.data.usage, 'http', turn);
      return { output: parsed.data.output, done: parsed.data.done ?? true, ...(usage === undefined ? {} : { usage }) };
    },
  };
}

/** Validates a URL option: absolute http(s). */
export function checkUrl(value: unknown, field: string): string {
  if (typeof value === 'string') {
    try {
      const url = new URL(value);
      if (url.protocol === 'http:' || url.protocol === 'https:') return value;
    } catch {
      // reported below
    }
  }
  throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected ${field} to be an absolute http(s) URL, got ${typeof value === 'string' ? JSON.stringify(value) : typeof value}`, {
    details: { field },
  });
}

function messageOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as { cause?: unknown }).cause;
  return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
}

export { messageOf };
