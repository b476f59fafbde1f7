import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import type { ToolCallContext, ToolFunction } from '../../agent.js';
import { OaoError } from '../../errors.js';
import { toolTimer, type ToolTimeoutOptions } from '../shared/toolTimeouts.js';

/** A tool as an MCP server lists it (`tools/list`). */
export interface McpToolInfo {
  readonly name: string;
  readonly title?: string;
  readonly description?: string;
  readonly inputSchema: { readonly type: 'object'; readonly [key: string]: unknown };
  readonly outputSchema?: { readonly type: 'object'; readonly [key: string]: unknown };
  readonly annotations?: Readonly<Record<string, unknown>>;
}

/** What `mcpTools` needs of an MCP client: the SDK's `Client`, connected over any transport. */
export interface McpClientLike {
  listTools(params?: { cursor?: string }, options?: { signal?: AbortSignal }): Promise<{ tools: readonly McpToolInfo[]; nextCursor?: string }>;
  callTool(
    params: { name: string; arguments?: Record<string, unknown> },
    resultSchema?: undefined,
    options?: { signal?: AbortSignal; timeout?: number },
  ): Promise<Record<string, unknown>>;
}

/**
 * What a call's result becomes. `'content'`: the result's `structuredContent` when there is one,
 * else its text (text parts joined with newlines) when every part is text, else its `content`
 * array. `'raw'`: the whole `CallToolResult`.
 */
export type McpResultMode = 'content' | 'raw';

export interface McpToolsOptions extends ToolTimeoutOptions {
  /** Only these tools of the server (by the server's names). @default every tool */
  readonly include?: readonly string[];
  /** Put before every tool name, to keep the tools of several servers apart (`github_`). @default '' */
  readonly prefix?: string;
  /** @default 'content' */
  readonly result?: McpResultMode;
  /** Aborts listing the server's tools. */
  readonly signal?: AbortSignal;
}

/**
 * A governed MCP tool: a tool body for the run request, carrying the server's description and
 * schemas. The run's policy is asked before it runs; then its arguments are checked against
 * `inputSchema` and the server is called with the call's signal.
 */
export interface McpTool extends ToolFunction {
  (args: unknown, context: ToolCallContext): Promise<unknown>;
  /** The tool's name on the server (without `prefix`). */
  readonly mcpName: string;
  readonly title: string | undefined;
  readonly description: string;
  readonly inputSchema: McpToolInfo['inputSchema'];
  readonly outputSchema: McpToolInfo['outputSchema'];
  readonly annotations: McpToolInfo['annotations'];
}

/** The tools of an MCP server by (prefixed) name: a `ToolSet` to pass with a run request. */
export type McpToolSet = Readonly<Record<string, McpTool>>;

/** The SDK cuts a request at 60 s unless told otherwise: a longer tool limit must reach it. */
const SDK_DEFAULT_TIMEOUT_MS = 60_000;

/**
 * Turns an MCP client's tools into governed OAO tools. Names, descriptions and schemas are kept
 * (on each entry, for whoever describes the tools to a model); arguments are validated against the
 * tool's input schema before the server is contacted (`OAO_ERR_INVALID_TOOL_ARGS`); a call runs
 * with the run's signal, so cancelling the run cancels the request on the server.
 *
 * @example
 * ```ts
 * import { Client } from '@modelcontextprotocol/sdk/client/index.js';
 * import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
 * import { mcpTools } from 'open-agent-orchestrator/mcp';
 *
 * const client = new Client({ name: 'my-app', version: '1.0.0' });
 * await client.connect(new StdioClientTransport({ command: 'node', args: ['server.js'] }));
 * const tools = await mcpTools(client, { toolTimeoutMs: 10_000 });
 * const report = await orch.run({ agent, tools, task: 'Find the open issues' });
 * ```
 */
export async function mcpTools(client: McpClientLike, options: McpToolsOptions = {}): Promise<McpToolSet> {
  if (typeof client !== 'object' || client === null || typeof client.listTools !== 'function' || typeof client.callTool !== 'function') {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected an MCP client (with listTools() and callTool()), got ${client === null ? 'null' : typeof client}`, {
      details: { field: 'client' },
    });
  }
  if (typeof options !== 'object' || options === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected options to be an object, got ${options === null ? 'null' : typeof options}`);
  }
  const { include, prefix = '', result: mode = 'content', signal } = options;
  if (include !== undefined && (!Array.isArray(include) || include.some((name) => typeof name !== 'string'))) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Expected include to be an array of tool names', { details: { field: 'include' } });
  }
  if (typeof prefix !== 'string') {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected prefix to be a string, got ${typeof prefix}`, { details: { field: 'prefix' } });
  }
  if (mode !== 'content' && mode !== 'raw') {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected result to be "content" or "raw", got ${JSON.stringify(mode)}`, { details: { field: 'result' } });
  }
  const timer = toolTimer(options);

  const listed = await listAll(client, signal);
  if (include !== undefined) {
    const names = new Set(listed.map((t) => t.name));
    const missing = include.filter((name) => !names.has(name));
    if (missing.length > 0) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `The MCP server has no tool named ${missing.map((n) => `"${n}"`).join(', ')}`, {
        details: { field: 'include', missing, tools: [...names] },
      });
    }
  }
  const validator = new AjvJsonSchemaValidator();
  const set: Record<string, McpTool> = {};
  for (const info of listed) {
    if (include !== undefined && !include.includes(info.name)) continue;
    const name = `${prefix}${info.name}`;
    const validate = validator.getValidator<Record<string, unknown>>(info.inputSchema);
    const body = (args: unknown, call: ToolCallContext): Promise<unknown> => {
      const input = args ?? {};
      const checked = validate(input);
      if (!checked.valid) {
        return Promise.reject(
          new OaoError('OAO_ERR_INVALID_TOOL_ARGS', `Invalid arguments for tool "${name}": ${checked.errorMessage}`, {
            details: { tool: name, issues: checked.errorMessage },
          }),
        );
      }
      const limit = timer.limitOf(name);
      return timer.run(name, call, async (callSignal) => {
        const response = await client.callTool(
          { name: info.name, arguments: input as Record<string, unknown> },
          undefined,
          limit === undefined || limit < SDK_DEFAULT_TIMEOUT_MS ? { signal: callSignal } : { signal: callSignal, timeout: limit + 1_000 },
        );
        return mode === 'raw' ? response : contentOf(name, response);
      });
    };
    Object.defineProperties(body, {
      name: { value: name },
      mcpName: { value: info.name, enumerable: true },
      title: { value: info.title, enumerable: true },
      description: { value: info.description ?? '', enumerable: true },
      inputSchema: { value: info.inputSchema, enumerable: true },
      outputSchema: { value: info.outputSchema, enumerable: true },
      annotations: { value: info.annotations, enumerable: true },
    });
    set[name] = body as McpTool;
  }
  return Object.freeze(set);
}

async function listAll(client: McpClientLike, signal: AbortSignal | undefined): Promise<McpToolInfo[]> {
  const tools: McpToolInfo[] = [];
  let cursor: string | undefined;
  const seen = new Set<string>();
  do {
    const page = await client.listTools(cursor === undefined ? undefined : { cursor }, signal === undefined ? undefined : { signal });
    tools.push(...page.tools);
    cursor = page.nextCursor;
    // A server that hands out the same cursor again would page forever.
    if (cursor !== undefined && seen.has(cursor)) break;
    if (cursor !== undefined) seen.add(cursor);
  } while (cursor !== undefined);
  return tools;
}

interface ContentPart {
  readonly type: string;
  readonly text?: string;
}

/** The result of a call as the agent sees it; a result the server flags as an error rejects. */
function contentOf(tool: string, response: Record<string, unknown>): unknown {
  const content = Array.isArray(response.content) ? (response.content as ContentPart[]) : [];
  const allText = content.every((part) => part.type === 'text' && typeof part.text === 'string');
  const text = allText ? content.map((part) => part.text).join('\n') : undefined;
  if (response.isError === true) {
    throw Object.assign(new Error(text !== undefined && text.length > 0 ? text : `Tool "${tool}" failed on the MCP server`), { name: 'McpToolError' });
  }
  if (response.structuredContent !== undefined) return response.structuredContent;
  if (text !== undefined) return text;
  // Older servers answer with `toolResult` instead of `content`.
  return content.length > 0 || !('toolResult' in response) ? content : response.toolResult;
}
