import { definePlugin, Orchestrator, type AgentContext, type ExecutionReport } from 'open-agent-orchestrator';
import type { BenchCase, BenchRatio } from '../harness.js';

/**
 * What plugin rules cost on the tool-call path: one run making ten tool calls, with no plugin and
 * with ten plugins whose toolCall rule allows everything (so every call asks ten rules).
 */

const CALLS = 10;
const RULES = 10;

const agent = {
  name: 'caller',
  async invoke(_task: unknown, ctx: AgentContext) {
    for (let i = 0; i < CALLS; i += 1) await ctx.callTool('lookup', { i });
    return { output: 'done' };
  },
};
const tools = { lookup: () => 'found' };

function expectTenCalls(report: ExecutionReport): void {
  if (report.status !== 'SUCCESS' || report.toolUsage.total !== CALLS) throw new Error(`bench: a plugin run did not make ${CALLS} calls: ${JSON.stringify(report.termination)}`);
}

function pluginCase(id: string, label: string, description: string, orch: Orchestrator): BenchCase {
  return {
    kind: 'time',
    id,
    group: 'plugins',
    label,
    description,
    mode: 'async',
    setup: async () => {
      expectTenCalls(await orch.run({ agent, task: 't', tools }));
      return () => orch.run({ agent, task: 't', tools });
    },
  };
}

const allowAll = Array.from({ length: RULES }, (_, i) => definePlugin({ name: `allow-${i}`, version: '1', rules: { toolCall: () => null } }));

export const pluginCases: readonly BenchCase[] = [
  pluginCase('plugins.none', `${CALLS} tool calls, no plugin`, `A run whose one step makes ${CALLS} tool calls, on new Orchestrator().`, new Orchestrator({ policy: { maxToolCalls: CALLS } })),
  pluginCase(
    'plugins.ten',
    `${CALLS} tool calls, ${RULES} plugin rules each`,
    `The same run with ${RULES} plugins whose toolCall rule allows every call: ${RULES * CALLS} rule calls per run.`,
    new Orchestrator({ policy: { maxToolCalls: CALLS }, plugins: allowAll }),
  ),
];

export const pluginRatios: readonly BenchRatio[] = [
  { id: 'plugins ten/none', label: `${RULES} plugin rules per tool call / none`, numerator: 'plugins.ten', denominator: 'plugins.none' },
];
