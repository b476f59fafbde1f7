// An OpenAI Agents JS triage agent that hands off to a billing agent, under OAO: every model call
// of either agent is a governed step (so a handoff counts as a step), every function tool call is
// checked by the run's policy before its body runs.
// Run: npx tsx --conditions=oao-source examples/openai-agents-handoff.ts
//
// No API key needed: ScriptedOpenAIModel stands in for OpenAI's models. With real ones, give the
// agents model names ('gpt-4.1-mini') and leave out `model` objects.
import { Agent, tool } from '@openai/agents';
import { Orchestrator } from 'open-agent-orchestrator';
import { fromOpenAIAgent } from 'open-agent-orchestrator/openai-agents';
import { z } from 'zod';
import { ScriptedOpenAIModel } from './support/scriptedOpenAIModel.js';

const lookupInvoice = tool({
  name: 'lookup_invoice',
  description: 'Finds an invoice by number',
  parameters: z.object({ invoice: z.string() }),
  execute: async ({ invoice }) => `${invoice}: charged twice on 2 May, 49 EUR each`,
});

const billing = new Agent({
  name: 'billing',
  instructions: 'You resolve billing questions.',
  tools: [lookupInvoice],
  model: new ScriptedOpenAIModel([
    { calls: [{ name: 'lookup_invoice', args: { invoice: 'INV-7' } }], tokens: [120, 12] },
    { text: 'INV-7 was charged twice: the second charge of 49 EUR will be refunded.', tokens: [160, 18] },
  ]),
});
const triage = new Agent({
  name: 'triage',
  instructions: 'Route the customer to the right agent.',
  handoffs: [billing],
  model: new ScriptedOpenAIModel([{ calls: [{ name: 'transfer_to_billing' }], tokens: [80, 6] }]),
});

const orch = new Orchestrator({ policy: { maxSteps: 5, maxTokens: 5_000, maxToolCalls: 3 } });
orch.on('MODEL_CALL', (event) => console.log(`  step ${event.payload.step}: model call (${String((event.payload.input as { system?: string }).system)})`));
orch.on('TOOL_CALL', (event) => console.log(`  step ${event.payload.step}: ${event.payload.tool}(${JSON.stringify(event.payload.args)})`));

const agent = fromOpenAIAgent(triage, { runConfig: { tracingDisabled: true } });
const report = await orch.run({ agent, task: 'Why was I charged twice for INV-7?' });
console.log(`triage: ${report.status}, ${report.totalSteps} steps, ${report.tokenUsage.total} tokens, tools ${JSON.stringify(report.toolUsage.byTool)}`);
console.log('answer:', report.finalOutput);

// With room for one model call only: the handoff takes the first step, so the billing agent never
// gets a model call (its model is not contacted) and the run ends at maxSteps.
const short = await orch.run({ agent, task: 'Why was I charged twice for INV-7?', policy: { maxSteps: 1 } });
console.log(`short: ${short.status}, ${short.termination.reason} (${short.termination.rule}) after ${short.totalSteps} step`);
