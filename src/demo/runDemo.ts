import { filter } from 'rxjs';
import { colorWanted, createStyle, table, type Style } from '../cli/style.js';
import type { OaoEvent } from '../events/schema.js';
import { Orchestrator } from '../Orchestrator.js';
import type { ExecutionReport, JsonValue } from '../report/schema.js';
import { DEMO_POLICY, demoScenarios, type DemoScenario, type ScenarioOutcome } from './demoScenarios.js';
import { eventFacts, formatTimeline, preview } from './formatTimeline.js';

export type { DemoScenario, ScenarioOutcome } from './demoScenarios.js';

export interface DemoOptions {
  /**
   * Print one JSON document instead of text:
   * `{ ok, problems, durationMs, scenarios: [{ name, title, expected, report, events, facts, problems }] }`.
   * @default false
   */
  readonly json?: boolean;
  /**
   * Receives the output, one line at a time, each ending with a newline.
   * @default writes to process.stdout
   */
  readonly write?: (line: string) => void;
  /**
   * Colour the text output (never the JSON).
   * @default process.stdout is a terminal and NO_COLOR is not set
   */
  readonly color?: boolean;
  /**
   * The scenarios to run, in order, on the demo's orchestrator.
   * @default the built-in four: well-behaved, runaway, tool-happy, hung
   */
  readonly scenarios?: readonly DemoScenario[];
}

/** One scenario as it ran: the full report, every event a hook saw, and whether it ended as it must. */
export interface DemoScenarioResult {
  readonly name: string;
  readonly title: string;
  readonly expected: string;
  readonly report: ExecutionReport;
  /** The run's events, in order, as the orchestrator's `on('*')` hook received them. */
  readonly events: readonly OaoEvent[];
  readonly facts: Readonly<Record<string, JsonValue>>;
  /** How the run differed from `expected`; empty when it did not. */
  readonly problems: readonly string[];
}

export interface DemoResult {
  /** Every scenario ended as expected. */
  readonly ok: boolean;
  /** Every scenario's problems, prefixed with its name. */
  readonly problems: readonly string[];
  readonly scenarios: readonly DemoScenarioResult[];
  /** Wall time of the whole demo. */
  readonly durationMs: number;
}

/**
 * Runs a short governed session on built-in agents, with no network and no API key: one
 * orchestrator, four runs (a well-behaved agent, a runaway loop, a tool-happy agent and a hung
 * one), the events a hook saw, and a summary. The demo checks its own expectations: `ok` is false
 * if any run ended differently from what OAO guarantees.
 *
 * @example
 * ```ts
 * import { runDemo } from './runDemo.js';
 * const result = await runDemo({ json: true, write: () => {} });
 * result.scenarios.map((s) => s.report.termination.reason); // ['completed', 'policy_violation', 'policy_violation', 'timeout']
 * ```
 */
export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const write = options.write ?? ((line: string) => void process.stdout.write(line));
  const style = createStyle(options.color ?? colorWanted(process.stdout.isTTY === true, process.env));
  const began = performance.now();

  const orch = new Orchestrator({ policy: DEMO_POLICY });
  // The hook sees every event of every run; runs are told apart by executionId.
  const eventsByRun = new Map<string, OaoEvent[]>();
  const unhook = orch.on('*', (event) => {
    let list = eventsByRun.get(event.executionId);
    if (list === undefined) eventsByRun.set(event.executionId, (list = []));
    list.push(event);
  });
  // The same stream as RxJS: every allow/deny and stop decision, for the audit trail.
  const decisions: OaoEvent[] = [];
  const audit = orch.events$
    .pipe(filter((event) => event.type === 'TOOL_DENIED' || event.type === 'POLICY_VIOLATION' || event.type === 'EXECUTION_TIMEOUT'))
    .subscribe((event) => decisions.push(event));

  const print = (text = ''): void => {
    for (const line of text.split('\n')) write(`${line}\n`);
  };
  const human = options.json !== true;
  if (human) {
    print(style.bold('OpenAgentOrchestrator demo') + style.dim(' · built-in agents, no network, no API key'));
    print(style.dim(`one Orchestrator, policy ${describePolicy()}; a hook on orch.on('*') records every event`));
  }

  const results: DemoScenarioResult[] = [];
  try {
    for (const [index, scenario] of (options.scenarios ?? demoScenarios).entries()) {
      const outcome = await scenario.run(orch);
      const events = eventsByRun.get(outcome.report.executionId) ?? [];
      eventsByRun.delete(outcome.report.executionId);
      const result: DemoScenarioResult = {
        name: scenario.name,
        title: scenario.title,
        expected: scenario.expected,
        report: outcome.report,
        events,
        facts: outcome.facts,
        problems: [...scenario.check(outcome), ...checkEvents(events, outcome.report)],
      };
      results.push(result);
      if (human) print(formatScenario(index + 1, scenario, outcome, result, style));
    }
  } finally {
    unhook();
    audit.unsubscribe();
  }

  const problems = results.flatMap((r) => r.problems.map((p) => `${r.name}: ${p}`));
  const durationMs = performance.now() - began;
  const result: DemoResult = { ok: problems.length === 0, problems, scenarios: results, durationMs };
  if (human) print(formatSummary(result, decisions, style));
  else print(JSON.stringify({ ok: result.ok, problems, durationMs, scenarios: results }, null, 2));
  return result;
}

function describePolicy(): string {
  return `maxSteps ${DEMO_POLICY.maxSteps} · maxTokens ${DEMO_POLICY.maxTokens} · maxToolCalls ${DEMO_POLICY.maxToolCalls} · timeoutMs ${DEMO_POLICY.timeoutMs}`;
}

/** What holds for every run's event stream, whatever the agent did. */
function checkEvents(events: readonly OaoEvent[], report: ExecutionReport): string[] {
  const problems: string[] = [];
  if (events[0]?.type !== 'EXECUTION_START') problems.push(`the first event was ${events[0]?.type ?? 'missing'}, expected EXECUTION_START`);
  const last = events[events.length - 1];
  if (last?.type !== 'EXECUTION_COMPLETE') problems.push(`the last event was ${last?.type ?? 'missing'}, expected EXECUTION_COMPLETE`);
  else if (last.payload.report.executionId !== report.executionId) problems.push('EXECUTION_COMPLETE carried another run’s report');
  if (events.some((event, i) => event.seq !== i)) problems.push('event seq numbers are not 0, 1, 2, … without gaps');
  return problems;
}

function reasonOf(report: ExecutionReport): string {
  const { reason, rule } = report.termination;
  return rule === undefined ? reason : `${reason} (${rule})`;
}

function formatMs(ms: number): string {
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${ms.toFixed(0)} ms`;
}

function formatScenario(number: number, scenario: DemoScenario, outcome: ScenarioOutcome, result: DemoScenarioResult, style: Style): string {
  const { report } = outcome;
  const ok = result.problems.length === 0;
  const status = report.status === 'SUCCESS' ? style.green(report.status) : style.red(report.status);
  const byTool = Object.entries(report.toolUsage.byTool)
    .map(([tool, n]) => `${tool} ×${n}`)
    .join(', ');
  const lines = [
    '',
    style.bold(style.cyan(`── ${number}. ${scenario.name}: ${scenario.title}`)),
    `${ok ? style.green('✔') : style.red('✖')} ${style.bold(report.agentName)}  ${status}  ${reasonOf(report)}  ${style.dim(`(expected: ${scenario.expected})`)}`,
    `  steps ${report.totalSteps} · tokens ${report.tokenUsage.total} (in ${report.tokenUsage.input} / out ${report.tokenUsage.output}) · tool calls ${report.toolUsage.total}${byTool === '' ? '' : ` (${byTool})`} · ${formatMs(report.executionTimeMs)}`,
  ];
  if (report.termination.message !== undefined) lines.push(`  why: ${style.yellow(report.termination.message)}`);
  lines.push(`  output: ${preview(report.finalOutput, 80)}`);
  for (const note of outcome.notes) lines.push(`  ${style.cyan('→')} ${note}`);
  for (const problem of result.problems) lines.push(`  ${style.red('unexpected:')} ${problem}`);
  lines.push(style.dim(`  events seen by the hook (${result.events.length}):`));
  lines.push(formatTimeline(result.events, style));
  return lines.join('\n');
}

function formatSummary(result: DemoResult, decisions: readonly OaoEvent[], style: Style): string {
  const rows = [['scenario', 'agent', 'status', 'reason / rule', 'steps', 'tokens', 'tool calls', 'time']];
  for (const { name, report } of result.scenarios) {
    rows.push([
      name,
      report.agentName,
      report.status === 'SUCCESS' ? style.green(report.status) : style.red(report.status),
      reasonOf(report),
      String(report.totalSteps),
      String(report.tokenUsage.total),
      String(report.toolUsage.total),
      formatMs(report.executionTimeMs),
    ]);
  }
  const names = new Map(result.scenarios.map((s) => [s.report.executionId, s.name]));
  const lines = ['', style.bold('Summary'), table(rows, style), '', style.bold('Governance decisions (orch.events$ filtered with RxJS)')];
  if (decisions.length === 0) lines.push('  none');
  for (const event of decisions) {
    lines.push(`  ${names.get(event.executionId) ?? event.executionId}: ${style.yellow(event.type)} ${eventFacts(event)}`);
  }
  lines.push('');
  const count = result.scenarios.length;
  if (result.ok) {
    lines.push(style.green(`✔ All ${count} scenarios ended as expected (${formatMs(result.durationMs)}).`));
  } else {
    lines.push(style.red(`✖ ${result.problems.length} expectation(s) not met:`));
    for (const problem of result.problems) lines.push(`  - ${problem}`);
  }
  return lines.join('\n');
}
