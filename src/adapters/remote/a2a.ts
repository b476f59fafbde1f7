import { Role, TaskState, type Message, type Part, type SendMessageRequest, type StreamResponse, type Task } from '@a2a-js/sdk';
import { ClientFactory, type Client } from '@a2a-js/sdk/client';
import type { JsonValue } from '../../report/schema.js';
import type { Clock } from '../../runtime/clock.js';
import { messageOf } from './http.js';
import { parseRemoteUsage, remoteError, untilAborted, type RemoteTransport, type RemoteTurnRequest, type RemoteTurnResult, type RemoteUsage } from './remoteTurn.js';

export interface A2ATransportOptions {
  /** The agent's base URL: its card is read from `<url>/.well-known/agent-card.json`. */
  readonly url?: string;
  /** The agent card's own URL, when it is not at the well-known path. */
  readonly agentCardUrl?: string;
  /** Headers sent with every A2A call (A2A "service parameters"), e.g. `authorization`. */
  readonly headers?: Readonly<Record<string, string>>;
  /** How long `tasks/cancel` may take once a turn is stopped, in ms. */
  readonly cancelTimeoutMs: number;
  readonly clock: Clock;
}

/** Task states after which a task does no more work. */
const FINAL_STATES: ReadonlySet<TaskState> = new Set([
  TaskState.TASK_STATE_COMPLETED,
  TaskState.TASK_STATE_FAILED,
  TaskState.TASK_STATE_CANCELED,
  TaskState.TASK_STATE_REJECTED,
]);

/** States in which a task waits for the client: the turn ends there. */
const INTERRUPTED_STATES: ReadonlySet<TaskState> = new Set([TaskState.TASK_STATE_INPUT_REQUIRED, TaskState.TASK_STATE_AUTH_REQUIRED]);

const STATE_NAMES: Readonly<Partial<Record<TaskState, string>>> = {
  [TaskState.TASK_STATE_SUBMITTED]: 'submitted',
  [TaskState.TASK_STATE_WORKING]: 'working',
  [TaskState.TASK_STATE_COMPLETED]: 'completed',
  [TaskState.TASK_STATE_FAILED]: 'failed',
  [TaskState.TASK_STATE_CANCELED]: 'canceled',
  [TaskState.TASK_STATE_INPUT_REQUIRED]: 'input-required',
  [TaskState.TASK_STATE_REJECTED]: 'rejected',
  [TaskState.TASK_STATE_AUTH_REQUIRED]: 'auth-required',
};

/**
 * A transport that sends each turn as an A2A `message/stream` (falling back to a blocking
 * `message/send` when the agent's card does not stream), so the remote task's id is known as soon
 * as the task exists: when the turn is stopped (the run's signal, or the turn's time limit), its
 * request is aborted and the task is sent `tasks/cancel`.
 */
export function a2aTransport(options: A2ATransportOptions): RemoteTransport {
  const serviceParameters = options.headers === undefined ? undefined : { ...options.headers };
  let client: Promise<Client> | undefined;
  // The card is read on the first turn that really goes out: verify-replay never contacts the agent.
  const connect = (turn: number): Promise<Client> => {
    client ??= (async () => {
      const factory = new ClientFactory();
      try {
        return options.agentCardUrl !== undefined ? await factory.createFromUrl(options.agentCardUrl, '') : await factory.createFromUrl(options.url as string);
      } catch (error) {
        client = undefined;
        throw remoteError(`The remote agent's card could not be read: ${messageOf(error)}`, { transport: 'a2a', reason: 'unreachable', turn }, { retryable: true, cause: error });
      }
    })();
    return client;
  };

  const cancelRemote = (connected: Client, taskId: string): void => {
    const controller = new AbortController();
    const timer: unknown = options.clock.setTimeout(() => controller.abort(), options.cancelTimeoutMs);
    connected
      .cancelTask({ tenant: '', id: taskId, metadata: undefined }, { signal: controller.signal, ...(serviceParameters === undefined ? {} : { serviceParameters }) })
      .catch(() => {
        // Best effort: the task may have ended meanwhile, or the agent may not be reachable.
      })
      .finally(() => options.clock.clearTimeout(timer));
  };

  return {
    kind: 'a2a',
    async turn(request: RemoteTurnRequest): Promise<RemoteTurnResult> {
      const { turn, signal } = request;
      const connected = await untilAborted(connect(turn), signal);
      const progress = new TurnProgress(request.taskId, request.contextId);
      const requestController = new AbortController();
      let cancelPending = false;
      let graceTimer: unknown;
      const stopRemote = (): void => {
        if (graceTimer !== undefined) options.clock.clearTimeout(graceTimer);
        // A task waiting for input is still open: only one in a final state is left alone.
        if (progress.taskId !== undefined && progress.taskId !== '' && !progress.final) {
          if (request.cancelTask !== undefined) request.cancelTask(progress.taskId);
          else cancelRemote(connected, progress.taskId);
        }
        requestController.abort(signal.reason);
      };
      const onAbort = (): void => {
        if (progress.taskId !== undefined || progress.settled) {
          stopRemote();
          return;
        }
        // The task exists on the remote but its id has not arrived yet: keep reading the stream
        // until it does (at most cancelTimeoutMs), so the task can still be sent tasks/cancel.
        cancelPending = true;
        graceTimer = options.clock.setTimeout(() => requestController.abort(signal.reason), options.cancelTimeoutMs);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        const params = sendRequest(request);
        const callOptions = { signal: requestController.signal, ...(serviceParameters === undefined ? {} : { serviceParameters }) };
        const events = (async () => {
          for await (const event of connected.sendMessageStream(params, callOptions)) {
            progress.add(event);
            if (cancelPending && (progress.taskId !== undefined || progress.settled)) {
              stopRemote();
              break;
            }
            if (progress.settled) break;
          }
        })();
        await untilAborted(events, signal);
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        // The task's id, when it is known, so the run can still cancel the task at its end.
        const task = progress.taskId === undefined || progress.taskId === '' ? {} : { taskId: progress.taskId };
        throw remoteError(`The remote agent failed the A2A call: ${messageOf(error)}`, { transport: 'a2a', reason: 'protocol_error', turn, ...task }, { cause: error });
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
      return progress.result(turn);
    },
    cancel(taskId: string): void {
      // Only a task a turn of this transport created can be open: its client exists by then.
      void client?.then(
        (connected) => cancelRemote(connected, taskId),
        () => {
          // No client, no task to cancel.
        },
      );
    },
  };
}

/** The turn's message: a string as a text part, anything else as a JSON data part. */
function sendRequest(request: RemoteTurnRequest): SendMessageRequest {
  const message: Message = {
    messageId: crypto.randomUUID(),
    contextId: request.contextId ?? '',
    taskId: request.taskId ?? '',
    role: Role.ROLE_USER,
    parts: [partOf(request.message)],
    metadata: { oao: { runId: request.runId, turn: request.turn } },
    extensions: [],
    referenceTaskIds: [],
  };
  return { tenant: '', message, configuration: undefined, metadata: undefined };
}

function partOf(value: unknown): Part {
  if (typeof value === 'string') return { content: { $case: 'text', value }, metadata: undefined, filename: '', mediaType: 'text/plain' };
  return { content: { $case: 'data', value: value ?? null }, metadata: undefined, filename: '', mediaType: 'application/json' };
}

/** The turn's output from parts: their text joined, else a single data part's value. */
function outputOf(parts: readonly Part[]): JsonValue | undefined {
  const texts: string[] = [];
  const data: JsonValue[] = [];
  for (const part of parts) {
    if (part.content?.$case === 'text') texts.push(part.content.value);
    else if (part.content?.$case === 'data') data.push(part.content.value as JsonValue);
    else if (part.content?.$case === 'url') texts.push(part.content.value);
  }
  if (texts.length > 0) return texts.join('');
  if (data.length === 1) return data[0] ?? null;
  if (data.length > 1) return data;
  return undefined;
}

function usageIn(metadata: Record<string, unknown> | undefined): unknown {
  return metadata?.usage;
}

/** What the events of one turn have said so far. */
class TurnProgress {
  taskId: string | undefined;
  contextId: string | undefined;
  state: TaskState | undefined;
  #reply: Message | undefined;
  #statusUsage: unknown;
  #taskUsage: unknown;
  readonly #artifacts = new Map<string, Part[]>();
  #direct: Message | undefined;

  constructor(taskId: string | undefined, contextId: string | undefined) {
    this.taskId = taskId;
    this.contextId = contextId;
  }

  /** The task reached a state after which it does no more work. */
  get final(): boolean {
    return this.state !== undefined && FINAL_STATES.has(this.state);
  }

  /** The remote is done with this turn: a direct message, a final state, or one that waits for input. */
  get settled(): boolean {
    return this.#direct !== undefined || (this.state !== undefined && (FINAL_STATES.has(this.state) || INTERRUPTED_STATES.has(this.state)));
  }

  add(event: StreamResponse): void {
    const payload = event.payload;
    if (payload === undefined) return;
    switch (payload.$case) {
      case 'message':
        this.#direct = payload.value;
        if (payload.value.contextId !== '') this.contextId = payload.value.contextId;
        return;
      case 'task':
        this.#task(payload.value);
        return;
      case 'statusUpdate': {
        const update = payload.value;
        this.taskId = update.taskId;
        this.contextId = update.contextId;
        if (usageIn(update.metadata) !== undefined) this.#statusUsage = usageIn(update.metadata);
        if (update.status !== undefined) {
          this.state = update.status.state;
          if (update.status.message !== undefined) this.#reply = update.status.message;
        }
        return;
      }
      case 'artifactUpdate': {
        const artifact = payload.value.artifact;
        if (artifact === undefined) return;
        const parts = payload.value.append ? (this.#artifacts.get(artifact.artifactId) ?? []) : [];
        this.#artifacts.set(artifact.artifactId, [...parts, ...artifact.parts]);
        return;
      }
    }
  }

  #task(task: Task): void {
    this.taskId = task.id;
    this.contextId = task.contextId;
    if (usageIn(task.metadata) !== undefined) this.#taskUsage = usageIn(task.metadata);
    if (task.status !== undefined) {
      this.state = task.status.state;
      if (task.status.message !== undefined) this.#reply = task.status.message;
    }
    for (const artifact of task.artifacts) this.#artifacts.set(artifact.artifactId, [...artifact.parts]);
  }

  result(turn: number): RemoteTurnResult {
    const ids = {
      ...(this.taskId === undefined || this.taskId === '' ? {} : { taskId: this.taskId }),
      ...(this.contextId === undefined || this.contextId === '' ? {} : { contextId: this.contextId }),
    };
    if (this.#direct !== undefined) {
      const usage = parseRemoteUsage(usageIn(this.#direct.metadata), 'a2a', turn);
      return { output: outputOf(this.#direct.parts) ?? null, done: true, ...ids, ...withUsage(usage) };
    }
    const state = this.state;
    if (state === undefined || !this.settled) {
      throw remoteError('The remote agent\'s A2A stream ended before its task finished or asked for input', {
        transport: 'a2a',
        reason: 'malformed_response',
        turn,
        ...ids,
        ...(state === undefined ? {} : { state: STATE_NAMES[state] ?? String(state) }),
      });
    }
    const stateName = STATE_NAMES[state] ?? String(state);
    const replyText = this.#reply === undefined ? undefined : outputOf(this.#reply.parts);
    if (state !== TaskState.TASK_STATE_COMPLETED && state !== TaskState.TASK_STATE_INPUT_REQUIRED) {
      const reason = state === TaskState.TASK_STATE_FAILED ? 'task_failed' : state === TaskState.TASK_STATE_REJECTED ? 'task_rejected' : state === TaskState.TASK_STATE_CANCELED ? 'task_canceled' : 'auth_required';
      const said = typeof replyText === 'string' ? `: ${replyText}` : '';
      throw remoteError(`The remote agent's task ended ${stateName}${said}`, { transport: 'a2a', reason, turn, state: stateName, ...ids });
    }
    const usage = parseRemoteUsage(usageIn(this.#reply?.metadata) ?? this.#statusUsage ?? this.#taskUsage, 'a2a', turn);
    const artifactParts = [...this.#artifacts.values()].flat();
    const output = state === TaskState.TASK_STATE_COMPLETED && artifactParts.length > 0 ? outputOf(artifactParts) : replyText;
    return {
      output: output ?? null,
      done: state === TaskState.TASK_STATE_COMPLETED,
      ...(state === TaskState.TASK_STATE_INPUT_REQUIRED ? { inputRequired: true } : {}),
      state: stateName,
      ...ids,
      ...withUsage(usage),
    };
  }
}

function withUsage(usage: RemoteUsage | undefined): { usage?: RemoteUsage } {
  return usage === undefined ? {} : { usage };
}
