/**
 * `open-agent-orchestrator/mcp`: the tools of an MCP server as governed OAO tools.
 * Requires `@modelcontextprotocol/sdk` (an optional peer dependency of this subpath). See docs/adapters.md.
 */
export { mcpTools } from './mcpTools.js';
export type { McpClientLike, McpTool, McpToolInfo, McpToolSet, McpToolsOptions, McpResultMode } from './mcpTools.js';
export type { ToolTimeouts } from '../shared/toolTimeouts.js';
