// A LlamaIndex.TS multi-agent workflow under OAO: a triage agent hands off to a billing agent with
// an invoice tool. Every LLM call of either agent is a governed step (reserved against the token
// budget before it is sent, metered from its usage), so a handoff counts as a step; every tool call
// is checked by the run's policy before its body runs.
// Run: npx tsx --conditions=oao-source examples/llamaindex-agent.ts
//
// No API key needed: ScriptedLlamaIndexLLM stands in for a provider's LLM. With a real one, pass
// e.g. `new OpenAI({ model: 'gpt-4.1-mini' })` from @llamaindex/openai as `llm`.
import { tool } from '@llamaindex/core/tools';
import { agent, multiAgent } from '@llamaindex/workflow';
import { Orchestrator } from 'open-agent-orchestrator';
import { callSignal, fromLlamaIndex } from 'open-agent-orchestrator/llamaindex';
import { z } from 'zod';
import { ScriptedLlamaIndexLLM } from './support/scriptedLlamaIndexLLM.js';

const lookupInvoice = tool({
  name: 'lookup_invoice',
  description: 'Finds an invoice by number',
  parameters: z.object({ invoice: z.string() }),
  // callSignal() is the call's AbortSignal: pass it to fetch() and a cancelled run stops the request.
  execute: async ({ invoice }) => (callSignal()?.aborted === true ? 'stopped' : `${invoice}: charged twice on 2 May, 49 EUR each`),
});

function supportDesk() {
  const billing = agent({
    name: 'billing',
    description: 'Resolves billing questions',
    systemPrompt: 'You resolve billing questions.',
    tools: [lookupInvoice],
    llm: new ScriptedLlamaIndexLLM([
      { calls: [{ name: 'lookup_invoice', args: { invoice: 'INV-7' } }], tokens: [120, 12] },
      { text: 'INV-7 was charged twice: the second charge of 49 EUR will be refunded.', tokens: [160, 18] },
    ]),
  });
  const triage = agent({
    name: 'triage',
    description: 'Routes the customer',
    systemPrompt: 'Route the customer to the right agent.',
    canHandoffTo: ['billing'],
    llm: new ScriptedLlamaIndexLLM([{ calls: [{ name: 'handOff', args: { toAgent: 'billing', reason: 'a billing question' } }], tokens: [80, 6] }]),
  });
  return multiAgent({ agents: [triage, billing], rootAgent: triage });
}

const orch = new Orchestrator({ policy: { maxSteps: 5, maxTokens: 5_000, maxToolCalls: 3 } });
orch.on('MODEL_CALL', (event) => {
  const system = (event.payload.input as { role: string; content: string }[]).find((message) => message.role === 'system');
  console.log(`  step ${event.payload.step}: model call (${system?.content ?? ''})`);
});
orch.on('TOOL_CALL', (event) => console.log(`  step ${event.payload.step}: ${event.payload.tool}(${JSON.stringify(event.payload.args)})`));

const report = await orch.run({ agent: fromLlamaIndex(supportDesk()), task: 'Why was I charged twice for INV-7?' });
console.log(`triage: ${report.status}, ${report.totalSteps} steps, ${report.tokenUsage.total} tokens, tools ${JSON.stringify(report.toolUsage.byTool)}`);
console.log('answer:', report.finalOutput);

// With room for one model call only: the handoff takes the first step, so the billing agent's LLM
// is never asked and the run ends at maxSteps.
const short = await orch.run({ agent: fromLlamaIndex(supportDesk()), task: 'Why was I charged twice for INV-7?', policy: { maxSteps: 1 } });
console.log(`short: ${short.status}, ${short.termination.reason} (${short.termination.rule}) after ${short.totalSteps} step`);

// A tool the policy denies never runs: the run ends with tool_denied.
const denied = await orch.run({ agent: fromLlamaIndex(supportDesk()), task: 'Why was I charged twice for INV-7?', policy: { tools: { deny: ['lookup_invoice'] } } });
console.log(`denied: ${denied.status}, ${denied.termination.reason} (${denied.termination.rule})`);
