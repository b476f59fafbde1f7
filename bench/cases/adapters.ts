import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { Agent, Runner } from '@openai/agents';
import { generateText } from 'ai';
import { Orchestrator, type AgentContext, type ExecutionReport } from 'open-agent-orchestrator';
import { fromAiSdk } from 'open-agent-orchestrator/ai-sdk';
import { mcpTools } from 'open-agent-orchestrator/mcp';
import { fromOpenAIAgent } from 'open-agent-orchestrator/openai-agents';
import { z } from 'zod';
import { scriptedAiSdkModel } from '../../examples/support/scriptedAiSdkModel.js';
import { ScriptedOpenAIModel } from '../../examples/support/scriptedOpenAIModel.js';
import type { BenchCase, BenchRatio } from '../harness.js';

/**
 * What governing costs for the MCP, AI SDK and OpenAI Agents adapters: the same work done raw,
 * then as an OAO run (the lifecycle, a governed model call or tool call, events with one
 * subscriber). The models are the frameworks' own mocks answering at once (the AI SDK's
 * MockLanguageModelV3, a scripted `Model` for OpenAI Agents) and the MCP server runs in process,
 * so the rows measure the frameworks and OAO, not a provider or a network.
 */

const ANSWER = 'Governed.';

function subscribedOrchestrator(): Orchestrator {
  const orch = new Orchestrator();
  orch.events$.subscribe(() => {});
  return orch;
}

function expectValue(value: unknown, expected: unknown, what: string): void {
  if (JSON.stringify(value) !== JSON.stringify(expected)) throw new Error(`bench: ${what} answered ${JSON.stringify(value)}`);
}

function expectSuccess(report: ExecutionReport, expected: unknown, what: string): void {
  if (report.status !== 'SUCCESS') throw new Error(`bench: ${what} ended ${JSON.stringify(report.termination)}`);
  expectValue(report.finalOutput, expected, what);
}

async function mcpClient(): Promise<Client> {
  const server = new McpServer({ name: 'bench', version: '1.0.0' });
  server.registerTool('search', { description: 'Searches', inputSchema: { q: z.string() } }, ({ q }) => ({ content: [{ type: 'text', text: `found ${q}` }] }));
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  const client = new Client({ name: 'bench', version: '1.0.0' });
  await client.connect(clientSide);
  return client;
}

function aiSdkModel() {
  return scriptedAiSdkModel([{ text: ANSWER, tokens: [12, 3] }]);
}

function openAIAgent(): Agent {
  return new Agent({ name: 'bench', instructions: 'Answer.', model: new ScriptedOpenAIModel([{ text: ANSWER, tokens: [12, 3] }]) });
}

export const adapterCases: readonly BenchCase[] = [
  {
    kind: 'time',
    id: 'adapters.trivial',
    group: 'adapters',
    label: 'reference: run() of a trivial agent',
    description: 'A governed run of an agent that returns a constant, in this group, so each adapter row reads as what it adds over it.',
    mode: 'async',
    setup: async () => {
      const orch = subscribedOrchestrator();
      const agent = { name: 'trivial', invoke: () => ANSWER };
      expectSuccess(await orch.run({ agent, task: 't' }), ANSWER, 'the trivial agent');
      return () => orch.run({ agent, task: 't' });
    },
  },
  {
    kind: 'time',
    id: 'mcp.raw',
    group: 'adapters',
    label: 'raw: client.callTool() (MCP, in process)',
    description: "One call of an in-process McpServer's tool through the SDK's Client.",
    mode: 'async',
    setup: async () => {
      const client = await mcpClient();
      const call = async () => {
        const result = await client.callTool({ name: 'search', arguments: { q: 'x' } });
        return (result.content as { text: string }[])[0]?.text;
      };
      expectValue(await call(), 'found x', 'the raw MCP call');
      return call;
    },
  },
  {
    kind: 'time',
    id: 'mcp.governed',
    group: 'adapters',
    label: 'governed: run() calling an mcpTools() tool',
    description: 'The same call from an OAO run: one step, the call checked by the policy, its arguments by the schema; one events$ subscriber.',
    mode: 'async',
    setup: async () => {
      const tools = await mcpTools(await mcpClient());
      const orch = subscribedOrchestrator();
      const agent = { name: 'mcp', invoke: (_task: unknown, ctx: AgentContext) => ctx.callTool('search', { q: 'x' }) };
      expectSuccess(await orch.run({ agent, tools, task: 't' }), 'found x', 'the governed MCP call');
      return () => orch.run({ agent, tools, task: 't' });
    },
  },
  {
    kind: 'time',
    id: 'aiSdk.raw',
    group: 'adapters',
    label: 'raw: generateText() (AI SDK)',
    description: 'generateText on MockLanguageModelV3 (one model call, no tools), called directly.',
    mode: 'async',
    setup: async () => {
      const model = aiSdkModel();
      const call = async () => (await generateText({ model, prompt: 'Why govern agents?' })).text;
      expectValue(await call(), ANSWER, 'the raw generateText');
      return call;
    },
  },
  {
    kind: 'time',
    id: 'aiSdk.governed',
    group: 'adapters',
    label: 'governed: run(fromAiSdk({ model }))',
    description: 'The same call as an OAO agent: its model call metered and gated by the middleware; one events$ subscriber.',
    mode: 'async',
    setup: async () => {
      const orch = subscribedOrchestrator();
      const agent = fromAiSdk({ model: aiSdkModel() });
      expectSuccess(await orch.run({ agent, task: 'Why govern agents?' }), ANSWER, 'the governed AI SDK agent');
      return () => orch.run({ agent, task: 'Why govern agents?' });
    },
  },
  {
    kind: 'time',
    id: 'openaiAgents.raw',
    group: 'adapters',
    label: 'raw: runner.run(agent) (OpenAI Agents)',
    description: 'An OpenAI Agents JS Agent on a scripted Model (one model call, no tools, tracing off), run directly.',
    mode: 'async',
    setup: async () => {
      const runner = new Runner({ tracingDisabled: true });
      const agent = openAIAgent();
      const call = async () => (await runner.run(agent, 'Why govern agents?')).finalOutput;
      expectValue(await call(), ANSWER, 'the raw OpenAI agent');
      return call;
    },
  },
  {
    kind: 'time',
    id: 'openaiAgents.governed',
    group: 'adapters',
    label: 'governed: run(fromOpenAIAgent(agent))',
    description: 'The same agent under OAO: a governed copy, its model call metered and gated; one events$ subscriber.',
    mode: 'async',
    setup: async () => {
      const orch = subscribedOrchestrator();
      const agent = fromOpenAIAgent(openAIAgent(), { runConfig: { tracingDisabled: true } });
      expectSuccess(await orch.run({ agent, task: 'Why govern agents?' }), ANSWER, 'the governed OpenAI agent');
      return () => orch.run({ agent, task: 'Why govern agents?' });
    },
  },
];

export const adapterRatios: readonly BenchRatio[] = [
  { id: 'mcpGoverned/trivial', label: 'governed MCP call / trivial run', numerator: 'mcp.governed', denominator: 'adapters.trivial' },
  { id: 'aiSdkGoverned/trivial', label: 'governed AI SDK agent / trivial run', numerator: 'aiSdk.governed', denominator: 'adapters.trivial' },
  { id: 'openaiAgentsGoverned/trivial', label: 'governed OpenAI agent / trivial run', numerator: 'openaiAgents.governed', denominator: 'adapters.trivial' },
  { id: 'mcpGoverned/raw', label: 'governed MCP call / raw MCP call', numerator: 'mcp.governed', denominator: 'mcp.raw' },
  { id: 'aiSdkGoverned/raw', label: 'governed AI SDK agent / raw generateText', numerator: 'aiSdk.governed', denominator: 'aiSdk.raw' },
  { id: 'openaiAgentsGoverned/raw', label: 'governed OpenAI agent / raw run', numerator: 'openaiAgents.governed', denominator: 'openaiAgents.raw' },
];
