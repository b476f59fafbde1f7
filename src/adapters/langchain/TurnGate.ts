import type { AgentContext, ModelCall, ToolCall } from '../../agent.js';
import type { ToolTimer } from '../shared/toolTimeouts.js';
import { isNormalEnd, modelCallOptions, NO_TOOL_TIMEOUTS, ungovernedToolError, type ModelCallRequest, type RunBridge, type UngovernedToolPolicy } from './runBridge.js';

/** How one step of a stepped run ended: the Runnable wants another model turn, or it finished. */
export type TurnOutcome = { readonly done: false; readonly text: string } | { readonly done: true; readonly value: unknown };

interface Waiter {
  readonly kind: 'model' | 'tool';
  go(): void;
}

/**
 * What a call waiting on an aborted gate gets: a promise that never settles. The Runnable's own
 * signal is aborted, so LangChain rejects the Runnable itself; rejecting the waiting callback too
 * would only make LangChain log a handler error for a run that ended normally (at maxSteps, say).
 */
const never = <T>(): Promise<T> => new Promise<T>(() => {});

interface Pending {
  resolve(outcome: TurnOutcome): void;
  reject(error: unknown): void;
}

/**
 * One Runnable run (typically a graph) spread over several OAO steps, one model call per step.
 *
 * The Runnable runs on its own, with this gate as its bridge. A step is open from `step(ctx)` until
 * the Runnable asks for a model call when the step has had its call and nothing of the step is still
 * running: that call then waits, the step resolves, and the call goes ahead only when OAO starts the
 * next step (REVIEW decided to continue and `maxSteps` allowed it). Tool calls made between steps
 * wait too, so every governed call is charged to the step that was open when it ran.
 *
 * A step's signal aborting for any reason but the step's normal end (a violation, cancellation,
 * the deadline) aborts the Runnable through `signal`.
 */
export class TurnGate implements RunBridge {
  readonly #controller = new AbortController();
  readonly #policy: UngovernedToolPolicy;
  readonly timer: ToolTimer;
  /** A step's output is its last model response's text. */
  readonly wantsText = true;
  #ctx: AgentContext | undefined;
  #detach: (() => void) | undefined;
  #pending: Pending | undefined;
  #turnUsed = false;
  #inflight = 0;
  #text = '';
  #queue: Waiter[] = [];
  #started = false;
  #settled: { ok: true; value: unknown } | { ok: false; error: unknown } | undefined;

  constructor(policy: UngovernedToolPolicy, timer: ToolTimer = NO_TOOL_TIMEOUTS) {
    this.#policy = policy;
    this.timer = timer;
  }

  /** The Runnable's signal: aborted when the run stops or the gate is abandoned. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** The Runnable has returned: the run is done. */
  get finished(): boolean {
    return this.#settled?.ok === true;
  }

  /** The Runnable failed or was aborted: a retried step must start it again. */
  get broken(): boolean {
    return this.#settled?.ok === false || this.#controller.signal.aborted;
  }

  /**
   * Opens a step and resolves when it ends. The first step starts the Runnable with `start`, which
   * must pass `signal` and this gate (in a config from `bridgedConfig`) to it.
   */
  step(ctx: AgentContext, start: () => Promise<unknown>): Promise<TurnOutcome> {
    const settled = this.#settled;
    if (settled !== undefined) {
      return settled.ok ? Promise.resolve({ done: true, value: settled.value }) : Promise.reject(settled.error);
    }
    if (this.#controller.signal.aborted) return Promise.reject(this.#controller.signal.reason);
    const outcome = new Promise<TurnOutcome>((resolve, reject) => (this.#pending = { resolve, reject }));
    this.#ctx = ctx;
    this.#turnUsed = false;
    this.#text = '';
    const signal = ctx.signal;
    const onAbort = (): void => {
      if (!isNormalEnd(signal.reason)) this.abort(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    this.#detach = () => signal.removeEventListener('abort', onAbort);
    if (signal.aborted) {
      this.abort(signal.reason);
      return outcome;
    }
    if (!this.#started) {
      this.#started = true;
      let running: Promise<unknown>;
      try {
        running = start();
      } catch (error) {
        running = Promise.reject(error);
      }
      running.then(
        (value) => this.#settle({ ok: true, value }),
        (error: unknown) => this.#settle({ ok: false, error }),
      );
    } else {
      this.#release();
    }
    return outcome;
  }

  /** Stops the Runnable (its signal aborts); calls waiting on the gate never go ahead. Idempotent. */
  abort(reason: unknown): void {
    if (this.#controller.signal.aborted) return;
    this.#controller.abort(reason);
    this.#queue = [];
    this.#close()?.reject(reason);
  }

  openModelCall(request: ModelCallRequest): ModelCall | Promise<ModelCall> {
    if (this.#ctx !== undefined && !this.#turnUsed) {
      this.#turnUsed = true;
      return this.#open(request);
    }
    if (this.#controller.signal.aborted) return never();
    return new Promise<ModelCall>((resolve, reject) => {
      this.#queue.push({
        kind: 'model',
        go: () => {
          try {
            resolve(this.#open(request));
          } catch (error) {
            reject(error);
          }
        },
      });
      this.#maybeEndStep();
    });
  }

  modelCallClosed(text: string | undefined): void {
    this.#inflight -= 1;
    if (text !== undefined) this.#text = text;
    this.#maybeEndStep();
  }

  callTool(name: string, args: unknown): Promise<unknown> {
    if (this.#ctx !== undefined) return this.#runTool(this.#ctx, name, args);
    if (this.#controller.signal.aborted) return never();
    return new Promise<unknown>((resolve, reject) => {
      this.#queue.push({
        kind: 'tool',
        go: () => {
          // Released only while a step is open.
          this.#runTool(this.#ctx as AgentContext, name, args).then(resolve, reject);
        },
      });
    });
  }

  openToolCall(name: string, args: unknown): ToolCall | undefined | Promise<ToolCall> {
    if (this.#policy === 'allow') return undefined;
    if (this.#policy === 'refuse') {
      const error = ungovernedToolError(name);
      this.abort(error);
      throw error;
    }
    if (this.#ctx !== undefined) return this.#beginTool(this.#ctx, name, args);
    if (this.#controller.signal.aborted) return never();
    return new Promise<ToolCall>((resolve, reject) => {
      this.#queue.push({
        kind: 'tool',
        go: () => {
          // Released only while a step is open.
          try {
            resolve(this.#beginTool(this.#ctx as AgentContext, name, args));
          } catch (error) {
            reject(error);
          }
        },
      });
    });
  }

  toolCallClosed(): void {
    this.#inflight -= 1;
    this.#maybeEndStep();
  }

  stop(error: Error): void {
    this.abort(error);
  }

  #beginTool(ctx: AgentContext, name: string, args: unknown): ToolCall {
    const call = ctx.beginToolCall(name, args);
    this.#inflight += 1;
    return call;
  }

  #open(request: ModelCallRequest): ModelCall {
    const ctx = this.#ctx as AgentContext;
    const call = ctx.beginModelCall(modelCallOptions(request));
    this.#inflight += 1;
    return call;
  }

  #runTool(ctx: AgentContext, name: string, args: unknown): Promise<unknown> {
    this.#inflight += 1;
    const done = (): void => {
      this.#inflight -= 1;
      this.#maybeEndStep();
    };
    return ctx.callTool(name, args).then(
      (value) => {
        done();
        return value;
      },
      (error: unknown) => {
        done();
        throw error;
      },
    );
  }

  /** A new step: the first waiting model call gets its turn, waiting tool calls go ahead. */
  #release(): void {
    const queue = this.#queue;
    this.#queue = [];
    for (const waiter of queue) {
      if (waiter.kind === 'model') {
        if (this.#turnUsed) {
          this.#queue.push(waiter);
          continue;
        }
        this.#turnUsed = true;
      }
      waiter.go();
    }
  }

  #maybeEndStep(): void {
    if (this.#ctx === undefined || !this.#turnUsed || this.#inflight > 0) return;
    if (!this.#queue.some((waiter) => waiter.kind === 'model')) return;
    this.#close()?.resolve({ done: false, text: this.#text });
  }

  #settle(settled: { ok: true; value: unknown } | { ok: false; error: unknown }): void {
    if (this.#settled !== undefined) return;
    this.#settled = settled;
    const pending = this.#close();
    if (pending === undefined) return;
    if (settled.ok) pending.resolve({ done: true, value: settled.value });
    else pending.reject(settled.error);
  }

  #close(): Pending | undefined {
    const pending = this.#pending;
    this.#pending = undefined;
    this.#ctx = undefined;
    this.#detach?.();
    this.#detach = undefined;
    return pending;
  }
}
