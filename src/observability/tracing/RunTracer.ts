import { SpanKind, SpanStatusCode, context, trace, type Attributes, type Span, type Tracer } from '@opentelemetry/api';
import type { OaoEvent, OaoEventOf } from '../../events/schema.js';
import type { ExecutionReport } from '../../report/schema.js';

/** The open spans of one run; dropped at EXECUTION_COMPLETE. */
interface RunSpans {
  readonly run: Span;
  state: Span | undefined;
  /** Model and tool calls by callId (`m1`, `t1`: the prefixes keep the two apart). */
  readonly calls: Map<string, Span>;
}

/**
 * Turns a stream of run events into OpenTelemetry spans: one span per run, a child per lifecycle
 * state, and a grandchild per model or tool call. Times come from the events, so spans follow the
 * run's clock rather than the wall clock of the moment the event was handled.
 */
export class RunTracer {
  readonly #tracer: Tracer;
  readonly #runs = new Map<string, RunSpans>();
  #accepting = true;

  constructor(tracer: Tracer) {
    this.#tracer = tracer;
  }

  /** Runs with open spans. */
  get activeRuns(): number {
    return this.#runs.size;
  }

  /** Stops tracing new runs; runs already traced keep their spans until they complete. */
  stopAccepting(): void {
    this.#accepting = false;
  }

  handle(event: OaoEvent): void {
    if (event.type === 'EXECUTION_START') {
      if (this.#accepting) this.#start(event);
      return;
    }
    // Runs that started before tracing began (or after it stopped) are not traced at all.
    const run = this.#runs.get(event.executionId);
    if (run === undefined) return;
    switch (event.type) {
      case 'STATE_ENTER':
        run.state?.end(event.timestamp);
        run.state = this.#tracer.startSpan(
          `oao.state ${event.payload.state}`,
          { startTime: event.timestamp, attributes: { 'oao.state': event.payload.state } },
          trace.setSpan(context.active(), run.run),
        );
        break;
      case 'STATE_EXIT':
        run.state?.end(event.timestamp);
        run.state = undefined;
        break;
      case 'MODEL_CALL':
        this.#startCall(run, event.payload.callId, event.timestamp, {
          name: event.payload.model === null ? 'chat' : `chat ${event.payload.model}`,
          kind: SpanKind.CLIENT,
          attributes: {
            'gen_ai.operation.name': 'chat',
            ...(event.payload.model === null ? {} : { 'gen_ai.request.model': event.payload.model }),
            'oao.step': event.payload.step,
          },
        });
        break;
      case 'MODEL_RESULT':
        this.#endModelCall(run, event);
        break;
      case 'TOOL_CALL':
        this.#startCall(run, event.payload.callId, event.timestamp, {
          name: `execute_tool ${event.payload.tool}`,
          kind: SpanKind.INTERNAL,
          attributes: {
            'gen_ai.operation.name': 'execute_tool',
            'gen_ai.tool.name': event.payload.tool,
            'gen_ai.tool.call.id': event.payload.callId,
            'oao.step': event.payload.step,
          },
        });
        break;
      case 'TOOL_RESULT':
        this.#endToolCall(run, event);
        break;
      case 'TOOL_DENIED':
        run.run.addEvent(
          'oao.tool_denied',
          {
            'oao.policy.rule': event.payload.rule,
            'gen_ai.tool.name': event.payload.tool,
            'gen_ai.tool.call.id': event.payload.callId,
            'oao.message': event.payload.message,
          },
          event.timestamp,
        );
        break;
      case 'POLICY_VIOLATION':
        run.run.addEvent(
          'oao.policy_violation',
          {
            'oao.policy.rule': event.payload.rule,
            'oao.message': event.payload.message,
            ...(event.payload.limit === null ? {} : { 'oao.policy.limit': event.payload.limit }),
            ...(event.payload.attempted === null ? {} : { 'oao.policy.attempted': event.payload.attempted }),
            ...(event.payload.tool === undefined ? {} : { 'gen_ai.tool.name': event.payload.tool }),
          },
          event.timestamp,
        );
        break;
      case 'ERROR':
        run.run.addEvent(
          'oao.error',
          {
            'oao.phase': event.payload.phase,
            'oao.step': event.payload.step,
            'oao.attempt': event.payload.attempt,
            'error.type': event.payload.error.code,
            'oao.message': event.payload.error.message,
            'oao.will_retry': event.payload.willRetry,
          },
          event.timestamp,
        );
        break;
      case 'EXECUTION_TIMEOUT':
        run.run.addEvent('oao.timeout', { 'oao.policy.timeout_ms': event.payload.timeoutMs }, event.timestamp);
        break;
      case 'EXECUTION_CANCELLED':
        run.run.addEvent('oao.cancelled', { 'oao.message': event.payload.reason }, event.timestamp);
        break;
      case 'EXECUTION_COMPLETE':
        this.#complete(run, event);
        break;
      default:
        break;
    }
  }

  #start(event: OaoEventOf<'EXECUTION_START'>): void {
    const { agentName, policy, executionHash } = event.payload;
    const run = this.#tracer.startSpan(`oao.run ${agentName}`, {
      // A root span: a run is traced on its own even if the emitting code runs inside another span.
      root: true,
      startTime: event.timestamp,
      attributes: {
        'gen_ai.operation.name': 'invoke_agent',
        'gen_ai.agent.name': agentName,
        'oao.execution_id': event.executionId,
        'oao.agent.name': agentName,
        'oao.execution_hash': executionHash,
        'oao.policy.max_steps': policy.maxSteps,
        'oao.policy.max_tokens': policy.maxTokens,
        'oao.policy.max_tool_calls': policy.maxToolCalls,
        'oao.policy.timeout_ms': policy.timeoutMs,
      },
    });
    this.#runs.set(event.executionId, { run, state: undefined, calls: new Map() });
  }

  #startCall(
    run: RunSpans,
    callId: string,
    startTime: number,
    span: { readonly name: string; readonly kind: SpanKind; readonly attributes: Attributes },
  ): void {
    const parent = trace.setSpan(context.active(), run.state ?? run.run);
    run.calls.get(callId)?.end(startTime);
    run.calls.set(callId, this.#tracer.startSpan(span.name, { kind: span.kind, startTime, attributes: span.attributes }, parent));
  }

  #endModelCall(run: RunSpans, event: OaoEventOf<'MODEL_RESULT'>): void {
    const span = run.calls.get(event.payload.callId);
    if (span === undefined) return;
    run.calls.delete(event.payload.callId);
    const { usage, error } = event.payload;
    if (usage !== null) {
      span.setAttributes({ 'gen_ai.usage.input_tokens': usage.input, 'gen_ai.usage.output_tokens': usage.output });
    }
    if (!event.payload.ok) {
      if (error !== undefined) span.setAttribute('error.type', error.code);
      span.setStatus({ code: SpanStatusCode.ERROR, message: error?.message ?? 'model call failed' });
    }
    span.end(event.timestamp);
  }

  #endToolCall(run: RunSpans, event: OaoEventOf<'TOOL_RESULT'>): void {
    const span = run.calls.get(event.payload.callId);
    if (span === undefined) return;
    run.calls.delete(event.payload.callId);
    const { error } = event.payload;
    if (!event.payload.ok) {
      if (error !== undefined) span.setAttribute('error.type', error.code);
      span.setStatus({ code: SpanStatusCode.ERROR, message: error?.message ?? 'tool call failed' });
    }
    span.end(event.timestamp);
  }

  #complete(run: RunSpans, event: OaoEventOf<'EXECUTION_COMPLETE'>): void {
    const end = event.timestamp;
    // Calls still open were cut off by the run's end (a timeout or cancel mid-call).
    for (const span of run.calls.values()) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: 'the run ended before the call finished' });
      span.end(end);
    }
    run.state?.end(end);
    const report: ExecutionReport = event.payload.report;
    const { termination } = report;
    run.run.setAttributes({
      'oao.status': report.status,
      'oao.termination.reason': termination.reason,
      ...(termination.rule === undefined ? {} : { 'oao.termination.rule': termination.rule }),
      'oao.total_steps': report.totalSteps,
      'gen_ai.usage.input_tokens': report.tokenUsage.input,
      'gen_ai.usage.output_tokens': report.tokenUsage.output,
      'oao.tool_calls': report.toolUsage.total,
    });
    if (report.status === 'FAILED') {
      run.run.setStatus({
        code: SpanStatusCode.ERROR,
        message: termination.message ?? report.error?.message ?? termination.reason,
      });
    }
    run.run.end(end);
    this.#runs.delete(event.executionId);
  }
}
