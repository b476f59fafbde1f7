// A small A2A agent served in-process on a loopback port (express + @a2a-js/sdk's server), for the
// remote-agent example, its tests and its benchmark. Its answers are scripted by a function.
import { AGENT_CARD_PATH, Role, TaskState, type AgentCard, type CancelTaskRequest, type Message, type Task } from '@a2a-js/sdk';
import {
  AgentEvent,
  DefaultRequestHandler,
  InMemoryTaskStore,
  type AgentExecutor,
  type ExecutionEventBus,
  type RequestContext,
  type ServerCallContext,
} from '@a2a-js/sdk/server';
import { agentCardHandler, jsonRpcHandler, UserBuilder } from '@a2a-js/sdk/server/express';
import express from 'express';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One scripted answer: the agent's reply and the state its task ends the turn in. */
export interface A2AScriptedAnswer {
  readonly text: string;
  /** @default 'completed' */
  readonly state?: 'completed' | 'input-required' | 'failed' | 'rejected';
  /** Reported in the reply's `metadata.usage`. */
  readonly usage?: { readonly inputTokens: number; readonly outputTokens: number; readonly model?: string };
  /** Put the text in an artifact (a completed task's result) instead of the status message. */
  readonly asArtifact?: boolean;
  /** Never answer: the task stays `working` until it is cancelled. */
  readonly hang?: boolean;
}

/** What the server saw of one message. */
export interface A2AReceived {
  readonly text: string;
  readonly taskId: string;
  /** The message continued an existing task. */
  readonly continued: boolean;
}

export interface A2AAgentServer {
  /** The agent's base URL (its card is at `<url>/.well-known/agent-card.json`). */
  readonly url: string;
  readonly received: A2AReceived[];
  /** Task ids the executor's `cancelTask` was called for, in order. */
  readonly cancelled: string[];
  /** Resolves with the first task id `cancelTask` is called for. */
  readonly firstCancel: Promise<string>;
  /** Resolves once a message for a hanging answer has arrived. */
  readonly hanging: Promise<string>;
  /** Task ids of every `tasks/cancel` request that arrived, in order, whatever the task's state. */
  readonly cancelRequests: string[];
  /** Resolves once a `tasks/cancel` request for the task has been handled (answered or refused). */
  cancelHandled(taskId: string): Promise<void>;
  /** The task's last saved state ('input-required', 'canceled', ...); undefined for an unknown task. */
  taskState(taskId: string): string | undefined;
  close(): Promise<void>;
  /**
   * Lets the process exit while the server still listens, and keeps idle connections open instead
   * of closing them after 5 s (for a benchmark that never closes it and pauses between batches: a
   * server that closes an idle connection as the client reuses it fails that request with ECONNRESET).
   */
  unref(): void;
}

export interface A2AAgentServerOptions {
  readonly name: string;
  readonly answer: (text: string, received: A2AReceived) => A2AScriptedAnswer | Promise<A2AScriptedAnswer>;
  /** Declare streaming in the card. @default true */
  readonly streaming?: boolean;
}

const STATES = {
  completed: TaskState.TASK_STATE_COMPLETED,
  'input-required': TaskState.TASK_STATE_INPUT_REQUIRED,
  failed: TaskState.TASK_STATE_FAILED,
  rejected: TaskState.TASK_STATE_REJECTED,
} as const;

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

/** The SDK's in-memory store, remembering each task's last saved state for the tests to read. */
class ObservedTaskStore extends InMemoryTaskStore {
  readonly states = new Map<string, string>();

  override async save(task: Task, context: ServerCallContext): Promise<void> {
    await super.save(task, context);
    const state = task.status?.state;
    if (state !== undefined) this.states.set(task.id, STATE_NAMES[state] ?? String(state));
  }
}

/** The SDK's request handler, noting every tasks/cancel that arrives, even one it refuses (a task in a final state). */
class ObservedRequestHandler extends DefaultRequestHandler {
  readonly cancelRequests: string[] = [];
  readonly #handled = new Map<string, { promise: Promise<void>; resolve: () => void }>();

  handled(taskId: string): Promise<void> {
    return this.#entry(taskId).promise;
  }

  #entry(taskId: string): { promise: Promise<void>; resolve: () => void } {
    let entry = this.#handled.get(taskId);
    if (entry === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((done) => (resolve = done));
      entry = { promise, resolve };
      this.#handled.set(taskId, entry);
    }
    return entry;
  }

  override async cancelTask(params: CancelTaskRequest, context: ServerCallContext): Promise<Task> {
    this.cancelRequests.push(params.id);
    try {
      return await super.cancelTask(params, context);
    } finally {
      this.#entry(params.id).resolve();
    }
  }
}

function textOf(message: Message): string {
  return message.parts.map((part) => (part.content?.$case === 'text' ? part.content.value : part.content?.$case === 'data' ? JSON.stringify(part.content.value) : '')).join('');
}

function agentMessage(ctx: RequestContext, text: string, metadata: Record<string, unknown> | undefined): Message {
  return {
    messageId: crypto.randomUUID(),
    contextId: ctx.contextId,
    taskId: ctx.taskId,
    role: Role.ROLE_AGENT,
    parts: [{ content: { $case: 'text', value: text }, metadata: undefined, filename: '', mediaType: 'text/plain' }],
    metadata,
    extensions: [],
    referenceTaskIds: [],
  };
}

/** Starts the agent on 127.0.0.1 and a free port. */
export async function startA2AAgentServer(options: A2AAgentServerOptions): Promise<A2AAgentServer> {
  const received: A2AReceived[] = [];
  const cancelled: string[] = [];
  const waiting = new Map<string, () => void>();
  /** Each task's context, for the status a cancel publishes. */
  const contexts = new Map<string, string>();
  let firstCancel!: (taskId: string) => void;
  let hangingStarted!: (taskId: string) => void;
  const firstCancelPromise = new Promise<string>((resolve) => (firstCancel = resolve));
  const hanging = new Promise<string>((resolve) => (hangingStarted = resolve));

  const now = (): string => new Date().toISOString();
  const executor: AgentExecutor = {
    async execute(ctx: RequestContext, bus: ExecutionEventBus) {
      const seen: A2AReceived = { text: textOf(ctx.userMessage), taskId: ctx.taskId, continued: ctx.task !== undefined };
      received.push(seen);
      contexts.set(ctx.taskId, ctx.contextId);
      if (ctx.task === undefined) {
        bus.publish(
          AgentEvent.task({
            id: ctx.taskId,
            contextId: ctx.contextId,
            status: { state: TaskState.TASK_STATE_SUBMITTED, message: undefined, timestamp: now() },
            artifacts: [],
            history: [ctx.userMessage],
            metadata: {},
          }),
        );
      } else {
        bus.publish(AgentEvent.task({ ...ctx.task, status: { state: TaskState.TASK_STATE_WORKING, message: undefined, timestamp: now() } }));
      }
      const answer = await options.answer(seen.text, seen);
      if (answer.hang === true) {
        await new Promise<void>((resolve) => {
          waiting.set(ctx.taskId, resolve);
          hangingStarted(ctx.taskId);
        });
        bus.publish(
          AgentEvent.statusUpdate({
            taskId: ctx.taskId,
            contextId: ctx.contextId,
            status: { state: TaskState.TASK_STATE_CANCELED, message: undefined, timestamp: now() },
            metadata: {},
          }),
        );
        bus.finished();
        return;
      }
      const metadata = answer.usage === undefined ? undefined : { usage: answer.usage };
      if (answer.asArtifact === true) {
        bus.publish(
          AgentEvent.artifactUpdate({
            taskId: ctx.taskId,
            contextId: ctx.contextId,
            artifact: {
              artifactId: 'result',
              name: 'result',
              description: '',
              parts: [{ content: { $case: 'text', value: answer.text }, metadata: undefined, filename: '', mediaType: 'text/plain' }],
              metadata: undefined,
              extensions: [],
            },
            append: false,
            lastChunk: true,
            metadata: undefined,
          }),
        );
      }
      bus.publish(
        AgentEvent.statusUpdate({
          taskId: ctx.taskId,
          contextId: ctx.contextId,
          status: { state: STATES[answer.state ?? 'completed'], message: agentMessage(ctx, answer.asArtifact === true ? 'done' : answer.text, metadata), timestamp: now() },
          metadata: {},
        }),
      );
      if (answer.state !== 'input-required') contexts.delete(ctx.taskId);
      bus.finished();
    },
    async cancelTask(taskId: string, bus: ExecutionEventBus) {
      cancelled.push(taskId);
      firstCancel(taskId);
      const release = waiting.get(taskId);
      waiting.delete(taskId);
      if (release !== undefined) {
        // A hanging execute publishes the canceled state itself once released.
        release();
        return;
      }
      // A task that waits for input runs nothing: the cancel ends it here.
      bus.publish(
        AgentEvent.statusUpdate({
          taskId,
          contextId: contexts.get(taskId) ?? '',
          status: { state: TaskState.TASK_STATE_CANCELED, message: undefined, timestamp: now() },
          metadata: {},
        }),
      );
      contexts.delete(taskId);
      bus.finished();
    },
  };

  const app = express();
  const server: Server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const card: AgentCard = {
    name: options.name,
    description: `${options.name} (scripted)`,
    supportedInterfaces: [{ url: `${url}/a2a`, protocolBinding: 'JSONRPC', tenant: '', protocolVersion: '1.0' }],
    provider: undefined,
    version: '1.0.0',
    capabilities: { streaming: options.streaming ?? true, pushNotifications: false, extensions: [], extendedAgentCard: false },
    securitySchemes: {},
    securityRequirements: [],
    defaultInputModes: ['text/plain', 'application/json'],
    defaultOutputModes: ['text/plain'],
    skills: [],
    signatures: [],
  };
  const store = new ObservedTaskStore();
  const handler = new ObservedRequestHandler(card, store, executor);
  app.use(`/${AGENT_CARD_PATH}`, agentCardHandler({ agentCardProvider: handler }));
  app.use('/a2a', jsonRpcHandler({ requestHandler: handler, userBuilder: UserBuilder.noAuthentication }));

  return {
    url,
    received,
    cancelled,
    firstCancel: firstCancelPromise,
    hanging,
    cancelRequests: handler.cancelRequests,
    cancelHandled: (taskId) => handler.handled(taskId),
    taskState: (taskId) => store.states.get(taskId),
    async close() {
      for (const release of waiting.values()) release();
      waiting.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    unref() {
      server.unref();
      server.on('connection', (socket) => socket.unref());
      server.keepAliveTimeout = 0;
    },
  };
}
