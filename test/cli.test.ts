import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { runCli } from '../src/cli/program.js';
import { ExitCode } from '../src/cli/exitCodes.js';
import { captureIo as io, repositoryRoot as root } from './cliIo.js';

const execFileAsync = promisify(execFile);

describe('oao run', () => {
  it('runs one agent of a module and prints a readable report', async () => {
    const t = io();
    const code = await runCli(['run', 'examples/agents.ts', '--agent', 'echo', '--task', 'hello'], t.io);
    expect(code).toBe(ExitCode.OK);
    expect(t.out()).toContain('✔ echo  SUCCESS  completed');
    expect(t.out()).toContain('output: echo: hello');
    expect(t.out()).toContain('INIT → PLAN → EXECUTE → REVIEW → TERMINATE');
    expect(t.out()).not.toContain('\u001b[');
  });

  it('prints the report as JSON with --json', async () => {
    const t = io();
    const code = await runCli(['run', 'examples/agents.ts', '-a', 'researcher', '-t', 'governance', '--json'], t.io);
    expect(code).toBe(ExitCode.OK);
    const report = JSON.parse(t.out());
    expect(report).toMatchObject({ status: 'SUCCESS', totalSteps: 2, toolUsage: { total: 2, byTool: { search: 2 } } });
  });

  it('exits 1 when the run fails, and says why', async () => {
    const t = io();
    const code = await runCli(['run', 'examples/agents.ts', '--agent', 'runaway', '--task', 'x', '--max-steps', '2'], t.io);
    expect(code).toBe(ExitCode.RUN_FAILED);
    expect(t.out()).toContain('FAILED  policy_violation (max_steps)');
    expect(t.out()).toContain('Step 3 would exceed maxSteps (2)');
  });

  it('flags can only narrow the module policy', async () => {
    const t = io();
    await runCli(['run', 'examples/agents.ts', '--agent', 'runaway', '--task', 'x', '--max-steps', '99', '--json'], t.io);
    expect(JSON.parse(t.out()).totalSteps).toBe(4);
  });

  it('says on stderr when a flag would widen the module policy, and not when it narrows', async () => {
    const t = io();
    await runCli(['run', 'examples/agents.ts', '--agent', 'echo', '--task', 'x', '--max-steps', '99', '--timeout-ms', '60000', '--max-tokens', '10'], t.io);
    expect(t.err()).toContain("notice: --max-steps 99 is above the module's maxSteps (4); flags can only narrow the policy, so maxSteps stays 4.");
    expect(t.err()).toContain("notice: --timeout-ms 60000 is above the module's timeoutMs (10000)");
    expect(t.err()).not.toContain('--max-tokens');
    expect(t.out()).toContain('✔ echo  SUCCESS');

    const narrowing = io();
    await runCli(['run', 'examples/agents.ts', '--agent', 'echo', '--task', 'x', '--max-steps', '4', '--max-tokens', '10'], narrowing.io);
    expect(narrowing.err()).toBe('');
  });

  it('with --json the notice is a JSON line on stderr and stdout stays one JSON document', async () => {
    const t = io();
    expect(await runCli(['run', 'examples/agents.ts', '--agent', 'runaway', '--task', 'x', '--max-steps', '99', '--json'], t.io)).toBe(ExitCode.RUN_FAILED);
    expect(JSON.parse(t.out())).toMatchObject({ totalSteps: 4 });
    const lines = t.err().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] as string)).toEqual({
      notice: {
        message: "--max-steps 99 is above the module's maxSteps (4); flags can only narrow the policy, so maxSteps stays 4.",
        flag: '--max-steps',
        requested: 99,
        applied: 4,
      },
    });
  });

  it('runs several agents in parallel with a summary table', async () => {
    const t = io();
    const code = await runCli(['run', 'examples/agents.ts', '--agent', 'echo', '--agent', 'runaway', '--task', 'x'], t.io);
    expect(code).toBe(ExitCode.RUN_FAILED);
    expect(t.out()).toMatch(/agent\s+status\s+reason\s+steps\s+tokens\s+tools\s+time/);
    expect(t.out()).toMatch(/echo\s+SUCCESS\s+completed/);
    expect(t.out()).toMatch(/runaway\s+FAILED\s+policy_violation \(max_steps\)/);
  });

  it('shows a live progress line on a terminal for multi-agent runs, with colours', async () => {
    const t = io({ isTTY: true });
    await runCli(['run', 'examples/agents.ts', '--all', '--task', 'x', '--timeout-ms', '100'], t.io);
    expect(t.err()).toContain('4/4 finished');
    expect(t.out()).toContain('\u001b[32m');
  });

  it.each([
    [['run', 'examples/agents.ts', '--task', 'x'], /several agents \(echo, researcher, runaway, slow\)/],
    [['run', 'examples/agents.ts', '--agent', 'nobody', '--task', 'x'], /No agent "nobody"/],
    [['run', 'examples/agents.ts', '--agent', 'echo'], /required option '-t, --task <text>'/],
    [['run', 'examples/agents.ts', '--agent', 'echo', '--task', 'x', '--max-steps', '0'], /--max-steps must be a whole number from 1 up, got "0"/],
    [['run', 'examples/agents.ts', '--agent', 'echo', '--task', 'x', '--max-tokens', 'lots'], /--max-tokens must be a whole number/],
    [['run', 'does/not/exist.ts', '--task', 'x'], /No module at/],
    [['run', 'package.json', '--task', 'x'], /is not an agent|exports no agents|Could not load/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['run', 'examples/agents.ts', '--task', 'x', '--bogus'], /unknown option '--bogus'/],
  ])('bad usage %j exits 2 with a clear message', async (argv, message) => {
    const t = io();
    const code = await runCli(argv, t.io);
    expect(code).toBe(ExitCode.USAGE);
    expect(t.err()).toMatch(message);
  });

  it('prints help and version', async () => {
    const help = io();
    expect(await runCli(['--help'], help.io)).toBe(ExitCode.OK);
    expect(help.out()).toContain('Usage: oao');
    expect(help.out()).toMatch(/demo\s/);
    const version = io();
    expect(await runCli(['--version'], version.io)).toBe(ExitCode.OK);
    expect(version.out().trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

describe('oao runs', () => {
  it('exits 3 when the server cannot be reached', async () => {
    const t = io();
    const code = await runCli(['runs', '--server', 'http://127.0.0.1:9'], t.io);
    expect(code).toBe(ExitCode.UNREACHABLE);
    expect(t.err()).toMatch(/Could not reach the OAO server at http:\/\/127\.0\.0\.1:9/);
  });

  it('rejects a malformed server URL as bad usage', async () => {
    const t = io();
    expect(await runCli(['runs', '--server', 'not a url'], t.io)).toBe(ExitCode.USAGE);
    expect(t.err()).toMatch(/server must be an http\(s\) URL/);
  });
});

describe('the oao binary', () => {
  it('runs as a process with the documented exit codes', async () => {
    const bin = ['--conditions=oao-source', '--import', 'tsx', 'src/cli/oao.ts'];
    const ok = await execFileAsync(process.execPath, [...bin, 'run', 'examples/agents.ts', '-a', 'echo', '-t', 'hi'], { cwd: root });
    expect(ok.stdout).toContain('echo: hi');
    const failed = await execFileAsync(process.execPath, [...bin, 'run', 'examples/agents.ts', '-a', 'runaway', '-t', 'hi'], { cwd: root }).catch(
      (e: { code: number; stdout: string }) => e,
    );
    expect((failed as { code: number }).code).toBe(1);
  });
});
