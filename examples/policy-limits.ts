// Policy limits: per-run narrowing, tool allow and deny lists, and the typed error of invalid options.
// Run: npx tsx --conditions=oao-source examples/policy-limits.ts
import { OaoError, Orchestrator, StrictPolicy, type AgentContext, type PolicyOptions } from 'open-agent-orchestrator';

const orch = new Orchestrator({ policy: new StrictPolicy({ maxSteps: 5, maxToolCalls: 4, tools: { deny: ['shell'] } }) });

// 1. A run may narrow the orchestrator's policy, never widen it.
const looper = {
  name: 'looper',
  invoke: (_task: string, ctx: AgentContext) => ({ output: `step ${ctx.step}` }),
  review: () => ({ done: false }), // never satisfied: only maxSteps stops it
};
const narrowed = await orch.run({ agent: looper, task: 'loop', policy: { maxSteps: 2 } });
console.log(`narrowed to maxSteps 2: ${narrowed.totalSteps} steps, ${narrowed.termination.reason} (${narrowed.termination.rule})`);
const widened = await orch.run({ agent: looper, task: 'loop', policy: { maxSteps: 50 } });
console.log(`asked for maxSteps 50: ${widened.totalSteps} steps, capped by the orchestrator's 5`);

// 2. Tool allow and deny lists: a refused call never runs its body.
const bodies: string[] = [];
const tools = {
  search: ({ q }: { q: string }) => (bodies.push('search'), `results for ${q}`),
  browse: ({ q }: { q: string }) => (bodies.push('browse'), `page about ${q}`),
  shell: ({ q }: { q: string }) => (bodies.push('shell'), `ran ${q}`),
};
const useTool = (tool: string) => ({
  name: `uses-${tool}`,
  invoke: async (task: string, ctx: AgentContext) => ({ output: String(await ctx.callTool(tool, { q: task })) }),
});
for (const [tool, policy] of [
  ['search', { tools: { allow: ['search'] } }],
  ['browse', { tools: { allow: ['search'] } }],
  ['shell', undefined],
] as const) {
  const report = await orch.run({ agent: useTool(tool), task: 'governance', tools, ...(policy ? { policy } : {}) });
  const why = report.termination.rule ?? report.termination.reason;
  console.log(`${tool}: ${report.status} ${why}${report.status === 'SUCCESS' ? ` -> ${JSON.stringify(report.finalOutput)}` : ''}`);
}
console.log(`tool bodies that ran: ${bodies.join(', ')}`);

// 3. Invalid options are a typed error (OAO_ERR_INVALID_POLICY) naming the field, before anything runs.
try {
  new StrictPolicy({ maxSteps: 0 });
} catch (error) {
  if (OaoError.isInstance(error)) console.log(`new StrictPolicy({ maxSteps: 0 }): ${error.code} (HTTP ${error.status}): ${error.message}`);
}
const fromConfigFile = JSON.parse('{ "maxStep": 3 }') as PolicyOptions; // a typo in untrusted input
try {
  await orch.run({ agent: looper, task: 'loop', policy: fromConfigFile });
} catch (error) {
  if (OaoError.isInstance(error)) console.log(`run with policy { maxStep: 3 }: ${error.code}: ${error.message}`);
}
