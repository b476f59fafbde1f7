// LangGraph.js's prebuilt ReAct agent under OAO: each model turn of the graph is one governed step,
// so maxSteps bounds its loop; tokens and tool calls are metered live, whether the graph's tools
// are governTools stand-ins or plain LangChain tools.
// Run: npx tsx --conditions=oao-source examples/langgraph-react-agent.ts
//
// No API key needed: ScriptedChatModel stands in for a provider's chat model. With a real one,
// pass e.g. `new ChatOpenAI({ model: 'gpt-4o-mini' })` from @langchain/openai as `llm`.
import { tool } from '@langchain/core/tools';
import { createReactAgent } from '@langchain/langgraph/prebuilt';
import { Orchestrator } from 'open-agent-orchestrator';
import { fromGraph, governTools } from 'open-agent-orchestrator/langgraph';
import { z } from 'zod';
import { ScriptedChatModel } from './support/scriptedChatModel.js';

const weather = tool(async ({ city }) => `${city}: 18°C, light rain`, {
  name: 'weather',
  description: 'Current weather for a city',
  schema: z.object({ city: z.string() }),
});

// Governed stand-ins for the graph: each call asks the run's policy first. `weather` is unchanged.
const tools = governTools([weather]);
const orch = new Orchestrator({ policy: { maxSteps: 4, maxTokens: 5_000, maxToolCalls: 5 } });
orch.on('MODEL_CALL', (event) => console.log(`  step ${event.payload.step}: model call`));
orch.on('TOOL_CALL', (event) => console.log(`  step ${event.payload.step}: ${event.payload.tool}(${JSON.stringify(event.payload.args)})`));

// 1. A graph that calls a tool, then answers: two model turns, two steps.
const forecaster = createReactAgent({
  llm: new ScriptedChatModel([
    { toolCalls: [{ name: 'weather', args: { city: 'Lisbon' } }], tokens: [95, 14] },
    { content: 'It is 18°C with light rain in Lisbon: take an umbrella.', tokens: [140, 16] },
  ]),
  tools,
});
const agent = fromGraph(forecaster, { name: 'forecaster', tools });
const report = await orch.run({ agent, tools: agent.tools, task: 'Do I need an umbrella in Lisbon?' });
console.log(
  `forecaster: ${report.status}, ${report.totalSteps} steps, ${report.tokenUsage.total} tokens, tools ${JSON.stringify(report.toolUsage.byTool)}`,
);
console.log('answer:', report.finalOutput);

// 2. A graph whose model never stops calling tools: maxSteps ends it before a fourth model turn.
// Built with the plain tool this time: OAO's callback handler governs each call as it starts
// (checked by the policy, counted, recorded), so no wrapping is needed.
const restless = createReactAgent({
  llm: new ScriptedChatModel([{ toolCalls: [{ name: 'weather', args: { city: 'Porto' } }], tokens: [60, 10] }]),
  tools: [weather],
});
const looping = fromGraph(restless, { name: 'restless' });
const stopped = await orch.run({ agent: looping, task: 'Watch the weather', policy: { maxSteps: 3 } });
console.log(`restless: ${stopped.status}, ${stopped.termination.reason} (${stopped.termination.rule}) after ${stopped.totalSteps} steps`);
