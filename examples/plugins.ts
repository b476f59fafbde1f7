// Plugins: rules asked before every spend, like the policy's limits, plus tools and hooks.
// Run: npx tsx --conditions=oao-source examples/plugins.ts
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { definePlugin, Orchestrator, type AgentContext } from 'open-agent-orchestrator';
import { auditSink, loopDetection, piiGuard } from 'open-agent-orchestrator/plugins';

// A plugin of our own: no more than two steps on weekends' tasks (a pure function of the facts).
const weekendQuota = definePlugin({
  name: 'weekend-quota',
  version: '1.0.0',
  rules: {
    stepStart: ({ step }) => (step > 2 ? { message: 'weekend runs get two steps' } : null),
  },
});

const auditFile = join(mkdtempSync(join(tmpdir(), 'oao-plugins-')), 'audit.jsonl');
const orch = new Orchestrator({
  plugins: [piiGuard(), loopDetection({ maxRepeats: 2 }), auditSink({ path: auditFile }), weekendQuota],
});

const tools = { search: (args: { q: string }) => `results for ${args.q}` };

// 1. A search for an email address never reaches the tool.
const leaky = {
  name: 'leaky',
  async invoke(_task: string, ctx: AgentContext) {
    await ctx.callTool('search', { q: 'quarterly report' });
    await ctx.callTool('search', { q: 'contact jane.doe@example.com' });
    return { output: 'unreachable' };
  },
};
const pii = await orch.run({ agent: leaky, task: 'find the report', tools });
console.log(`leaky: ${pii.status}, ${pii.termination.rule}: ${pii.termination.message}`);

// 2. The same search over and over is stopped at the third.
const stuck = {
  name: 'stuck',
  async invoke(_task: string, ctx: AgentContext) {
    for (;;) await ctx.callTool('search', { q: 'same thing' });
  },
};
const loop = await orch.run({ agent: stuck, task: 'search', tools });
console.log(`stuck: ${loop.status}, ${loop.termination.rule} after ${loop.toolUsage.total} calls`);

// 3. A reviewer that never says done is stopped before its third step.
const restless = { name: 'restless', invoke: (task: string) => `draft of ${task}`, review: () => ({ done: false }) };
const quota = await orch.run({ agent: restless, task: 'essay', tools });
console.log(`restless: ${quota.status}, ${quota.termination.rule} after ${quota.totalSteps} steps`);

// Every decision went to the audit file, one JSON line each.
const decisions = readFileSync(auditFile, 'utf8').trim().split('\n').map((line) => (JSON.parse(line) as { decision: string }).decision);
console.log(`audit: ${decisions.length} decisions, ${decisions.filter((d) => d === 'tool_denied').length} tool calls denied`);
