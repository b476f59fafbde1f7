import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/cli/program.js';
import { DEMO_POLICY, HUNG_TIMEOUT_MS } from '../src/demo/demoScenarios.js';
import { parseDemoArgs } from '../src/demo/parseDemoArgs.js';
import { runDemo, type DemoResult, type DemoScenario, type DemoScenarioResult } from '../src/demo/runDemo.js';
import { executionReportSchema, oaoEventSchema, type OaoEvent } from '../src/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const tsx = fileURLToPath(new URL('../node_modules/.bin/tsx', import.meta.url));
const execFileAsync = promisify(execFile);

// The colour default depends on these; the child decides for itself from its (non-TTY) stdout.
const { FORCE_COLOR: _force, NO_COLOR: _no, ...plainEnv } = process.env;

/** Runs a command from the repository root; resolves with its exit code and output, whatever the code. */
async function spawn(file: string, args: readonly string[]) {
  try {
    const { stdout, stderr } = await execFileAsync(file, [...args], { cwd: root, timeout: 30_000, env: plainEnv });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number | string; stdout?: string; stderr?: string };
    return { code: failed.code, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

async function captured(options: { json?: boolean; color?: boolean }) {
  const lines: string[] = [];
  const result = await runDemo({ ...options, write: (line) => lines.push(line) });
  return { result, output: lines.join(''), lines };
}

function scenario(result: DemoResult, name: string): DemoScenarioResult {
  const found = result.scenarios.find((s) => s.name === name);
  if (found === undefined) throw new Error(`no scenario "${name}"`);
  return found;
}

const typesOf = (events: readonly OaoEvent[]) => events.map((e) => e.type);

describe('runDemo({ json: true })', () => {
  let result: DemoResult;
  let output: string;

  beforeAll(async () => {
    ({ result, output } = await captured({ json: true }));
  });

  it('runs the four scenarios, in order, and every one ends as expected', () => {
    expect(result.scenarios.map((s) => s.name)).toEqual(['well-behaved', 'runaway', 'tool-happy', 'hung']);
    expect(result.problems).toEqual([]);
    expect(result.ok).toBe(true);
  });

  it('a well-behaved agent succeeds with its steps, tokens and one allowed tool call in the report', () => {
    const { report, events } = scenario(result, 'well-behaved');
    expect(report).toMatchObject({
      agentName: 'researcher',
      status: 'SUCCESS',
      termination: { reason: 'completed' },
      totalSteps: 2,
      tokenUsage: { input: 200, output: 105, total: 305 },
      toolUsage: { total: 1, byTool: { search: 1 } },
    });
    // Usage reported mid-step and usage returned with the output are both metered.
    expect(events.filter((e) => e.type === 'TOKEN_USAGE').map((e) => e.type === 'TOKEN_USAGE' && e.payload.source)).toEqual([
      'reported',
      'output',
    ]);
    expect(typesOf(events)).toContain('TOOL_RESULT');
  });

  it('a runaway agent is stopped by maxSteps: step maxSteps + 1 never starts', () => {
    const { report, events } = scenario(result, 'runaway');
    expect(report.status).toBe('FAILED');
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps' });
    expect(report.totalSteps).toBe(DEMO_POLICY.maxSteps);
    expect(events.filter((e) => e.type === 'STEP_START')).toHaveLength(DEMO_POLICY.maxSteps);
    const violation = events.find((e) => e.type === 'POLICY_VIOLATION');
    expect(violation?.payload).toMatchObject({ rule: 'max_steps', limit: DEMO_POLICY.maxSteps, attempted: DEMO_POLICY.maxSteps + 1 });
  });

  it('a tool-happy agent is stopped by maxToolCalls, and the refused call never runs its body', () => {
    const { report, events, facts } = scenario(result, 'tool-happy');
    expect(report.status).toBe('FAILED');
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tool_calls' });
    expect(facts).toEqual({ toolBodyRuns: 3, callsAttempted: 4, agentSawError: 'OAO_ERR_TOOL_DENIED' });
    expect(report.toolUsage).toEqual({ total: 3, byTool: { fetchPage: 3 } });
    expect(events.filter((e) => e.type === 'TOOL_CALL')).toHaveLength(3);
    const denied = events.find((e) => e.type === 'TOOL_DENIED');
    expect(denied?.payload).toMatchObject({ callId: 't4', tool: 'fetchPage', rule: 'max_tool_calls' });
    // The denial comes before the violation it causes, and nothing ran in between.
    const types = typesOf(events);
    expect(types.indexOf('POLICY_VIOLATION')).toBe(types.indexOf('TOOL_DENIED') + 1);
  });

  it('a hung agent that ignores its signal is cancelled at its timeout, and its signal aborts', () => {
    const { report, events, facts } = scenario(result, 'hung');
    expect(report.status).toBe('FAILED');
    expect(report.termination.reason).toBe('timeout');
    expect(report.termination.rule).toBeUndefined();
    expect(report.error?.code).toBe('OAO_ERR_TIMEOUT');
    expect(facts).toMatchObject({ signalAborted: true, abortReasonCode: 'OAO_ERR_TIMEOUT', timeoutMs: HUNG_TIMEOUT_MS });
    expect(events.find((e) => e.type === 'EXECUTION_START')?.payload).toMatchObject({ policy: { timeoutMs: HUNG_TIMEOUT_MS } });
    expect(typesOf(events)).toContain('EXECUTION_TIMEOUT');
    // A generous cancellation deadline: the report did not wait for the agent.
    expect(report.executionTimeMs).toBeGreaterThanOrEqual(HUNG_TIMEOUT_MS - 5);
    expect(report.executionTimeMs).toBeLessThan(HUNG_TIMEOUT_MS + 2_000);
  });

  it("each run's events run from EXECUTION_START to EXECUTION_COMPLETE with seq 0, 1, 2, … and match the schema", () => {
    for (const { name, report, events } of result.scenarios) {
      expect(events[0]?.type, name).toBe('EXECUTION_START');
      expect(events.at(-1)?.type, name).toBe('EXECUTION_COMPLETE');
      expect(events.map((e) => e.seq), name).toEqual(events.map((_, i) => i));
      expect(new Set(events.map((e) => e.executionId)), name).toEqual(new Set([report.executionId]));
      for (const event of events) oaoEventSchema.parse(JSON.parse(JSON.stringify(event)));
      executionReportSchema.parse(JSON.parse(JSON.stringify(report)));
    }
  });

  it('prints one JSON document with every report and event', () => {
    const document = JSON.parse(output) as { ok: boolean; scenarios: { name: string; report: unknown; events: unknown[] }[] };
    expect(document.ok).toBe(true);
    expect(document.scenarios.map((s) => s.name)).toEqual(result.scenarios.map((s) => s.name));
    for (const [i, s] of document.scenarios.entries()) {
      const expected = result.scenarios[i] as DemoScenarioResult;
      expect(s.report).toEqual(JSON.parse(JSON.stringify(expected.report)));
      expect(s.events).toHaveLength(expected.events.length);
    }
    expect(output).not.toContain('\u001b[');
  });
});

describe('runDemo() human output', () => {
  it('shows each scenario, its timeline, the summary table and the governance decisions, without colour when told', async () => {
    const { result, output, lines } = await captured({ color: false });
    expect(result.ok).toBe(true);
    expect(lines.every((line) => line.endsWith('\n'))).toBe(true);
    expect(output).not.toContain('\u001b[');
    expect(output).toContain('── 1. well-behaved');
    expect(output).toContain('── 4. hung');
    expect(output).toContain('✔ researcher  SUCCESS  completed');
    expect(output).toContain('✔ looper  FAILED  policy_violation (max_steps)');
    expect(output).toContain('why: Step 4 would exceed maxSteps (3)');
    expect(output).toContain('tool body ran 3 times; call 4 was refused before it ran');
    expect(output).toContain('the agent caught OAO_ERR_TOOL_DENIED');
    expect(output).toContain('ctx.signal aborted: true (reason OAO_ERR_TIMEOUT)');
    // Timeline lines: seq, time, type, state, facts.
    expect(output).toMatch(/^ +0 +\+0\.0 ms +EXECUTION_START +INIT +agent researcher/m);
    expect(output).toMatch(/TOOL_DENIED +EXECUTE +t4 fetchPage refused \(max_tool_calls\), body not run/);
    expect(output).toMatch(/EXECUTION_TIMEOUT +EXECUTE +deadline of 150 ms passed/);
    // The summary table.
    expect(output).toMatch(/scenario +agent +status +reason \/ rule +steps +tokens +tool calls +time/);
    expect(output).toMatch(/tool-happy +crawler +FAILED +policy_violation \(max_tool_calls\) +1 +0 +3 /);
    expect(output).toMatch(/hung +sleeper +FAILED +timeout +1 +0 +0 /);
    expect(output).toContain('tool-happy: TOOL_DENIED t4 fetchPage');
    expect(output).toContain('✔ All 4 scenarios ended as expected');
  });

  it('colours the text when asked', async () => {
    const { output } = await captured({ color: true });
    expect(output).toContain('\u001b[32mSUCCESS\u001b[39m');
  });
});

describe('the demo checks itself', () => {
  it('reports a scenario that ends differently from what it expects, and says how', async () => {
    const mistaken: DemoScenario = {
      name: 'mistaken',
      title: 'expects a success from an agent that throws',
      expected: 'SUCCESS',
      run: async (orch) => ({
        report: await orch.run({
          agent: () => {
            throw new Error('boom');
          },
          task: 'x',
        }),
        facts: {},
        notes: [],
      }),
      check: ({ report }) => (report.status === 'SUCCESS' ? [] : [`status was ${report.status}`]),
    };
    const lines: string[] = [];
    const result = await runDemo({ scenarios: [mistaken], color: false, write: (line) => lines.push(line) });
    expect(result.ok).toBe(false);
    expect(result.problems).toEqual(['mistaken: status was FAILED']);
    const output = lines.join('');
    expect(output).toContain('✖ agent  FAILED  error');
    expect(output).toContain('unexpected: status was FAILED');
    expect(output).toContain('✖ 1 expectation(s) not met:\n  - mistaken: status was FAILED');
  });
});

describe('parseDemoArgs', () => {
  it('reads --json, --no-color and --help', () => {
    expect(parseDemoArgs([])).toEqual({ kind: 'run', json: false, color: undefined });
    expect(parseDemoArgs(['--json', '--no-color'])).toEqual({ kind: 'run', json: true, color: false });
    expect(parseDemoArgs(['--json', '-h'])).toEqual({ kind: 'help' });
  });

  it('names an unknown flag or a stray argument', () => {
    expect(parseDemoArgs(['--jsn'])).toEqual({ kind: 'error', message: 'unknown option "--jsn"' });
    expect(parseDemoArgs(['extra'])).toMatchObject({ kind: 'error', message: expect.stringContaining('"extra"') });
  });
});

describe('oao demo', () => {
  it('the CLI command reuses runDemo and exits 0', async () => {
    const out: string[] = [];
    const code = await runCli(['demo', '--json'], { stdout: (t) => out.push(t), stderr: (t) => out.push(t), env: {}, isTTY: false, cwd: root });
    expect(code).toBe(0);
    expect((JSON.parse(out.join('')) as { ok: boolean }).ok).toBe(true);
  });
});

describe('npm run demo', () => {
  it('--json prints the JSON document and exits 0', async () => {
    const { code, stdout } = await spawn('npm', ['run', '--silent', 'demo', '--', '--json']);
    expect(code).toBe(0);
    const document = JSON.parse(stdout) as { ok: boolean; scenarios: { name: string; report: { termination: { reason: string } } }[] };
    expect(document.ok).toBe(true);
    expect(document.scenarios.map((s) => [s.name, s.report.termination.reason])).toEqual([
      ['well-behaved', 'completed'],
      ['runaway', 'policy_violation'],
      ['tool-happy', 'policy_violation'],
      ['hung', 'timeout'],
    ]);
  });

  it('prints text without colour when stdout is not a terminal, and exits 0', async () => {
    const { code, stdout } = await spawn(tsx, ['--conditions=oao-source', 'src/demo/main.ts']);
    expect(code).toBe(0);
    expect(stdout).toContain('✔ All 4 scenarios ended as expected');
    expect(stdout).not.toContain('\u001b[');
  });

  it('rejects an unknown flag with exit code 2 and the usage on stderr', async () => {
    const { code, stdout, stderr } = await spawn(tsx, ['--conditions=oao-source', 'src/demo/main.ts', '--colour']);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toContain('error: unknown option "--colour"');
    expect(stderr).toContain('Usage: npm run demo -- [options]');
    expect(stderr).toContain('--no-color');
  });

  it('--help prints the usage and exits 0', async () => {
    const { code, stdout } = await spawn(tsx, ['--conditions=oao-source', 'src/demo/main.ts', '--help']);
    expect(code).toBe(0);
    expect(stdout).toContain('Usage: npm run demo -- [options]');
  });
});
