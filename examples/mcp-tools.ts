// The tools of an MCP server as governed OAO tools: names, descriptions and schemas kept, every
// call checked by the run's policy before it reaches the server, arguments checked by the tool's
// input schema, the run's signal reaching the server as a cancellation.
// Run: npx tsx --conditions=oao-source examples/mcp-tools.ts
//
// The server runs in this process (an in-memory transport); a real one is a child process
// (StdioClientTransport) or a URL (StreamableHTTPClientTransport): mcpTools works the same.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { Orchestrator, type AgentContext } from 'open-agent-orchestrator';
import { mcpTools } from 'open-agent-orchestrator/mcp';
import { z } from 'zod';

// 1. An MCP server with two tools.
const server = new McpServer({ name: 'notes', version: '1.0.0' });
server.registerTool('search_notes', { description: 'Searches the notes', inputSchema: { query: z.string().min(1) } }, ({ query }) => ({
  content: [{ type: 'text', text: `2 notes mention ${query}` }],
}));
server.registerTool('delete_notes', { description: 'Deletes every note', inputSchema: {} }, () => ({ content: [{ type: 'text', text: 'deleted' }] }));
const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
await server.connect(serverSide);
const client = new Client({ name: 'oao-example', version: '1.0.0' });
await client.connect(clientSide);

// 2. Its tools, governed. Each entry keeps what the server said about it.
const tools = await mcpTools(client, { toolTimeoutMs: 10_000 });
for (const [name, tool] of Object.entries(tools)) console.log(`tool ${name}: ${tool.description} ${JSON.stringify(tool.inputSchema.required ?? [])}`);

// 3. An agent that uses them (any agent: a LangGraph graph, an AI SDK loop, your own code).
const researcher = {
  name: 'researcher',
  async invoke(topic: string, ctx: AgentContext) {
    const found = await ctx.callTool('search_notes', { query: topic });
    const invalid = await ctx.callTool('search_notes', { query: '' }).catch((error: { code: string }) => error.code);
    return `${String(found)} (an empty query: ${String(invalid)})`;
  },
};
const orch = new Orchestrator({ policy: { maxToolCalls: 3, tools: { deny: ['delete_notes'] } } });
const report = await orch.run({ agent: researcher, tools, task: 'governance' });
console.log(`researcher: ${report.status}, tools ${JSON.stringify(report.toolUsage.byTool)}: ${report.finalOutput as string}`);

// 4. A denied tool never reaches the server.
const vandal = { name: 'vandal', invoke: (_task: unknown, ctx: AgentContext) => ctx.callTool('delete_notes', {}) };
const denied = await orch.run({ agent: vandal, tools, task: 'clean up' });
console.log(`vandal: ${denied.status}, ${denied.termination.reason} (${denied.termination.rule})`);

await client.close();
