import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { AgentLike } from '../agent.js';
import { OaoError } from '../errors.js';
import { MultiAgentOrchestrator } from '../MultiAgentOrchestrator.js';
import { Orchestrator } from '../Orchestrator.js';
import type { PolicyOptions } from '../policy/schema.js';
import { StrictPolicy } from '../policy/StrictPolicy.js';
import type { ExecutionReport } from '../report/schema.js';
import { RUNTIME_VERSION } from '../version.js';
import { ExitCode } from './exitCodes.js';
import { formatReport, summaryTable } from './formatReport.js';
import { loadAgentModule } from './loadModule.js';
import type { RunInspector } from '../observability/inspect/index.js';
import type { RunState, RunSummary } from '../server/schemas.js';
import { INSPECT_PACKAGES, requirePackages, SERVER_PACKAGES } from './optionalPackages.js';
import { STARTER_FILE, writeStarterModule } from './starterModule.js';
import { listenFailure } from './startupError.js';
import { colorWanted, createStyle, table, type Style } from './style.js';

interface RunList {
  readonly runs: readonly RunSummary[];
  readonly total: number;
}

/** Where the CLI reads and writes; the real process in `oao`, buffers in tests. */
export interface CliIO {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly isTTY: boolean;
  readonly cwd: string;
  /** Resolves when the process is asked to stop (SIGINT/SIGTERM); used by `serve`. */
  readonly untilStopped?: () => Promise<void>;
}

function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) {
      throw new InvalidArgumentError(`${name} must be a whole number from 1 up, got "${value}".`);
    }
    return n;
  };
}

function nonNegativeInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) {
      throw new InvalidArgumentError(`${name} must be a whole number from 0 up, got "${value}".`);
    }
    return n;
  };
}

function port(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n > 65_535) throw new InvalidArgumentError(`port must be a number from 0 to 65535, got "${value}".`);
  return n;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function serverUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http');
    return url.href.replace(/\/$/, '');
  } catch {
    throw new InvalidArgumentError(`server must be an http(s) URL, got "${value}".`);
  }
}

const DEFAULT_INSPECT_URL = 'ws://localhost:8080';

interface ServeFlags {
  host: string;
  port: number;
  apiKey?: string[];
  maxConcurrentRuns?: number;
  metrics?: boolean;
  dashboard: boolean;
  inspect?: string;
}

function inspectorUrl(value: string): string {
  if (!/^wss?:\/\//.test(value) || !URL.canParse(value)) {
    throw new InvalidArgumentError(`inspector must be a ws:// or wss:// URL, got "${value}".`);
  }
  return value;
}

/**
 * Starts streaming to the inspector. It reconnects with backoff by itself; the log says when the
 * connection changes (the first failure of a streak, then connected), not at every retry.
 */
async function startInspector(url: string, io: CliIO): Promise<RunInspector> {
  await requirePackages('--inspect', INSPECT_PACKAGES);
  const { createRunInspector } = await import('../observability/inspect/index.js');
  let state: 'connecting' | 'failing' | 'connected' = 'connecting';
  let waiting = false;
  // Runs only once createRunInspector below has returned: right after it, and from socket events.
  const untilConnected = (): void => {
    if (waiting) return;
    waiting = true;
    inspector.ready().then(
      () => {
        waiting = false;
        state = 'connected';
        io.stderr(`inspector: connected to ${url}\n`);
      },
      () => undefined, // stopped before it connected
    );
  };
  const inspector = createRunInspector({
    url,
    onError: (error) => {
      if (state !== 'failing') io.stderr(`inspector: ${error.message}; retrying in the background\n`);
      state = 'failing';
      untilConnected();
    },
  });
  untilConnected();
  return inspector;
}

interface RunFlags {
  task: string;
  agent?: string[];
  all?: boolean;
  maxSteps?: number;
  maxTokens?: number;
  maxToolCalls?: number;
  timeoutMs?: number;
  concurrency?: number;
  json?: boolean;
  color: boolean;
}

function policyFromFlags(flags: RunFlags): PolicyOptions {
  return {
    ...(flags.maxSteps === undefined ? {} : { maxSteps: flags.maxSteps }),
    ...(flags.maxTokens === undefined ? {} : { maxTokens: flags.maxTokens }),
    ...(flags.maxToolCalls === undefined ? {} : { maxToolCalls: flags.maxToolCalls }),
    ...(flags.timeoutMs === undefined ? {} : { timeoutMs: flags.timeoutMs }),
  };
}

function styleFor(io: CliIO, color: boolean): Style {
  return createStyle(color && colorWanted(io.isTTY, io.env));
}

const LIMIT_FLAGS = [
  ['maxSteps', '--max-steps'],
  ['maxTokens', '--max-tokens'],
  ['maxToolCalls', '--max-tool-calls'],
  ['timeoutMs', '--timeout-ms'],
] as const;

/**
 * Flags can only narrow the module's policy: a value above the module's limit is not applied. Says
 * so on stderr (one JSON line each with --json, so stdout stays one document).
 */
function noticeWidening(flags: RunFlags, base: StrictPolicy, io: CliIO): void {
  for (const [key, flag] of LIMIT_FLAGS) {
    const requested = flags[key];
    const applied = base[key];
    if (requested === undefined || requested <= applied) continue;
    const message = `${flag} ${requested} is above the module's ${key} (${applied}); flags can only narrow the policy, so ${key} stays ${applied}.`;
    io.stderr(flags.json === true ? `${JSON.stringify({ notice: { message, flag, requested, applied } })}\n` : `notice: ${message}\n`);
  }
}

/** Options of the command tree that depend on how the CLI was called. */
export interface ProgramOptions {
  /** Commander's own error lines are left to the caller (which prints them as JSON). */
  readonly quietErrors?: boolean;
}

/** Builds the `oao` command tree. Actions report their exit code through `setExit`. */
export function createProgram(io: CliIO, setExit: (code: number) => void, options: ProgramOptions = {}): Command {
  const program = new Command('oao')
    .description('OpenAgentOrchestrator: run AI agents governed by hard limits, with reports and live events.')
    .version(RUNTIME_VERSION, '-v, --version')
    .showHelpAfterError('(run "oao --help" for usage)')
    // `oao runs show <id> --server x`: options after a subcommand belong to the subcommand.
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput(
      options.quietErrors === true
        ? { writeOut: io.stdout, writeErr: () => undefined, outputError: () => undefined }
        : { writeOut: io.stdout, writeErr: io.stderr },
    );

  program
    .command('init')
    .description(`Write a starter module (${STARTER_FILE}: two agents, a tool and a policy) to run and serve; never overwrites.`)
    .argument('[file]', 'where to write it (a .mjs file)', STARTER_FILE)
    .action(async (file: string) => {
      const written = await writeStarterModule(file, io.cwd);
      const quoted = /^[\w./-]+$/.test(written) ? written : JSON.stringify(written);
      io.stdout(
        `Wrote ${written}: agents greeter and researcher, a search tool and a policy. Try:\n` +
          `  npx oao run ${quoted} --agent researcher --task "agent governance"\n` +
          `  npx oao serve ${quoted}\n`,
      );
      setExit(ExitCode.OK);
    });

  program
    .command('demo')
    .description('Run a short governed session on built-in agents (no network, no API key).')
    .option('--json', 'print one JSON document instead of text')
    .option('--no-color', 'disable colours')
    .action(async (flags: { json?: boolean; color: boolean }) => {
      const { runDemo } = await import('../demo/runDemo.js');
      const result = await runDemo({ json: flags.json === true, write: io.stdout, color: styleFor(io, flags.color).enabled });
      setExit(result.ok ? ExitCode.OK : ExitCode.RUN_FAILED);
    });

  program
    .command('run')
    .description('Load agents from a module and run one (or several) governed; print the report.')
    .argument('<module>', 'a .js or .ts module exporting `agents` (and optionally `tools`, `policy`)')
    .requiredOption('-t, --task <text>', 'the task to give the agent')
    .option('-a, --agent <name>', 'the agent to run (repeat for several, run in parallel)', collect)
    .option('--all', 'run every agent of the module in parallel')
    .option('--max-steps <n>', 'narrow maxSteps', positiveInt('--max-steps'))
    .option('--max-tokens <n>', 'narrow maxTokens', nonNegativeInt('--max-tokens'))
    .option('--max-tool-calls <n>', 'narrow maxToolCalls', nonNegativeInt('--max-tool-calls'))
    .option('--timeout-ms <n>', 'narrow timeoutMs', positiveInt('--timeout-ms'))
    .option('-c, --concurrency <n>', 'parallel runs with several agents', positiveInt('--concurrency'), 4)
    .option('--json', 'print the report as JSON')
    .option('--no-color', 'disable colours')
    .action(async (modulePath: string, flags: RunFlags) => {
      const style = styleFor(io, flags.color);
      const mod = await loadAgentModule(modulePath, io.cwd);
      const names = Object.keys(mod.agents);
      let chosen: string[];
      if (flags.all === true) chosen = names;
      else if (flags.agent !== undefined) chosen = [...new Set(flags.agent)];
      else if (names.length === 1) chosen = names;
      else throw new OaoError('OAO_ERR_CLI_USAGE', `The module exports several agents (${names.join(', ')}): choose with --agent <name> or --all.`);
      for (const name of chosen) {
        if (!(name in mod.agents)) {
          throw new OaoError('OAO_ERR_UNKNOWN_AGENT', `No agent "${name}" in ${modulePath}; it exports: ${names.join(', ')}`);
        }
      }
      const base = mod.policy instanceof StrictPolicy ? mod.policy : new StrictPolicy(mod.policy ?? {});
      noticeWidening(flags, base, io);
      const policy = base.narrow(policyFromFlags(flags));
      const results: [string, ExecutionReport][] = [];
      if (chosen.length === 1) {
        const name = chosen[0] as string;
        const orch = new Orchestrator({ policy });
        results.push([name, await orch.run({ agent: mod.agents[name] as AgentLike, task: flags.task, tools: mod.tools })]);
      } else {
        const multi = new MultiAgentOrchestrator({ policy, maxConcurrency: flags.concurrency ?? 4 });
        const handle = multi.submit(
          chosen.map((name) => ({ name, agent: mod.agents[name] as AgentLike, task: flags.task, tools: mod.tools })),
        );
        const live = io.isTTY && flags.json !== true;
        if (live) {
          handle.events$.subscribe((event) => {
            if (event.type !== 'BATCH_PROGRESS' && event.type !== 'BATCH_COMPLETE') return;
            const p = event.payload;
            io.stderr(`\r${style.cyan('▶')} ${p.finished}/${p.total} finished · ${p.running} running · ${p.queued} queued · ${style.green(String(p.succeeded))} ok · ${style.red(String(p.failed))} failed  `);
            if (event.type === 'BATCH_COMPLETE') io.stderr('\n');
          });
        }
        const reports = await handle.reports;
        chosen.forEach((name, i) => results.push([name, reports[i] as ExecutionReport]));
      }
      if (flags.json === true) {
        io.stdout(`${JSON.stringify(results.length === 1 ? results[0]?.[1] : Object.fromEntries(results), null, 2)}\n`);
      } else {
        for (const [name, report] of results) io.stdout(`${formatReport(name, report, style)}\n\n`);
        if (results.length > 1) io.stdout(`${summaryTable(results, style)}\n`);
      }
      setExit(results.every(([, r]) => r.status === 'SUCCESS') ? ExitCode.OK : ExitCode.RUN_FAILED);
    });

  program
    .command('serve')
    .description('Serve the agents of a module over HTTP (OpenAPI docs at /docs).')
    .argument('<module>', 'a .js or .ts module exporting `agents` (and optionally `tools`, `policy`)')
    .option('--host <host>', 'address to listen on; beyond loopback, API keys are required', '127.0.0.1')
    .addOption(new Option('-p, --port <port>', 'port to listen on (0 picks a free one)').default(3000).argParser(port))
    .option('-k, --api-key <key>', 'accept this bearer key (repeatable; also env OAO_API_KEYS, comma-separated)', collect)
    .option('--max-concurrent-runs <n>', 'runs the server executes at once before answering 429', positiveInt('--max-concurrent-runs'))
    .option('--metrics', 'count Prometheus metrics of every run and serve them at GET /metrics')
    .option('--no-dashboard', 'do not serve the live dashboard at /dashboard/')
    .addOption(
      new Option('--inspect [url]', 'stream every run actor to an @statelyai/inspect WebSocket inspector').preset(DEFAULT_INSPECT_URL).argParser(inspectorUrl),
    )
    .action(async (modulePath: string, flags: ServeFlags) => {
      const mod = await loadAgentModule(modulePath, io.cwd);
      await requirePackages('oao serve', SERVER_PACKAGES);
      const { startServer } = await import('../server/index.js');
      const envKeys = (io.env.OAO_API_KEYS ?? '').split(',').map((k) => k.trim()).filter((k) => k.length > 0);
      const apiKeys = [...(flags.apiKey ?? []), ...envKeys];
      const metrics = flags.metrics === true ? (await import('../observability/metrics/index.js')).createMetrics() : undefined;
      const inspector = flags.inspect === undefined ? undefined : await startInspector(flags.inspect, io);
      let server;
      try {
        server = await startServer({
          agents: mod.agents,
          ...(mod.tools === undefined ? {} : { tools: mod.tools }),
          ...(mod.policy === undefined ? {} : { policy: mod.policy }),
          ...(apiKeys.length === 0 ? {} : { apiKeys }),
          ...(flags.maxConcurrentRuns === undefined ? {} : { limits: { maxConcurrentRuns: flags.maxConcurrentRuns } }),
          ...(metrics === undefined ? {} : { metrics }),
          ...(inspector === undefined ? {} : { inspect: inspector.inspect }),
          dashboard: flags.dashboard,
          host: flags.host,
          port: flags.port,
        });
      } catch (error) {
        await inspector?.stop();
        throw listenFailure(error, { host: flags.host, port: flags.port }) ?? new ServerStartError(error);
      }
      const where = [
        `docs at ${server.url}/docs`,
        ...(flags.dashboard ? [`dashboard at ${server.url}/dashboard/`] : []),
        ...(metrics === undefined ? [] : [`metrics at ${server.url}/metrics`]),
        ...(inspector === undefined ? [] : [`inspector at ${inspector.url}`]),
      ];
      io.stdout(`OAO listening on ${server.url} (agents: ${Object.keys(mod.agents).join(', ')}; ${where.join('; ')})\n`);
      await (io.untilStopped?.() ?? new Promise<void>(() => {}));
      await server.close();
      await inspector?.stop();
      io.stdout('OAO server stopped\n');
      setExit(ExitCode.OK);
    });

  const runs = program
    .command('runs')
    .enablePositionalOptions()
    .description('List the runs of a running OAO server.')
    .option('-s, --server <url>', 'the server', serverUrl, 'http://127.0.0.1:3000')
    .option('-k, --api-key <key>', 'bearer key (default: env OAO_API_KEY)')
    .addOption(new Option('--status <status>', 'only runs with this status').choices(['running', 'SUCCESS', 'FAILED']))
    .option('--agent <name>', 'only runs of this agent')
    .option('--limit <n>', 'at most this many', positiveInt('--limit'), 20)
    .option('--json', 'print JSON')
    .option('--no-color', 'disable colours')
    .action(async (flags: { server: string; apiKey?: string; status?: string; agent?: string; limit: number; json?: boolean; color: boolean }) => {
      const query = new URLSearchParams({ limit: String(flags.limit) });
      if (flags.status !== undefined) query.set('status', flags.status);
      if (flags.agent !== undefined) query.set('agent', flags.agent);
      const body = await request(`${flags.server}/runs?${query.toString()}`, flags.apiKey ?? io.env.OAO_API_KEY);
      if (flags.json === true) {
        io.stdout(`${JSON.stringify(body, null, 2)}\n`);
      } else {
        const style = styleFor(io, flags.color);
        const list = (body as RunList).runs;
        if (list.length === 0) io.stdout('No runs.\n');
        else {
          const rows = [['id', 'agent', 'status', 'reason', 'started']];
          for (const r of list) {
            const status = r.status === 'SUCCESS' ? style.green(r.status) : r.status === 'FAILED' ? style.red(r.status) : style.yellow(r.status);
            rows.push([r.executionId, r.agent, status, r.termination?.reason ?? '', r.startedAt]);
          }
          io.stdout(`${table(rows, style)}\n`);
          if (list.length < (body as RunList).total) io.stdout(style.dim(`${list.length} of ${(body as RunList).total} runs shown; use --limit for more\n`));
        }
      }
      setExit(ExitCode.OK);
    });

  runs
    .command('show')
    .description('Show one run of a running OAO server.')
    .argument('<id>', 'execution id')
    .option('-s, --server <url>', 'the server', serverUrl, 'http://127.0.0.1:3000')
    .option('-k, --api-key <key>', 'bearer key (default: env OAO_API_KEY)')
    .option('--json', 'print JSON')
    .option('--no-color', 'disable colours')
    .action(async (id: string, flags: { server: string; apiKey?: string; json?: boolean; color: boolean }) => {
      const body = await request(`${flags.server}/runs/${encodeURIComponent(id)}`, flags.apiKey ?? io.env.OAO_API_KEY);
      if (flags.json === true) {
        io.stdout(`${JSON.stringify(body, null, 2)}\n`);
        setExit((body as RunState).status === 'FAILED' ? ExitCode.RUN_FAILED : ExitCode.OK);
        return;
      }
      const run = body as RunState;
      if (run.report !== null && run.report !== undefined) {
        io.stdout(`${formatReport(run.agent, run.report, styleFor(io, flags.color))}\n`);
      } else {
        const c = run.counters;
        io.stdout(`${run.agent}  ${run.status}  state ${run.state ?? '-'} · steps ${c.steps} · tokens ${c.tokens} · tool calls ${c.toolCalls}\n`);
      }
      // The run rule: a FAILED run exits 1; a run still going has not failed (yet).
      setExit(run.status === 'FAILED' ? ExitCode.RUN_FAILED : ExitCode.OK);
    });

  return program;
}

/** The server answered a well-formed request with an error; `code` is the server's OAO_ERR_* code. */
class ServerAnswerError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

/** `oao serve` failed to start for a reason that is not about the address or port. */
class ServerStartError extends Error {
  constructor(readonly original: unknown) {
    super(`Could not start the server: ${original instanceof Error ? original.message : String(original)}`);
  }
}

async function request(url: string, apiKey: string | undefined): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(url, { headers: apiKey === undefined ? {} : { authorization: `Bearer ${apiKey}` } });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new OaoError('OAO_ERR_SERVER_UNREACHABLE', `Could not reach the OAO server at ${new URL(url).origin}: ${cause?.code ?? cause?.message ?? (error as Error).message}`);
  }
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  if (!response.ok) {
    const error = (body as { error?: { code?: string; message?: string } } | null)?.error;
    const code = typeof error?.code === 'string' ? error.code : undefined;
    // The server takes its keys from `oao serve --api-key` or OAO_API_KEYS; a client sends one.
    const hint =
      response.status === 401
        ? apiKey === undefined
          ? ' Pass a key with --api-key <key> or set OAO_API_KEY (one of the keys the server was given with --api-key or OAO_API_KEYS).'
          : ' The key sent (from --api-key or OAO_API_KEY) is not one the server accepts (its --api-key or OAO_API_KEYS).'
        : '';
    throw new ServerAnswerError(
      response.status,
      code,
      `The server answered ${response.status}: ${error?.message ?? text.slice(0, 200)}${hint}`,
    );
  }
  return body;
}

/** What went wrong, as the CLI reports it: a stable code, one line, and the exit code. */
interface Failure {
  /** An OAO_ERR_* code; null when a server answered an error without one (a proxy, say). */
  readonly code: string | null;
  readonly message: string;
  readonly exitCode: number;
  readonly status?: number;
  /** Only for defects in oao itself. */
  readonly stack?: string;
}

/** Startup failures that are the caller's to fix (flags), not the machine's. */
const USAGE_CODES = new Set(['OAO_ERR_CLI_USAGE', 'OAO_ERR_INVALID_MODULE', 'OAO_ERR_UNKNOWN_AGENT', 'OAO_ERR_INVALID_POLICY', 'OAO_ERR_INVALID_ARGUMENT', 'OAO_ERR_INSECURE_BIND']);

function describeFailure(error: unknown): Failure {
  if (error instanceof CommanderError) {
    return { code: 'OAO_ERR_CLI_USAGE', message: error.message.replace(/^error: /, ''), exitCode: ExitCode.USAGE };
  }
  if (error instanceof ServerAnswerError) {
    return { code: error.code ?? null, message: error.message, exitCode: ExitCode.SERVER_ERROR, status: error.status };
  }
  if (error instanceof ServerStartError) {
    const original = error.original;
    if (OaoError.isInstance(original)) {
      return { code: original.code, message: original.message, exitCode: USAGE_CODES.has(original.code) ? ExitCode.USAGE : ExitCode.COULD_NOT_START };
    }
    return { code: 'OAO_ERR_LISTEN_FAILED', message: error.message, exitCode: ExitCode.COULD_NOT_START };
  }
  if (OaoError.isInstance(error)) {
    const exitCode =
      error.code === 'OAO_ERR_SERVER_UNREACHABLE'
        ? ExitCode.UNREACHABLE
        : error.code === 'OAO_ERR_LISTEN_FAILED' || error.code === 'OAO_ERR_MISSING_PACKAGE'
          ? ExitCode.COULD_NOT_START
          : ExitCode.USAGE;
    return { code: error.code, message: error.message, exitCode };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { code: 'OAO_ERR_INTERNAL', message, exitCode: ExitCode.INTERNAL, ...(error instanceof Error && error.stack !== undefined ? { stack: error.stack } : {}) };
}

/**
 * Runs the CLI with `argv` (without node and script) and returns the exit code. With `--json`,
 * an error is one JSON line on stderr, `{"error":{"code","message","exitCode"}}`, and stdout stays
 * empty or one JSON document.
 */
export async function runCli(argv: readonly string[], io: CliIO): Promise<number> {
  let exitCode: number = ExitCode.OK;
  const end = argv.indexOf('--');
  const json = (end === -1 ? argv : argv.slice(0, end)).includes('--json');
  const program = createProgram(io, (code) => (exitCode = code), { quietErrors: json });
  const style = createStyle(colorWanted(io.isTTY, io.env) && !argv.includes('--no-color'));
  try {
    if (argv.length === 0) {
      program.outputHelp();
      return ExitCode.USAGE;
    }
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError && (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help')) {
      return ExitCode.OK;
    }
    const failure = describeFailure(error);
    if (json) {
      io.stderr(`${JSON.stringify({ error: failure })}\n`);
    } else if (error instanceof CommanderError) {
      // Commander has printed its message (and where to find help) already.
    } else if (failure.stack !== undefined || failure.exitCode === ExitCode.INTERNAL) {
      io.stderr(`${style.red('internal error:')} ${failure.stack ?? failure.message}\n`);
    } else {
      io.stderr(`${style.red('error:')} ${failure.message}${failure.code === null ? '' : ` ${style.dim(`[${failure.code}]`)}`}\n`);
    }
    return failure.exitCode;
  }
}
