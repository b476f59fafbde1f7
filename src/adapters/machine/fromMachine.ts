import {
  createActor,
  fromPromise,
  type AnyStateMachine,
  type InputFrom,
  type InspectionEvent,
  type Observer,
  type Subscription,
} from 'xstate';
import type { Agent, AgentContext, BudgetLine, ReviewDecision, StepResult, UsageReport } from '../../agent.js';
import { OaoError } from '../../errors.js';

/** The name under which a machine invokes governed tool calls: `invoke: { src: 'oao.tool', input: { name, args } }`. */
export const OAO_TOOL_ACTOR = 'oao.tool';

/** A governed tool call, as the input of the `oao.tool` actor or an emitted `oao.tool` event. */
export interface OaoToolRequest {
  readonly name: string;
  readonly args?: unknown;
}

/**
 * Events a machine may `emit()` to its run:
 * - `{ type: 'oao.usage', usage }`: token spend (a number of output tokens, `{ input, output }` or
 *   LangChain's `usage_metadata`), metered at once; spend past the budget stops the machine.
 * - `{ type: 'oao.tool', name, args?, id? }`: a governed tool call; the machine is sent
 *   `oao.tool.done` or `oao.tool.error` with the same `id` (see {@link OaoToolReply}).
 */
export type OaoMachineEmitted =
  | { readonly type: 'oao.usage'; readonly usage: UsageReport }
  | { readonly type: 'oao.tool'; readonly name: string; readonly args?: unknown; readonly id?: string };

/** What a machine is sent back for an emitted `oao.tool` request. `id` is the request's, or `t1`, `t2`… */
export type OaoToolReply =
  | { readonly type: 'oao.tool.done'; readonly id: string; readonly name: string; readonly output: unknown }
  | { readonly type: 'oao.tool.error'; readonly id: string; readonly name: string; readonly error: unknown };

/** A plain copy of one budget line. */
export type BudgetSnapshot = Readonly<Record<'steps' | 'tokens' | 'toolCalls' | 'timeMs', BudgetLine>>;

/** The input a machine is created with on each step (unless the `input` option maps it). */
export interface MachineAgentInput {
  /** The step's input: the run's task on the first step (or what `plan` made of it), then what `review` passed on. */
  readonly task: unknown;
  readonly step: number;
  readonly attempt: number;
  readonly executionId: string;
  /** The run's budget when the step began. */
  readonly budget: BudgetSnapshot;
}

export interface MachineAgentOptions<TMachine extends AnyStateMachine = AnyStateMachine> {
  /** The agent's name in reports and events. @default the machine's id, else `'machine'` */
  readonly name?: string;
  /** Maps the step's input to the machine's input. @default a {@link MachineAgentInput} */
  readonly input?: (input: MachineAgentInput) => InputFrom<TMachine>;
  /** Maps the machine's output to the step's output. @default the output itself (`undefined` becomes `null`) */
  readonly output?: (output: any) => unknown;
  /** The agent's `plan`, as in the agent contract. */
  readonly plan?: (task: any, ctx: AgentContext) => unknown;
  /** The agent's `review`, as in the agent contract. @default one step */
  readonly review?: (result: StepResult, ctx: AgentContext) => ReviewDecision | Promise<ReviewDecision>;
  /** An XState inspector for the machine's actors (for example from `@statelyai/inspect`). */
  readonly inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
}

/**
 * Stands in for the governed tool actor in a machine's `setup()`, so the machine type-checks and
 * can be tested on its own: `setup({ actors: { 'oao.tool': oaoTool } })`. `fromMachine` provides
 * the governed implementation; outside a run this one rejects.
 */
export const oaoTool = fromPromise<unknown, OaoToolRequest>(() =>
  Promise.reject(new OaoError('OAO_ERR_INVALID_AGENT', 'The "oao.tool" actor runs only inside a governed run: wrap the machine with fromMachine()')),
);

/**
 * Runs a user's own XState machine as a governed agent: each step creates an actor of the machine
 * (input: {@link MachineAgentInput}) and the step's output is the machine's `output` when it
 * reaches a final state. The machine spends through the run: it invokes `'oao.tool'` (or emits
 * `oao.tool`) for governed tool calls and emits `oao.usage` for token spend. When the step must
 * stop (cancellation, timeout, a violation) the actor is stopped, which stops its children and
 * aborts their signals.
 *
 * @example
 * ```ts
 * import { setup, emit, assign } from 'xstate';
 * import { Orchestrator, fromMachine, oaoTool } from 'open-agent-orchestrator';
 * const researcher = setup({ actors: { 'oao.tool': oaoTool } }).createMachine({
 *   context: ({ input }) => ({ question: input.task, notes: '' }),
 *   initial: 'searching',
 *   states: {
 *     searching: {
 *       invoke: {
 *         src: 'oao.tool',
 *         input: ({ context }) => ({ name: 'search', args: { q: context.question } }),
 *         onDone: { target: 'done', actions: assign({ notes: ({ event }) => String(event.output) }) },
 *       },
 *     },
 *     done: { type: 'final', entry: emit({ type: 'oao.usage', usage: 42 }) },
 *   },
 *   output: ({ context }) => context.notes,
 * });
 * const report = await new Orchestrator().run({ agent: fromMachine(researcher), task: 'XState', tools: { search } });
 * ```
 */
export function fromMachine<TMachine extends AnyStateMachine>(machine: TMachine, options: MachineAgentOptions<TMachine> = {}): Agent {
  if (typeof machine !== 'object' || machine === null || typeof (machine as { provide?: unknown }).provide !== 'function') {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Expected an XState machine (from createMachine() or setup().createMachine())', {
      details: { field: 'machine' },
    });
  }
  if (typeof options !== 'object' || options === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected options to be an object, got ${options === null ? 'null' : typeof options}`);
  }
  for (const field of ['input', 'output', 'plan', 'review'] as const) {
    if (options[field] !== undefined && typeof options[field] !== 'function') {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected ${field} to be a function, got ${typeof options[field]}`, { details: { field } });
    }
  }
  if (options.name !== undefined && (typeof options.name !== 'string' || options.name.length === 0)) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Expected name to be a non-empty string', { details: { field: 'name' } });
  }
  // XState names a machine without an id '(machine)'.
  const name = options.name ?? (machine.id.length > 0 && machine.id !== '(machine)' ? machine.id : 'machine');
  const agent: Agent = {
    name,
    invoke: (input: unknown, ctx: AgentContext) => runMachine(machine, options, input, ctx),
  };
  return Object.assign(
    agent,
    options.plan === undefined ? {} : { plan: options.plan },
    options.review === undefined ? {} : { review: options.review },
  );
}

function budgetSnapshot(ctx: AgentContext): BudgetSnapshot {
  const budget = ctx.budget;
  return { steps: budget.steps, tokens: budget.tokens, toolCalls: budget.toolCalls, timeMs: budget.timeMs };
}

function runMachine(machine: AnyStateMachine, options: MachineAgentOptions<any>, input: unknown, ctx: AgentContext): Promise<{ output: unknown }> {
  const stepInput: MachineAgentInput = {
    task: input,
    step: ctx.step,
    attempt: ctx.attempt,
    executionId: ctx.executionId,
    budget: budgetSnapshot(ctx),
  };
  const logic = machine.provide({
    actors: { [OAO_TOOL_ACTOR]: fromPromise<unknown, OaoToolRequest>(({ input: request }) => ctx.callTool(request.name, request.args)) },
  } as never);
  const actor = createActor(logic, {
    input: options.input === undefined ? stepInput : options.input(stepInput),
    ...(options.inspect === undefined ? {} : { inspect: options.inspect }),
  });
  return new Promise((resolve, reject) => {
    const subscriptions: Subscription[] = [];
    const signal = ctx.signal;
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      for (const subscription of subscriptions) subscription.unsubscribe();
      return true;
    };
    const fail = (error: unknown): void => {
      if (!settle()) return;
      actor.stop();
      reject(error);
    };
    function onAbort(): void {
      fail(signal.reason);
    }
    let toolSeq = 0;
    subscriptions.push(
      actor.on('oao.usage', (event: { usage?: UsageReport }) => {
        try {
          ctx.usage(event.usage ?? 0);
        } catch (error) {
          fail(error);
        }
      }),
      actor.on('oao.tool', (event: { name?: unknown; args?: unknown; id?: unknown }) => {
        const id = typeof event.id === 'string' ? event.id : `t${++toolSeq}`;
        const toolName = String(event.name);
        const reply = (message: OaoToolReply): void => {
          if (!settled && actor.getSnapshot().status === 'active') actor.send(message);
        };
        ctx.callTool(toolName, event.args).then(
          (output) => reply({ type: 'oao.tool.done', id, name: toolName, output }),
          (error: unknown) => reply({ type: 'oao.tool.error', id, name: toolName, error }),
        );
      }),
      actor.subscribe({
        next: (snapshot) => {
          if (snapshot.status !== 'done' || !settle()) return;
          try {
            const output: unknown = options.output === undefined ? snapshot.output : options.output(snapshot.output);
            resolve({ output: output === undefined ? null : output });
          } catch (error) {
            reject(error);
          }
        },
        error: (error) => fail(error),
      }),
    );
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) {
      onAbort();
      return;
    }
    actor.start();
  });
}
