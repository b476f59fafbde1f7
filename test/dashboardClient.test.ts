import { afterEach, describe, expect, it } from 'vitest';
import { Orchestrator, type AgentContext, type OaoEvent } from '../src/index.js';
import { startServer, type StartedServer } from '../src/server/index.js';
import { createGates } from './helpers.js';

/**
 * The dashboard's browser modules that need no DOM, run in Node: the SSE framing and reconnection
 * (sse.js) against a real server, the view a run's events become (runModel.js), the timeline's
 * time axis and how limits are written (timeline.js, format.js).
 */

interface SseMessage {
  readonly id: string;
  readonly event: string;
  readonly data: string;
}
interface SseModule {
  SseParser: new () => { push(text: string): SseMessage[]; readonly lastEventId: string; readonly retry: number | null };
  followRunEvents: (options: {
    url: string | URL;
    headers?: () => Record<string, string>;
    onEvent: (event: OaoEvent) => void;
    onStatus?: (status: string) => void;
    signal?: AbortSignal;
    fetch?: typeof fetch;
    maxRetryMs?: number;
  }) => Promise<{ completed: boolean; lastSeq: number }>;
}
interface Span {
  readonly lane: string;
  readonly label: string;
  readonly start: number;
  readonly end: number | null;
  readonly status: string;
}
interface RunView {
  readonly finished: boolean;
  readonly status: string | null;
  readonly elapsed: number;
  readonly currentState: string | null;
  readonly visits: Map<string, number>;
  readonly taken: Set<string>;
  readonly counters: { steps: number; tokens: number; toolCalls: number };
  readonly limits: { maxSteps: number; maxTokens: number; maxToolCalls: number; timeoutMs: number } | null;
  readonly spans: readonly Span[];
  readonly marks: readonly { kind: string; label: string }[];
}
interface RunModelModule {
  deriveRun: (events: readonly OaoEvent[], options?: { now?: number | null; report?: unknown }) => RunView;
  packRows: (spans: readonly Span[], elapsed: number, maxRows?: number) => { placed: { span: Span; row: number }[]; rows: number };
  gaugeLevel: (used: number, limit: number | null) => string;
  LIMIT_NAMES: readonly string[];
  loweredLimits: (
    requested: Record<string, number> | null,
    applied: Record<string, unknown> | null,
  ) => { name: string; requested: number; applied: number }[];
}
interface TimelineModule {
  timeAxis: (span: number, count?: number) => { step: number; end: number };
}
interface FormatModule {
  limitLabel: (name: string) => string;
  formatLimit: (name: string, value: number) => string;
  formatTick: (ms: number) => string;
}

// The modules are plain JavaScript served to browsers as they are; they are loaded by path, so
// the type checker does not look for declarations it has no need of.
const dashboardModule = (name: string): string => `../dashboard/${name}`;
const { SseParser, followRunEvents } = (await import(dashboardModule('sse.js'))) as SseModule;
const { deriveRun, packRows, gaugeLevel, LIMIT_NAMES, loweredLimits } = (await import(dashboardModule('runModel.js'))) as RunModelModule;
const { timeAxis } = (await import(dashboardModule('timeline.js'))) as TimelineModule;
const { limitLabel, formatLimit, formatTick } = (await import(dashboardModule('format.js'))) as FormatModule;

const STREAM =
  'retry: 1500\n\n' +
  ': a comment\n' +
  'id: 1\nevent: STEP_START\ndata: {"seq":1,"text":"héllo 🚀"}\n\n' +
  'id: 2\r\nevent: multi\r\ndata: first line\r\ndata: second line\r\n\r\n' +
  'data:no space after the colon\rid: 3\r\r' +
  'event: no-data\n\n' +
  'data\n\n';

const EXPECTED: SseMessage[] = [
  { id: '1', event: 'STEP_START', data: '{"seq":1,"text":"héllo 🚀"}' },
  { id: '2', event: 'multi', data: 'first line\nsecond line' },
  { id: '3', event: 'message', data: 'no space after the colon' },
  { id: '3', event: 'message', data: '' },
];

describe('SseParser', () => {
  it('reads the SSE framing: fields, comments, multi-line data, every line ending', () => {
    const parser = new SseParser();
    expect(parser.push(STREAM)).toEqual(EXPECTED);
    expect(parser.retry).toBe(1500);
    expect(parser.lastEventId).toBe('3');
  });

  it('gives the same messages wherever the text is split', () => {
    for (let cut = 0; cut <= STREAM.length; cut++) {
      const parser = new SseParser();
      const messages = [...parser.push(STREAM.slice(0, cut)), ...parser.push(STREAM.slice(cut))];
      expect(messages, `split at ${cut}`).toEqual(EXPECTED);
    }
    const parser = new SseParser();
    expect([...STREAM].flatMap((character) => parser.push(character))).toEqual(EXPECTED);
  });

  it('keeps an unfinished message until its blank line arrives', () => {
    const parser = new SseParser();
    expect(parser.push('id: 7\ndata: {"seq":7}\n')).toEqual([]);
    expect(parser.push('\n')).toEqual([{ id: '7', event: 'message', data: '{"seq":7}' }]);
  });
});

// ---- following a run over a real socket -------------------------------------------------------------

const gates = createGates();
const gate = gates.gate;

const agents = {
  chatty: {
    name: 'chatty',
    async invoke(task: string, ctx: AgentContext) {
      await ctx.callTool('note', { text: `${task} · step ${ctx.step} · ünïcödé 🚀` });
      ctx.usage({ input: 3, output: 4 });
      return { output: `done: ${task}` };
    },
    review: (result: { step: number }) => (result.step < 3 ? { done: false } : { done: true }),
  },
  gated: {
    name: 'gated',
    async invoke(task: string, ctx: AgentContext) {
      await new Promise<void>((resolve, reject) => {
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason));
        void gate(task).promise.then(resolve);
      });
      return { output: task };
    },
  },
};
const tools = { note: ({ text }: { text: string }) => `noted ${text}` };

const servers: StartedServer[] = [];
async function serve(apiKeys: string[] = []): Promise<StartedServer> {
  const server = await startServer({ agents, tools, apiKeys, port: 0 });
  servers.push(server);
  return server;
}

afterEach(async () => {
  gates.openAll();
  gates.clear();
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function startRun(server: StartedServer, agent: string, task: string, headers: Record<string, string> = {}): Promise<string> {
  const answer = await fetch(`${server.url}/runs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ agent, task }),
  });
  expect(answer.status).toBe(202);
  return ((await answer.json()) as { executionId: string }).executionId;
}

/**
 * A fetch whose first answer is cut off after `keepMessages` SSE messages, and whose bodies arrive
 * in pieces of `pieceBytes` (splitting lines and multi-byte characters). Records each request's headers.
 */
function flakyFetch(keepMessages: number, pieceBytes: number) {
  const requests: Headers[] = [];
  const flaky: typeof fetch = async (input, init) => {
    requests.push(new Headers(init?.headers));
    const response = await fetch(input, init);
    if (response.body === null) return response;
    const cutOff = requests.length === 1;
    const source = response.body.getReader();
    let messages = 0;
    let afterNewline = false;
    let pending = new Uint8Array(0);
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (pending.length === 0) {
          const { value, done } = await source.read();
          if (done) return controller.close();
          pending = value;
        }
        const piece = pending.subarray(0, pieceBytes);
        pending = pending.subarray(piece.length);
        if (cutOff) {
          // Messages end with a blank line: count "\n\n" (possibly split between pieces) byte by byte.
          for (let index = 0; index < piece.length; index++) {
            const newline = piece[index] === 0x0a;
            if (newline && afterNewline) {
              afterNewline = false;
              messages += 1;
              if (messages === keepMessages) {
                controller.enqueue(piece.subarray(0, index + 1));
                await source.cancel();
                return controller.close();
              }
            } else {
              afterNewline = newline;
            }
          }
        }
        controller.enqueue(piece);
      },
      cancel: () => source.cancel(),
    });
    return new Response(body, { status: response.status, headers: response.headers });
  };
  return { flaky, requests };
}

describe('followRunEvents', () => {
  it('resumes with Last-Event-ID after a dropped connection: every event once, in order', async () => {
    const server = await serve();
    const id = await startRun(server, 'chatty', 'résumé');
    // Wait for the run to finish, so the stream is a replay of known length.
    await (await fetch(`${server.url}/runs/${id}/events`)).text();
    const { flaky, requests } = flakyFetch(6, 64);
    const events: OaoEvent[] = [];
    const statuses: string[] = [];
    const result = await followRunEvents({
      url: `${server.url}/runs/${id}/events`,
      onEvent: (event) => events.push(event),
      onStatus: (status) => statuses.push(status),
      fetch: flaky,
      maxRetryMs: 20,
    });
    expect(result.completed).toBe(true);
    expect(requests).toHaveLength(2);
    expect(requests[0]?.get('last-event-id')).toBeNull();
    // `retry:` plus five events made it through the first connection: seq 0 to 4.
    expect(requests[1]?.get('last-event-id')).toBe('4');
    expect(events.map((event) => event.seq)).toEqual(events.map((_, index) => index));
    expect(events.at(-1)?.type).toBe('EXECUTION_COMPLETE');
    expect(result.lastSeq).toBe(events.length - 1);
    expect(statuses).toEqual(['connecting', 'open', 'reconnecting', 'open', 'closed']);
  });

  it('reassembles events whose bytes arrive split anywhere, multi-byte characters included', async () => {
    const server = await serve();
    const id = await startRun(server, 'chatty', 'ünïcödé 🚀');
    for (const pieceBytes of [1, 3, 7]) {
      const { flaky } = flakyFetch(Number.POSITIVE_INFINITY, pieceBytes);
      const events: OaoEvent[] = [];
      await followRunEvents({ url: `${server.url}/runs/${id}/events`, onEvent: (event) => events.push(event), fetch: flaky });
      const call = events.find((event) => event.type === 'TOOL_CALL');
      expect(call?.payload, `pieces of ${pieceBytes}`).toMatchObject({ args: { text: 'ünïcödé 🚀 · step 1 · ünïcödé 🚀' } });
      expect(events.at(-1)?.type).toBe('EXECUTION_COMPLETE');
    }
  });

  it('follows a live run to its end', async () => {
    const server = await serve();
    const id = await startRun(server, 'gated', 'live-1');
    const events: OaoEvent[] = [];
    const following = followRunEvents({
      url: `${server.url}/runs/${id}/events`,
      onEvent: (event) => {
        events.push(event);
        if (event.type === 'STEP_START') gate('live-1').resolve();
      },
    });
    await expect(following).resolves.toMatchObject({ completed: true });
    expect(events.at(-1)).toMatchObject({ type: 'EXECUTION_COMPLETE', payload: { report: { status: 'SUCCESS' } } });
  });

  it('sends the API key, and gives up with the server\'s error when retrying cannot help', async () => {
    const server = await serve(['k3y']);
    const id = await startRun(server, 'chatty', 'secret', { authorization: 'Bearer k3y' });
    const url = `${server.url}/runs/${id}/events`;
    await expect(followRunEvents({ url, onEvent: () => {} })).rejects.toMatchObject({ status: 401, code: 'OAO_ERR_UNAUTHORIZED' });
    const events: OaoEvent[] = [];
    await followRunEvents({ url, headers: () => ({ authorization: 'Bearer k3y' }), onEvent: (event) => events.push(event) });
    expect(events.at(-1)?.type).toBe('EXECUTION_COMPLETE');
    await expect(
      followRunEvents({ url: `${server.url}/runs/nobody/events`, headers: () => ({ authorization: 'Bearer k3y' }), onEvent: () => {} }),
    ).rejects.toMatchObject({ status: 404, code: 'OAO_ERR_RUN_NOT_FOUND' });
  });

  it('stops when its signal aborts', async () => {
    const server = await serve();
    const id = await startRun(server, 'gated', 'never');
    const controller = new AbortController();
    const following = followRunEvents({
      url: `${server.url}/runs/${id}/events`,
      signal: controller.signal,
      onEvent: (event) => {
        if (event.type === 'STEP_START') controller.abort();
      },
    });
    await expect(following).resolves.toMatchObject({ completed: false });
  });
});

// ---- the run model ----------------------------------------------------------------------------

describe('deriveRun', () => {
  const modelAgent = {
    name: 'modelled',
    async invoke(task: string, ctx: AgentContext) {
      const call = ctx.beginModelCall({ model: 'fake-1', input: task });
      call.end(`thought ${ctx.step}`, { input: 10, output: 5 });
      await ctx.callTool('lookup', { q: task });
      if (ctx.step === 2) await ctx.callTool('forbidden', {}).catch(() => undefined);
      return { output: `step ${ctx.step}` };
    },
    review: () => ({ done: false }),
  };

  it('turns a run\'s events into lanes of spans, marks and budget counters', async () => {
    const orchestrator = new Orchestrator({ policy: { maxSteps: 5, tools: { deny: ['forbidden'] } } });
    const handle = orchestrator.start({
      agent: modelAgent,
      task: 'q',
      tools: { lookup: () => 'found', forbidden: () => 'never runs' },
    });
    const report = await handle.report;
    const view = deriveRun(handle.events());
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'tool_denied' });
    expect(view).toMatchObject({ finished: true, status: 'FAILED', currentState: 'FAILED' });
    expect(view.limits).toMatchObject({ maxSteps: 5 });
    expect(view.counters).toEqual({ steps: 2, tokens: 30, toolCalls: 2 });
    expect(view.visits.get('EXECUTE')).toBe(2);
    expect([...view.taken]).toEqual(expect.arrayContaining(['INIT>PLAN', 'PLAN>EXECUTE', 'EXECUTE>REVIEW', 'REVIEW>EXECUTE', 'EXECUTE>FAILED']));

    const lane = (name: string) => view.spans.filter((span) => span.lane === name);
    expect(lane('states').map((span) => span.label)).toEqual(['INIT', 'PLAN', 'EXECUTE', 'REVIEW', 'EXECUTE', 'FAILED']);
    expect(lane('states').at(-1)?.status).toBe('final');
    expect(lane('steps').map((span) => [span.label, span.status])).toEqual([
      ['step 1', 'ok'],
      ['step 2', 'aborted'],
    ]);
    expect(lane('models').map((span) => [span.label, span.status])).toEqual([
      ['fake-1', 'ok'],
      ['fake-1', 'ok'],
    ]);
    expect(lane('tools').map((span) => [span.label, span.status])).toEqual([
      ['lookup', 'ok'],
      ['lookup', 'ok'],
      ['forbidden', 'denied'],
    ]);
    for (const span of view.spans) {
      expect(span.end).not.toBeNull();
      expect(span.start).toBeGreaterThanOrEqual(0);
      expect(span.end as number).toBeGreaterThanOrEqual(span.start);
      expect(span.end as number).toBeLessThanOrEqual(view.elapsed);
    }
    expect(view.marks.map((mark) => [mark.kind, mark.label])).toEqual([['violation', 'tool_denied']]);
  });

  it('leaves bars open while the run runs, and grows them with the clock', async () => {
    const orchestrator = new Orchestrator();
    const handle = orchestrator.start({ agent: agents.gated, task: 'open-bars' });
    await new Promise<void>((resolve) => {
      const subscription = handle.events$.subscribe((event) => {
        if (event.type === 'STEP_START') {
          resolve();
          queueMicrotask(() => subscription.unsubscribe());
        }
      });
    });
    const events = handle.events();
    const origin = events[0]?.timestamp as number;
    const view = deriveRun(events, { now: origin + 5_000 });
    expect(view).toMatchObject({ finished: false, status: 'running', currentState: 'EXECUTE', elapsed: 5_000 });
    const open = view.spans.filter((span) => span.end === null);
    expect(open.map((span) => [span.lane, span.label, span.status])).toEqual([
      ['states', 'EXECUTE', 'open'],
      ['steps', 'step 1', 'open'],
    ]);
    handle.cancel('done looking');
    await handle.report;
    const final = deriveRun(handle.events());
    expect(final).toMatchObject({ finished: true, status: 'FAILED' });
    expect(final.spans.find((span) => span.lane === 'steps')?.status).toBe('aborted');
    expect(final.marks.map((mark) => mark.kind)).toEqual(['cancelled']);
  });

  it('falls back to the report when the events are gone', async () => {
    const report = await new Orchestrator().run({ agent: agents.chatty, task: 'gone', tools });
    const view = deriveRun([], { report });
    expect(view).toMatchObject({ finished: true, status: 'SUCCESS', currentState: 'TERMINATE', limits: null });
    expect(view.counters).toEqual({ steps: 3, tokens: 21, toolCalls: 3 });
    expect(view.spans.filter((span) => span.lane === 'states').map((span) => span.label)).toEqual([
      'INIT',
      'PLAN',
      'EXECUTE',
      'REVIEW',
      'EXECUTE',
      'REVIEW',
      'EXECUTE',
      'REVIEW',
      'TERMINATE',
    ]);
  });

  it('packs overlapping spans into rows and grades gauges', () => {
    const span = (start: number, end: number | null): Span => ({ lane: 'tools', label: 't', start, end, status: 'ok' });
    const { placed, rows } = packRows([span(0, 10), span(5, 15), span(10, 20), span(12, null)], 30);
    expect(rows).toBe(3);
    expect(placed.map((entry) => entry.row)).toEqual([0, 1, 0, 2]);
    expect(packRows([span(0, 10), span(1, 10), span(2, 10)], 10, 2).rows).toBe(2);
    expect([gaugeLevel(1, 10), gaugeLevel(8, 10), gaugeLevel(10, 10), gaugeLevel(11, 10), gaugeLevel(0, 0), gaugeLevel(3, null)]).toEqual([
      'ok',
      'near',
      'limit',
      'over',
      'limit',
      'unknown',
    ]);
  });
});

describe('timeAxis', () => {
  it('ends the axis on the first round value after the run, not at a fixed minimum', () => {
    expect(timeAxis(13)).toEqual({ step: 2, end: 14 });
    expect(timeAxis(13, 3)).toEqual({ step: 5, end: 15 });
    expect(timeAxis(48)).toEqual({ step: 10, end: 50 });
    expect(timeAxis(1_234)).toEqual({ step: 200, end: 1_400 });
    expect(timeAxis(20_000)).toEqual({ step: 5_000, end: 20_000 });
    // Ticks are whole milliseconds: a run shorter than one gets an axis of one.
    expect(timeAxis(0)).toEqual({ step: 1, end: 1 });
    expect(timeAxis(0.4)).toEqual({ step: 1, end: 1 });
    expect(timeAxis(Number.NaN)).toEqual({ step: 1, end: 1 });
  });

  it('keeps every axis round, at most `count` steps long and within one step of the run', () => {
    for (const count of [3, 5, 7]) {
      for (let span = 0.5; span < 5_000_000; span *= 1.37) {
        const { step, end } = timeAxis(span, count);
        const power = 10 ** Math.floor(Math.log10(step));
        expect([1, 2, 5], `step ${step} for ${span}`).toContain(Math.round(step / power));
        expect(step).toBeGreaterThanOrEqual(1);
        expect(end).toBeGreaterThanOrEqual(span);
        expect(end - span).toBeLessThan(Math.max(step, 1) + 1e-6);
        expect(Math.abs(end / step - Math.round(end / step))).toBeLessThan(1e-9);
        expect(Math.round(end / step)).toBeLessThanOrEqual(count);
        expect(end, `axis for a ${span} ms run`).toBeLessThanOrEqual(Math.max(2 * span, span + 1));
      }
    }
  });

  it('labels the ticks of every axis exactly', () => {
    for (const span of [3, 13, 170, 950, 1_234, 8_800, 61_000]) {
      const { step, end } = timeAxis(span);
      const labels = Array.from({ length: Math.round(end / step) + 1 }, (_, index) => formatTick(index * step));
      expect(new Set(labels).size, labels.join(' ')).toBe(labels.length);
    }
    expect([formatTick(0), formatTick(14), formatTick(1_400), formatTick(20_000)]).toEqual(['0', '14 ms', '1.4 s', '20 s']);
  });
});

describe('loweredLimits', () => {
  it('names the limits a run asked for above what it got from a real run\'s EXECUTION_START', async () => {
    const orchestrator = new Orchestrator({ policy: { maxSteps: 3, maxTokens: 500, timeoutMs: 10_000 } });
    const handle = orchestrator.start({
      agent: { invoke: (task: string) => ({ output: task }) },
      task: 'hi',
      policy: { maxSteps: 50, maxTokens: 200, timeoutMs: 60_000 },
    });
    await handle.report;
    const applied = deriveRun(handle.events()).limits;
    expect(applied).toMatchObject({ maxSteps: 3, maxTokens: 200, maxToolCalls: 5, timeoutMs: 10_000 });
    const requested = { maxSteps: 50, maxTokens: 200, timeoutMs: 60_000 };
    expect(loweredLimits(requested, applied)).toEqual([
      { name: 'maxSteps', requested: 50, applied: 3 },
      { name: 'timeoutMs', requested: 60_000, applied: 10_000 },
    ]);
    expect(loweredLimits({ maxSteps: 2 }, applied)).toEqual([]);
    expect(loweredLimits(null, applied)).toEqual([]);
    expect(loweredLimits(requested, null)).toEqual([]);
  });

  it('writes each limit as the page shows it', () => {
    expect(LIMIT_NAMES).toEqual(['maxSteps', 'maxTokens', 'maxToolCalls', 'timeoutMs']);
    expect(LIMIT_NAMES.map((name) => `${limitLabel(name)} ${formatLimit(name, 20_000)}`)).toEqual([
      'steps 20,000',
      'tokens 20,000',
      'tool calls 20,000',
      'timeout 20.0 s',
    ]);
  });
});
