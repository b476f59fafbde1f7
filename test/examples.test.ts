import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const execFileAsync = promisify(execFile);

/**
 * An example that loops (say a runaway agent whose limit broke) is killed at this point, so the
 * test fails with the child gone instead of leaving it spinning. One node process with tsx as an
 * import hook (the tsx CLI would put a second process in between), killed with SIGKILL (a busy
 * synchronous loop never runs a SIGTERM handler). Below the test timeout, so the kill is reported.
 */
const EXAMPLE_KILL_AFTER_MS = 15_000;
const EXAMPLE_TEST_TIMEOUT_MS = 25_000;

const examples = readdirSync(new URL('../examples/', import.meta.url))
  .filter((file) => /\.(m|c)?[jt]s$/.test(file))
  .sort();

/**
 * What each example must print: text it must contain, or a pattern. An example without an entry
 * here is still run, and must exit 0 and print something; give it an entry to say what.
 */
const expectedOutput: Record<string, readonly (string | RegExp)[]> = {
  'quick-start.ts': [
    /^SUCCESS Processed: Explain AI orchestration$/m,
    'runSync: SUCCESS completed Processed: Explain AI orchestration',
    'states: INIT -> PLAN -> EXECUTE -> REVIEW -> TERMINATE',
  ],
  'async-agent.ts': [
    /^started run [0-9a-f-]{36}$/m,
    /event #0 EXECUTION_START \(INIT\)\n(.|\n)*event #\d+ TOOL_CALL \(EXECUTE\)(.|\n)*event #\d+ EXECUTION_COMPLETE \(TERMINATE\)\n {2}events\$ completed/,
    'status: SUCCESS (completed)',
    'steps: 2, tokens: 200, tool calls: {"exchangeRate":1}',
    `output: "Answer: 100 EUR = 108.00 USD at today's rate."`,
    '"executionHash": "',
  ],
  'hooks-and-cancel.ts': [
    'hook: TOOL_CALL lookup({"q":"signals"})',
    'hook: EXECUTION_CANCELLED "the user closed the tab"',
    'agent: my signal aborted (OAO_ERR_CANCELLED)',
    'onHookError: a STATE_ENTER hook threw "this hook is broken"',
    'signal: FAILED cancelled: the user closed the tab',
    'hook: EXECUTION_CANCELLED "no longer needed"',
    'handle.cancel(): FAILED cancelled: no longer needed',
    'tool calls before the cancel: 1; last event: EXECUTION_COMPLETE',
  ],
  'policy-limits.ts': [
    'narrowed to maxSteps 2: 2 steps, policy_violation (max_steps)',
    "asked for maxSteps 50: 5 steps, capped by the orchestrator's 5",
    'search: SUCCESS completed -> "results for governance"',
    'browse: FAILED tool_not_allowed',
    'shell: FAILED tool_denied',
    /^tool bodies that ran: search$/m,
    /new StrictPolicy\(\{ maxSteps: 0 \}\): OAO_ERR_INVALID_POLICY \(HTTP 400\): Invalid policy option "maxSteps"/,
    /run with policy \{ maxStep: 3 \}: OAO_ERR_INVALID_POLICY: .*maxStep/,
  ],
  'inspect-runs.ts': [
    'inspector connected: true',
    'run: SUCCESS in 1 step(s)',
    'batch: SUCCESS, SUCCESS',
    'run 1: INIT -> EXECUTE.running.working -> TERMINATE; ledger: 1 step, 200 tokens',
    'run 2: INIT -> EXECUTE.running.working -> TERMINATE; ledger: 1 step, 200 tokens; child of 0.supervisor.supervising',
    /messages received: \d+ \(actor, event and snapshot\)/,
  ],
  'workflow.ts': [
    'node facts: SUCCESS',
    'workflow article: SUCCESS, 5 of 5 nodes, 1350 tokens',
    'facts: "verified: agents need budgets"; "verified: tools need allow-lists"',
    'notify: "sent \\"An article on AI governance.\\""',
    'tight budget: FAILED, write policy_violation, notify SKIPPED (budget)',
    'race won by fast: "fast answer"; cancelled: slow',
  ],
  'plugins.ts': [
    'leaky: FAILED, plugin:pii-guard/toolCall: The arguments of search contain personal data (email)',
    'stuck: FAILED, plugin:loop-detection/toolCall after 2 calls',
    'restless: FAILED, plugin:weekend-quota/stepStart after 2 steps',
    'audit: 14 decisions, 2 tool calls denied',
  ],
  'multi-agent.ts': [
    'finished researcher: SUCCESS',
    'finished critic: SUCCESS',
    'researcher SUCCESS 320 "Research notes on \\"Discuss AI governance\\""',
    'critic SUCCESS 210',
    'jobs finished: 2',
  ],
  'langchain-tool-agent.ts': [
    'chain: SUCCESS, 25 tokens: Agent governance bounds what an agent may spend and do.',
    'tool call: search({"q":"what is OAO"})',
    'researcher: SUCCESS, 2 steps, 340 tokens, tools {"search":1}',
    'answer: OAO is a control plane that governs AI agents.',
    'tool denied: shell (tool_denied)',
    'rogue: FAILED, policy_violation (tool_denied), shell ran 0 times',
  ],
  'langgraph-react-agent.ts': [
    'forecaster: SUCCESS, 2 steps, 265 tokens, tools {"weather":1}',
    'answer: It is 18°C with light rain in Lisbon: take an umbrella.',
    'restless: FAILED, policy_violation (max_steps) after 3 steps',
    // exactly five model calls: one per step of each run
    /^(?:(?!model call)[\s\S])*(?:model call(?:(?!model call)[\s\S])*){5}$/,
  ],
  'mcp-tools.ts': [
    'tool search_notes: Searches the notes ["query"]',
    'researcher: SUCCESS, tools {"search_notes":2}: 2 notes mention governance (an empty query: OAO_ERR_INVALID_TOOL_ARGS)',
    'vandal: FAILED, policy_violation (tool_denied)',
  ],
  'ai-sdk-agent.ts': [
    'forecaster: SUCCESS, 2 steps, 265 tokens, tools {"weather":1}',
    'answer: It is 18°C with light rain in Lisbon: take an umbrella.',
    'restless: FAILED, policy_violation (max_steps) after 3 steps',
    // exactly five model calls: one per step of each run
    /^(?:(?!model call)[\s\S])*(?:model call(?:(?!model call)[\s\S])*){5}$/,
  ],
  'openai-agents-handoff.ts': [
    '  step 1: model call (Route the customer to the right agent.)\n  step 2: model call (You resolve billing questions.)\n  step 2: lookup_invoice({"invoice":"INV-7"})',
    'triage: SUCCESS, 3 steps, 396 tokens, tools {"lookup_invoice":1}',
    'answer: INV-7 was charged twice: the second charge of 49 EUR will be refunded.',
    'short: FAILED, policy_violation (max_steps) after 1 step',
  ],
  'llamaindex-agent.ts': [
    '  step 1: model call (Route the customer to the right agent.)\n  step 2: model call (You resolve billing questions.)\n  step 2: lookup_invoice({"invoice":"INV-7"})\n  step 3: model call',
    'triage: SUCCESS, 3 steps, 396 tokens, tools {"lookup_invoice":1}',
    'answer: INV-7 was charged twice: the second charge of 49 EUR will be refunded.',
    'short: FAILED, policy_violation (max_steps) after 1 step',
    'denied: FAILED, policy_violation (tool_denied)',
  ],
  'remote-agent.ts': [
    '  turn 1: "Which region?", charged 46 tokens\n  turn 2: "Q3 revenue in EMEA grew 12%.", charged 69 tokens',
    'analyst: SUCCESS, 2 steps, 115 tokens',
    'answer: Q3 revenue in EMEA grew 12%.',
    'cancelled: cancelled; remote task cancelled: true',
    'turn 1: failed (OAO_ERR_REMOTE_TIMEOUT), charged 0 tokens',
    'timeout: FAILED OAO_ERR_REMOTE_TIMEOUT',
  ],
  'statechart-agent.ts': [
    'researcher: SUCCESS, 405 tokens, 2 tool calls (2 ran)',
    'output: How do XState actors compose?: see stately.ai/docs, github.com/statelyai/xstate',
    'strict: FAILED, policy_violation (max_tool_calls)',
  ],
  // A module of agents for the `oao` CLI (test/cli.test.ts runs them): loading it prints nothing.
  'agents.ts': [/^$/],
  'distributed.ts': [
    'SUCCESS: summary of "the design doc"',
    'SUCCESS: summary of "the release notes"',
    'SUCCESS: summary of "the incident report"',
    'watcher: FAILED cancelled (seen enough)',
  ],
  'embed-in-fastify.ts': [
    'your route: world',
    'POST /oao/run: SUCCESS echo echo: hi',
    'POST /oao/runs: 202 /oao/runs/<id> maxSteps 3',
    'CORS: https://console.example.com',
    'OpenAPI servers: /oao',
    'dashboard: 200',
  ],
};

describe('examples/', () => {
  it('has the documented examples', () => {
    expect(examples).toEqual(expect.arrayContaining(['quick-start.ts', 'async-agent.ts', 'hooks-and-cancel.ts', 'policy-limits.ts']));
  });

  it.each(examples)('%s runs, exits 0 and prints what it is about', async (file) => {
    // execFile rejects (failing the test with the child's stderr) on a non-zero exit code.
    const { stdout, stderr } = await execFileAsync(process.execPath, ['--import', 'tsx', '--conditions=oao-source', `examples/${file}`], {
      cwd: root,
      timeout: EXAMPLE_KILL_AFTER_MS,
      killSignal: 'SIGKILL',
    });
    const expected = expectedOutput[file];
    if (expected === undefined) {
      expect(stdout.trim(), `examples/${file} printed nothing`).not.toBe('');
      return;
    }
    expect(stderr).toBe('');
    for (const pattern of expected) {
      if (typeof pattern === 'string') expect(stdout).toContain(pattern);
      else expect(stdout).toMatch(pattern);
    }
  }, EXAMPLE_TEST_TIMEOUT_MS);
});
