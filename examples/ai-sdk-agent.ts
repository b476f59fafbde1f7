// A Vercel AI SDK agent under OAO: generateText settings or a ToolLoopAgent, each model call one
// governed step (metered and gated through wrapLanguageModel middleware), each tool call checked
// by the run's policy before its execute runs.
// Run: npx tsx --conditions=oao-source examples/ai-sdk-agent.ts
//
// No API key needed: a scripted MockLanguageModelV3 stands in for a provider's model. With a real
// one, pass e.g. `openai('gpt-4o-mini')` from @ai-sdk/openai as `model`.
import { stepCountIs, tool, ToolLoopAgent } from 'ai';
import { Orchestrator } from 'open-agent-orchestrator';
import { fromAiSdk } from 'open-agent-orchestrator/ai-sdk';
import { z } from 'zod';
import { scriptedAiSdkModel } from './support/scriptedAiSdkModel.js';

const weather = tool({
  description: 'Current weather for a city',
  inputSchema: z.object({ city: z.string() }),
  execute: async ({ city }) => `${city}: 18°C, light rain`,
});

const orch = new Orchestrator({ policy: { maxSteps: 4, maxTokens: 5_000, maxToolCalls: 5 } });
orch.on('MODEL_CALL', (event) => console.log(`  step ${event.payload.step}: model call`));
orch.on('TOOL_CALL', (event) => console.log(`  step ${event.payload.step}: ${event.payload.tool}(${JSON.stringify(event.payload.args)})`));

// 1. generateText settings: a tool call, then an answer. Two model calls, two steps.
const model = scriptedAiSdkModel([
  { toolCalls: [{ name: 'weather', args: { city: 'Lisbon' } }], tokens: [95, 14] },
  { text: 'It is 18°C with light rain in Lisbon: take an umbrella.', tokens: [140, 16] },
]);
const forecaster = fromAiSdk({ model, tools: { weather }, system: 'Answer in one line.', stopWhen: stepCountIs(10) }, { name: 'forecaster' });
const report = await orch.run({ agent: forecaster, task: 'Do I need an umbrella in Lisbon?' });
console.log(`forecaster: ${report.status}, ${report.totalSteps} steps, ${report.tokenUsage.total} tokens, tools ${JSON.stringify(report.toolUsage.byTool)}`);
console.log('answer:', report.finalOutput);

// 2. A ToolLoopAgent whose model never stops calling tools, streamed: maxSteps ends it.
const restless = new ToolLoopAgent({
  id: 'restless',
  model: scriptedAiSdkModel([{ toolCalls: [{ name: 'weather', args: { city: 'Porto' } }], tokens: [60, 10] }]),
  tools: { weather },
  stopWhen: stepCountIs(50),
});
const stopped = await orch.run({ agent: fromAiSdk(restless, { stream: true }), task: 'Watch the weather', policy: { maxSteps: 3 } });
console.log(`restless: ${stopped.status}, ${stopped.termination.reason} (${stopped.termination.rule}) after ${stopped.totalSteps} steps`);
