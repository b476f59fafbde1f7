import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { AgentLike } from '../agent.js';
import { OaoError } from '../errors.js';
import { whatIf, type WhatIfResult } from '../log/whatIf.js';
import { MultiAgentOrchestrator } from '../MultiAgentOrchestrator.js';
import { Orchestrator } from '../Orchestrator.js';
import type { PolicyOptions } from '../policy/schema.js';
import { StrictPolicy } from '../policy/StrictPolicy.js';
import type { ExecutionReport } from '../report/schema.js';
import type { RunStore, StoredRunStatus } from '../store/RunStore.js';
import { RUNTIME_VERSION } from '../version.js';
import { ExitCode, type ExitCodeValue } from './exitCodes.js';
import { formatReport, summaryTable } from './formatReport.js';
import { loadAgentModule, loadPluginModules } from './loadModule.js';
import type { RunInspector } from '../observability/inspect/index.js';
import type { DecisionResponse, PendingApprovalBody, RunState, RunSummary } from '../server/schemas.js';
import { DEFAULT_SERVE_STORE, describeStore, openDefaultServeStore, openStore, parseStoreUrl, STORE_FORMS, type StoreLocation } from './openStore.js';
import { INSPECT_PACKAGES, requirePackages, SERVER_PACKAGES } from './optionalPackages.js';
import { parseSince } from './parseSince.js';
import { STARTER_FILE, writeStarterModule } from './starterModule.js';
import { listenFailure } from './startupError.js';
import { serveApiKeys } from './apiKeysFile.js';
import { QUEUE_PACKAGES, redisUrl, workerCommand } from './workerCommand.js';
import { workflowCommand } from './workflowCommand.js';
import { listStoredRuns, storedRunView, type RunListing, type RunView } from './storedRuns.js';
import { colorWanted, createStyle, table, type Style } from './style.js';

interface RunList {
  readonly runs: readonly RunSummary[];
  /** Older servers count every matching run; a server reading a store may only say whether more match. */
  readonly total?: number;
  readonly nextCursor?: string | null;
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
  apiKeysFile?: string;
  adminKey?: string[];
  maxConcurrentRuns?: number;
  metrics?: boolean;
  dashboard: boolean;
  inspect?: string;
  store?: string;
  leaseTtlMs?: number;
  resume: boolean;
  redis?: string;
  queueName?: string;
  plugin?: string[];
}

function inspectorUrl(value: string): string {
  if (!/^wss?:\/\//.test(value) || !URL.canParse(value)) {
    throw new InvalidArgumentError(`inspector must be a ws:// or wss:// URL, got "${value}".`);
  }
  return value;
}

/**
 * Opens the store of `--store` (or a command's default). A store whose file or schema cannot be
 * used at all (written by a newer version, damaged) could not be opened: exit 5, with its code.
 */
async function openStoreFor(location: StoreLocation, io: CliIO, readOnly: boolean): Promise<RunStore> {
  try {
    return await openStore(location, { cwd: io.cwd, readOnly });
  } catch (error) {
    if (OaoError.isInstance(error) && (error.code === 'OAO_ERR_LOG_VERSION' || error.code === 'OAO_ERR_LOG_CORRUPT')) throw new StoreOpenError(error);
    throw error;
  }
}

/** Closes a store the CLI opened. Nothing is left to lose by then, so a failure to close is not reported. */
async function closeStore(store: RunStore | undefined): Promise<void> {
  try {
    await store?.close();
  } catch {
    // every append was acknowledged before the command ended
  }
}

/** Opens a store for a command that only reads, runs `use`, and closes the store whatever happens. */
async function readStore<T>(url: string, io: CliIO, use: (store: RunStore) => Promise<T>): Promise<T> {
  const store = await openStoreFor(parseStoreUrl(url), io, true);
  try {
    return await use(store);
  } finally {
    await closeStore(store);
  }
}

const STORE_FLAG = '--store <url>';
const STORE_HELP = `where runs are kept: ${STORE_FORMS}`;

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
  store?: string;
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
    .option(STORE_FLAG, `record the runs' event logs there (${STORE_FORMS})`)
    .option('--json', 'print the report as JSON')
    .option('--no-color', 'disable colours')
    .action(async (modulePath: string, flags: RunFlags) => {
      const style = styleFor(io, flags.color);
      const location = flags.store === undefined ? undefined : parseStoreUrl(flags.store);
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
      const store = location === undefined ? undefined : await openStoreFor(location, io, false);
      const results: [string, ExecutionReport][] = [];
      try {
        if (chosen.length === 1) {
          const name = chosen[0] as string;
          const orch = new Orchestrator({ policy, ...(store === undefined ? {} : { store }) });
          results.push([name, await orch.run({ agent: mod.agents[name] as AgentLike, task: flags.task, tools: mod.tools })]);
        } else {
          const multi = new MultiAgentOrchestrator({ policy, maxConcurrency: flags.concurrency ?? 4, ...(store === undefined ? {} : { store }) });
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
      } finally {
        // A run's promise settles once its log is stored: closing now loses nothing.
        await closeStore(store);
      }
      if (flags.json === true) {
        io.stdout(`${JSON.stringify(results.length === 1 ? results[0]?.[1] : Object.fromEntries(results), null, 2)}\n`);
      } else {
        for (const [name, report] of results) io.stdout(`${formatReport(name, report, style)}\n\n`);
        if (results.length > 1) io.stdout(`${summaryTable(results, style)}\n`);
        if (location !== undefined) io.stdout(style.dim(`recorded in ${describeStore(location)}\n`));
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
    .option('--api-keys-file <file>', 'accept the keys of this JSON file: a list, or a map of key to { tenant, name?, budget? } (tenants and their budgets)')
    .option('--admin-key <name>', 'this key (by name, or the key itself) sees every tenant (repeatable)', collect)
    .option('--max-concurrent-runs <n>', 'runs the server executes at once before answering 429', positiveInt('--max-concurrent-runs'))
    .option('--metrics', 'count Prometheus metrics of every run and serve them at GET /metrics')
    .option('--no-dashboard', 'do not serve the live dashboard at /dashboard/')
    .option(STORE_FLAG, `${STORE_HELP} (default ${DEFAULT_SERVE_STORE}, or memory when better-sqlite3 is not installed)`)
    .option('--lease-ttl-ms <ms>', 'how long a run stays leased without renewal: a run whose server died lists as interrupted that long after (default 10000)', positiveInt('--lease-ttl-ms'))
    .option('--no-resume', 'leave the runs a stopped server left unfinished in the store as they are (by default they are resumed here, or ended FAILED when no agent of theirs is here)')
    .option('--redis <url>', 'enqueue POST /runs and /run on this Redis for `oao worker` processes instead of running them here (the store must be shared with the workers)', redisUrl)
    .option('--queue-name <name>', 'with --redis: the queue name, as the workers use it (default oao-runs)')
    .option('--plugin <module>', 'govern every run with the plugin(s) this module exports (definePlugin(); repeatable)', collect)
    .addOption(
      new Option('--inspect [url]', 'stream every run actor to an @statelyai/inspect WebSocket inspector').preset(DEFAULT_INSPECT_URL).argParser(inspectorUrl),
    )
    .action(async (modulePath: string, flags: ServeFlags) => {
      const requested = flags.store === undefined ? undefined : parseStoreUrl(flags.store);
      const mod = await loadAgentModule(modulePath, io.cwd);
      const plugins = await loadPluginModules(flags.plugin ?? [], io.cwd);
      await requirePackages('oao serve', SERVER_PACKAGES);
      const { startServer } = await import('../server/index.js');
      const envKeys = (io.env.OAO_API_KEYS ?? '').split(',').map((k) => k.trim()).filter((k) => k.length > 0);
      const apiKeys = await serveApiKeys(flags.apiKeysFile, [...(flags.apiKey ?? []), ...envKeys], io.cwd);
      const metrics = flags.metrics === true ? (await import('../observability/metrics/index.js')).createMetrics() : undefined;
      const { store, location, notice } =
        requested === undefined
          ? await openDefaultServeStore(io.cwd)
          : {
              // memory: the server's own store, which keeps the newest finished runs (as before --store existed).
              store: requested.kind === 'memory' ? undefined : await openStoreFor(requested, io, false),
              location: requested,
              notice: undefined,
            };
      if (notice !== undefined) io.stderr(`notice: ${notice}\n`);
      let queue: import('../queue/index.js').RunQueue | undefined;
      if (flags.redis !== undefined) {
        if (store === undefined) {
          throw new OaoError('OAO_ERR_CLI_USAGE', '--redis needs a --store the workers share (postgres://..., or sqlite:<path> on one host), not memory', { details: { field: '--store' } });
        }
        try {
          await requirePackages('oao serve --redis', QUEUE_PACKAGES);
          const { createQueue } = await import('../queue/index.js');
          queue = await createQueue({ connection: flags.redis, store, ...(flags.queueName === undefined ? {} : { queueName: flags.queueName }) });
        } catch (error) {
          await closeStore(store);
          throw error;
        }
      }
      let inspector: RunInspector | undefined;
      try {
        inspector = flags.inspect === undefined ? undefined : await startInspector(flags.inspect, io);
      } catch (error) {
        await queue?.close();
        await closeStore(store);
        throw error;
      }
      let server;
      try {
        server = await startServer({
          agents: mod.agents,
          ...(store === undefined ? {} : { store }),
          ...(flags.leaseTtlMs === undefined ? {} : { runLeaseTtlMs: flags.leaseTtlMs }),
          ...(flags.resume ? {} : { resumeInterrupted: false }),
          ...(mod.tools === undefined ? {} : { tools: mod.tools }),
          ...(mod.policy === undefined ? {} : { policy: mod.policy }),
          ...(Object.keys(mod.workflows).length === 0 ? {} : { workflows: mod.workflows }),
          ...(apiKeys === undefined ? {} : { apiKeys }),
          ...(flags.adminKey === undefined ? {} : { adminKeys: flags.adminKey }),
          ...(flags.maxConcurrentRuns === undefined ? {} : { limits: { maxConcurrentRuns: flags.maxConcurrentRuns } }),
          ...(metrics === undefined ? {} : { metrics }),
          ...(inspector === undefined ? {} : { inspect: inspector.inspect }),
          ...(plugins.length === 0 ? {} : { plugins }),
          ...(queue === undefined ? {} : { queue }),
          dashboard: flags.dashboard,
          host: flags.host,
          port: flags.port,
        });
      } catch (error) {
        await inspector?.stop();
        await queue?.close();
        await closeStore(store);
        throw listenFailure(error, { host: flags.host, port: flags.port }) ?? new ServerStartError(error);
      }
      const where = [
        `store ${describeStore(location)}`,
        ...(flags.redis === undefined ? [] : [`runs enqueued on ${flags.redis}`]),
        `docs at ${server.url}/docs`,
        ...(flags.dashboard ? [`dashboard at ${server.url}/dashboard/`] : []),
        ...(metrics === undefined ? [] : [`metrics at ${server.url}/metrics`]),
        ...(inspector === undefined ? [] : [`inspector at ${inspector.url}`]),
      ];
      io.stdout(`OAO listening on ${server.url} (agents: ${Object.keys(mod.agents).join(', ')}; ${where.join('; ')})\n`);
      await (io.untilStopped?.() ?? new Promise<void>(() => {}));
      await server.close();
      await inspector?.stop();
      await queue?.close();
      await closeStore(store);
      io.stdout('OAO server stopped\n');
      setExit(ExitCode.OK);
    });

  const runs = program
    .command('runs')
    .enablePositionalOptions()
    .description('List runs: those of a running OAO server (--server), or those kept in a store (--store), newest first.')
    .option('-s, --server <url>', 'the server', serverUrl, 'http://127.0.0.1:3000')
    .option('-k, --api-key <key>', 'bearer key (default: env OAO_API_KEY)')
    .option(STORE_FLAG, `read the runs from a store instead of a server: ${STORE_FORMS}`)
    .addOption(
      new Option('--status <status>', 'only runs with this status (interrupted: its process died before it finished)').choices([
        'running',
        'interrupted',
        'SUCCESS',
        'FAILED',
      ]),
    )
    .option('--agent <name>', 'only runs of this agent')
    .option('--since <time>', 'only runs started at or after this ISO 8601 time, or this long ago (30m, 12h, 7d)')
    .option('--limit <n>', 'at most this many', positiveInt('--limit'), 20)
    .option('--json', 'print JSON')
    .option('--no-color', 'disable colours')
    .action(async (flags: RunsFlags, command: Command) => {
      const since = flags.since === undefined ? undefined : parseSince(flags.since, Date.now());
      const store = storeInsteadOfServer(flags, command);
      let body: { runs: readonly RunListing[] | readonly RunSummary[]; total?: number; nextCursor?: string | null };
      if (store !== undefined) {
        const filter = {
          ...(flags.status === undefined ? {} : { status: flags.status }),
          ...(flags.agent === undefined ? {} : { agentName: flags.agent }),
          ...(since === undefined ? {} : { since }),
        };
        body = await readStore(store, io, (opened) => listStoredRuns(opened, filter, flags.limit));
      } else {
        const query = new URLSearchParams({ limit: String(flags.limit) });
        if (flags.status !== undefined) query.set('status', flags.status);
        if (flags.agent !== undefined) query.set('agent', flags.agent);
        const page = (await request(`${flags.server}/runs?${query.toString()}`, flags.apiKey ?? io.env.OAO_API_KEY)) as RunList;
        body = since === undefined ? page : startedSince(page, since);
      }
      if (flags.json === true) {
        io.stdout(`${JSON.stringify(body, null, 2)}\n`);
        setExit(ExitCode.OK);
        return;
      }
      const style = styleFor(io, flags.color);
      const list = body.runs;
      if (list.length === 0) io.stdout('No runs.\n');
      else {
        const rows = [['id', 'agent', 'status', 'reason', 'started']];
        for (const r of list) {
          const status = r.status === 'SUCCESS' ? style.green(r.status) : r.status === 'FAILED' ? style.red(r.status) : style.yellow(r.status);
          rows.push([r.executionId, r.agent, status, r.termination?.reason ?? '', r.startedAt]);
        }
        io.stdout(`${table(rows, style)}\n`);
        if (body.total !== undefined && list.length < body.total) io.stdout(style.dim(`${list.length} of ${body.total} runs shown; use --limit for more\n`));
        else if (body.total === undefined && body.nextCursor !== null && body.nextCursor !== undefined) {
          io.stdout(style.dim(`${list.length} runs shown and more match; use --limit for more\n`));
        }
      }
      setExit(ExitCode.OK);
    });

  runs
    .command('show')
    .description('Show one run: of a running OAO server (--server), or kept in a store (--store).')
    .argument('<id>', 'execution id')
    .option('-s, --server <url>', 'the server', serverUrl, 'http://127.0.0.1:3000')
    .option('-k, --api-key <key>', 'bearer key (default: env OAO_API_KEY)')
    .option(STORE_FLAG, `read the run from a store instead of a server: ${STORE_FORMS}`)
    .option('--json', 'print JSON')
    .option('--no-color', 'disable colours')
    .action(async (id: string, flags: { server: string; apiKey?: string; store?: string; json?: boolean; color: boolean }, command: Command) => {
      // `oao runs --store x show <id>` reads the same store as `oao runs show <id> --store x`.
      const parentStore = command.parent?.opts<{ store?: string }>().store;
      const store = storeInsteadOfServer({ store: flags.store ?? parentStore }, command);
      let run: RunState | RunView;
      if (store !== undefined) {
        const view = await readStore(store, io, (opened) => storedRunView(opened, id));
        if (view === undefined) {
          throw new OaoError('OAO_ERR_RUN_NOT_FOUND', `No run "${id}" in ${describeStore(parseStoreUrl(store))}`, { details: { executionId: id } });
        }
        run = view;
      } else {
        run = (await request(`${flags.server}/runs/${encodeURIComponent(id)}`, flags.apiKey ?? io.env.OAO_API_KEY)) as RunState;
      }
      // The run rule: a FAILED run exits 1; a run still going (or interrupted, so not ended) has not failed.
      setExit(run.status === 'FAILED' ? ExitCode.RUN_FAILED : ExitCode.OK);
      if (flags.json === true) {
        io.stdout(`${JSON.stringify(run, null, 2)}\n`);
        return;
      }
      if (run.report !== null && run.report !== undefined) {
        io.stdout(`${formatReport(run.agent, run.report, styleFor(io, flags.color))}\n`);
      } else {
        const c = run.counters;
        io.stdout(`${run.agent}  ${run.status}  state ${run.state ?? '-'} · steps ${c.steps} · tokens ${c.tokens} · tool calls ${c.toolCalls}\n`);
      }
    });

  program
    .command('approvals')
    .description('List the tool calls waiting for a person to approve or deny them on a running OAO server, oldest first.')
    .option('-s, --server <url>', 'the server', serverUrl, 'http://127.0.0.1:3000')
    .option('-k, --api-key <key>', 'bearer key (default: env OAO_API_KEY)')
    .option('--json', 'print JSON')
    .option('--no-color', 'disable colours')
    .action(async (flags: ServerFlags) => {
      const body = (await request(`${flags.server}/approvals`, flags.apiKey ?? io.env.OAO_API_KEY)) as { approvals: readonly PendingApprovalBody[] };
      setExit(ExitCode.OK);
      if (flags.json === true) {
        io.stdout(`${JSON.stringify(body, null, 2)}\n`);
        return;
      }
      const style = styleFor(io, flags.color);
      if (body.approvals.length === 0) {
        io.stdout('No tool calls are waiting for approval.\n');
        return;
      }
      const rows = [['run', 'agent', 'call', 'tool', 'step', 'waiting since', 'args']];
      for (const a of body.approvals) rows.push([a.executionId, a.agentName, a.callId, style.yellow(a.tool), String(a.step), a.requestedAt, jsonPreview(a.args, 60)]);
      io.stdout(`${table(rows, style)}\n`);
      io.stdout(style.dim(`decide with: oao approve <run> <call> [--reason <text>] [--args <json>], or oao deny <run> <call> [--reason <text>]\n`));
    });

  for (const verb of ['approve', 'deny'] as const) {
    const command = program
      .command(verb)
      .description(
        verb === 'approve'
          ? 'Approve a tool call that waits for a decision on a running OAO server: the tool runs and the run goes on.'
          : 'Deny a tool call that waits for a decision on a running OAO server: the tool never runs and the run ends policy_violation (approval_denied).',
      )
      .argument('<run>', 'execution id')
      .argument('<call>', 'the call id (see oao approvals)')
      .option('--reason <text>', 'why; recorded with the decision')
      .option('--by <name>', "who decides; the server adds its API key's name when the key has one (recorded as '<by> (key <name>)')");
    if (verb === 'approve') command.option('--args <json>', 'run the tool with these JSON arguments instead of the requested ones', jsonArgument);
    command
      .option('-s, --server <url>', 'the server', serverUrl, 'http://127.0.0.1:3000')
      .option('-k, --api-key <key>', 'bearer key (default: env OAO_API_KEY)')
      .option('--json', 'print the decision as JSON')
      .action(async (run: string, call: string, flags: DecisionFlags) => {
        const body = {
          decision: verb,
          ...(flags.reason === undefined ? {} : { reason: flags.reason }),
          ...(flags.by === undefined ? {} : { by: flags.by }),
          ...(flags.args === undefined ? {} : { args: flags.args.value }),
        };
        const url = `${flags.server}/runs/${encodeURIComponent(run)}/approvals/${encodeURIComponent(call)}`;
        const decided = (await request(url, flags.apiKey ?? io.env.OAO_API_KEY, { method: 'POST', body })) as DecisionResponse;
        setExit(ExitCode.OK);
        if (flags.json === true) io.stdout(`${JSON.stringify(decided, null, 2)}\n`);
        else io.stdout(`${describeDecision(decided)}\n`);
      });
  }

  program
    .command('replay')
    .description("Rebuild a stored run's report from its event log, with zero agent, tool and model calls; with --verify, re-run the agent's current code against the log.")
    .argument('<id>', 'execution id')
    .option(STORE_FLAG, `the store that holds the run: ${STORE_FORMS}`, DEFAULT_SERVE_STORE)
    .option('--verify <module>', "re-run the agent of this module (as oao run loads it) with every tool and model result served from the log, and fail at the first event that differs")
    .option('-a, --agent <name>', "with --verify: the module's agent to re-run (default: the one named like the recorded agent)")
    .option('--json', 'print the report as JSON')
    .option('--no-color', 'disable colours')
    .action(async (id: string, flags: ReplayFlags) => {
      const location = parseStoreUrl(flags.store);
      if (flags.agent !== undefined && flags.verify === undefined) {
        throw new OaoError('OAO_ERR_CLI_USAGE', '--agent chooses the agent to re-run with --verify <module>; without --verify nothing is re-run.', { details: { field: '--agent' } });
      }
      const mod = flags.verify === undefined ? undefined : await loadAgentModule(flags.verify, io.cwd);
      const { report, events } = await readStore(flags.store, io, async (store) => {
        const stored = await store.get(id);
        if (stored === undefined) {
          throw new OaoError('OAO_ERR_RUN_NOT_FOUND', `No run "${id}" in ${describeStore(location)}`, { details: { executionId: id } });
        }
        const orch = new Orchestrator({ store });
        if (mod === undefined) return { report: await orch.replay(id), events: stored.eventCount };
        const agentName = flags.agent ?? stored.agentName;
        const agent = Object.hasOwn(mod.agents, agentName) ? mod.agents[agentName] : undefined;
        if (agent === undefined) {
          throw new OaoError(
            'OAO_ERR_UNKNOWN_AGENT',
            `No agent "${agentName}" in ${flags.verify ?? ''} to re-run${flags.agent === undefined ? ' (the run recorded that name; choose another with --agent <name>)' : ''}; it exports: ${Object.keys(mod.agents).join(', ')}`,
          );
        }
        const report = await orch.replay(id, { verify: true, agent, ...(mod.tools === undefined ? {} : { tools: mod.tools }) });
        return { report, events: stored.eventCount };
      });
      if (flags.json === true) {
        io.stdout(`${JSON.stringify(report, null, 2)}\n`);
      } else {
        const style = styleFor(io, flags.color);
        io.stdout(`${formatReport(report.agentName, report, style)}\n`);
        const how =
          mod === undefined
            ? 'rebuilt from the log with zero agent, tool and model calls; it matches the recorded report'
            : `re-ran the agent's current code with every tool and model result served from the log; all ${events} events match`;
        io.stdout(style.dim(`replayed ${events} events: ${how}\n`));
      }
      // Replay succeeded whatever the run's own outcome: its report is the recorded one.
      setExit(ExitCode.OK);
    });

  program
    .command('what-if')
    .description("Evaluate a policy against recorded runs, from their logs alone: which runs it would have stopped, where, and what that would have saved.")
    .requiredOption('--policy <file>', 'a JSON file of policy options, as StrictPolicy takes them (a limit left out takes its default)')
    .option(STORE_FLAG, `the store that holds the runs: ${STORE_FORMS}`, DEFAULT_SERVE_STORE)
    .option('--agent <name>', 'only runs of this agent')
    .option('--since <time>', 'only runs started at or after this ISO 8601 time, or this long ago (30m, 12h, 7d)')
    .option('--json', 'print JSON')
    .option('--no-color', 'disable colours')
    .action(async (flags: WhatIfFlags) => {
      parseStoreUrl(flags.store);
      const since = flags.since === undefined ? undefined : parseSince(flags.since, Date.now());
      const policy = await readPolicyFile(flags.policy, io.cwd);
      const filter = { ...(flags.agent === undefined ? {} : { agentName: flags.agent }), ...(since === undefined ? {} : { since }) };
      const result = await readStore(flags.store, io, (store) => whatIf({ store, policy, filter }));
      if (flags.json === true) io.stdout(`${JSON.stringify(result, null, 2)}\n`);
      else io.stdout(formatWhatIf(result, styleFor(io, flags.color)));
      setExit(ExitCode.OK);
    });

  program.addCommand(workerCommand(io, setExit));
  program.addCommand(workflowCommand(io, setExit).copyInheritedSettings(program));

  return program;
}

interface ServerFlags {
  server: string;
  apiKey?: string;
  json?: boolean;
  color: boolean;
}

interface DecisionFlags {
  server: string;
  apiKey?: string;
  reason?: string;
  by?: string;
  /** Boxed: `null` is an argument list like any other JSON. */
  args?: { readonly value: unknown };
  json?: boolean;
}

function jsonArgument(value: string): { readonly value: unknown } {
  try {
    return { value: JSON.parse(value) as unknown };
  } catch (error) {
    throw new InvalidArgumentError(`--args must be JSON, such as '{"to":"team@example.com"}': ${(error as Error).message}`);
  }
}

/** One line of JSON, cut to `max` characters. */
function jsonPreview(value: unknown, max: number): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** What a decision did, in one sentence. */
function describeDecision(decided: DecisionResponse): string {
  const who = decided.by === null ? '' : ` by ${decided.by}`;
  const what = `${decided.decision === 'approved' ? 'Approved' : 'Denied'} tool call ${decided.callId} of run ${decided.executionId}${who}`;
  const effect =
    decided.decision === 'approved' ? 'the tool runs and the run goes on' : 'the tool does not run, and the run ends policy_violation (approval_denied)';
  switch (decided.applied) {
    case 'live':
      return `${what}: ${effect}.`;
    case 'resumed':
      return `${what}: recorded in the run's log, and the server resumed the run (${effect}).`;
    default:
      return `${what}: recorded in the run's log; it takes effect when a process resumes the run.`;
  }
}

interface WhatIfFlags {
  policy: string;
  store: string;
  agent?: string;
  since?: string;
  json?: boolean;
  color: boolean;
}

/**
 * Reads a policy file: JSON policy options. A file that is missing or not JSON is
 * `OAO_ERR_CLI_USAGE`; options that are not a valid policy are `OAO_ERR_INVALID_POLICY` naming the
 * field (`details.field`), both exit 2.
 */
async function readPolicyFile(file: string, cwd: string): Promise<StrictPolicy> {
  const path = resolve(cwd, file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? `No policy file at ${path}` : `Cannot read the policy file ${path}: ${code ?? (error as Error).message}`;
    throw new OaoError('OAO_ERR_CLI_USAGE', why, { details: { field: '--policy', path } });
  }
  let options: unknown;
  try {
    options = JSON.parse(text);
  } catch (error) {
    throw new OaoError('OAO_ERR_CLI_USAGE', `The policy file ${file} is not JSON: ${(error as Error).message}`, { details: { field: '--policy', path } });
  }
  try {
    return new StrictPolicy(options as PolicyOptions);
  } catch (error) {
    if (!OaoError.isInstance(error)) throw error;
    throw new OaoError(error.code, `${file}: ${error.message}`, { details: { ...error.details, path } });
  }
}

/** The verdicts as a table, then the totals and why some runs cannot be judged. */
function formatWhatIf(result: WhatIfResult, style: Style): string {
  if (result.runs.length === 0) return 'No runs to evaluate.\n';
  const rows = [['id', 'agent', 'same', 'would stop at', 'saved steps', 'tokens', 'tool calls']];
  for (const run of result.runs) {
    const same = run.same === true ? style.green('yes') : run.same === false ? style.red('no') : style.yellow('?');
    const stop = run.wouldStop === null ? '-' : `seq ${run.wouldStop.seq} ${run.wouldStop.rule}`;
    rows.push([run.executionId, run.agentName, same, stop, String(run.saved.steps), String(run.saved.tokens), String(run.saved.toolCalls)]);
  }
  const { totals } = result;
  const lines = [
    table(rows, style),
    `${totals.runs} run${totals.runs === 1 ? '' : 's'}: ${totals.same} the same, ${totals.changed} changed, ${totals.unknown} unknown · ` +
      `stopping them would have saved ${totals.saved.steps} steps, ${totals.saved.tokens} tokens, ${totals.saved.toolCalls} tool calls`,
  ];
  for (const run of result.runs) if (run.reason !== undefined) lines.push(style.dim(`? ${run.executionId}: ${run.reason}`));
  return `${lines.join('\n')}\n`;
}

interface ReplayFlags {
  store: string;
  verify?: string;
  agent?: string;
  json?: boolean;
  color: boolean;
}

interface RunsFlags {
  server: string;
  apiKey?: string;
  store?: string;
  status?: StoredRunStatus;
  agent?: string;
  since?: string;
  limit: number;
  json?: boolean;
  color: boolean;
}

/**
 * The runs of a server's page that started at or after `since`. Runs come newest first, so those
 * are the page's first ones, and the newest `limit` runs since then are all on the first page.
 */
function startedSince(page: RunList, since: number): RunList {
  const runs = page.runs.filter((run) => Date.parse(run.startedAt) >= since);
  return runs.length === page.runs.length ? page : { runs, total: runs.length, nextCursor: null };
}

/** `--store` when given; `--server` too is bad usage (one source of runs per command). */
function storeInsteadOfServer(flags: { store?: string }, command: Command): string | undefined {
  if (flags.store === undefined) return undefined;
  if (command.getOptionValueSource('server') === 'cli') {
    throw new OaoError('OAO_ERR_CLI_USAGE', 'Pass --server <url> or --store <url>, not both: runs are read from one place.', { details: { field: '--store' } });
  }
  parseStoreUrl(flags.store);
  return flags.store;
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

/** A store that exists but cannot be used at all: written by a newer version, or damaged. */
class StoreOpenError extends Error {
  constructor(readonly original: OaoError) {
    super(original.message);
  }
}

/** `oao serve` failed to start for a reason that is not about the address or port. */
class ServerStartError extends Error {
  constructor(readonly original: unknown) {
    super(`Could not start the server: ${original instanceof Error ? original.message : String(original)}`);
  }
}

async function request(url: string, apiKey: string | undefined, send?: { readonly method: 'POST'; readonly body: unknown }): Promise<unknown> {
  let response: Response;
  try {
    const headers: Record<string, string> = apiKey === undefined ? {} : { authorization: `Bearer ${apiKey}` };
    response = await fetch(
      url,
      send === undefined ? { headers } : { method: send.method, headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(send.body) },
    );
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
  /** The typed error's details (`--json` only): the run and seq of a damaged log or a divergence, say. */
  readonly details?: Readonly<Record<string, unknown>>;
  /** Only for defects in oao itself. */
  readonly stack?: string;
}

/** Startup failures that are the caller's to fix (flags), not the machine's. */
const USAGE_CODES = new Set([
  'OAO_ERR_CLI_USAGE',
  'OAO_ERR_INVALID_MODULE',
  'OAO_ERR_UNKNOWN_AGENT',
  'OAO_ERR_INVALID_POLICY',
  'OAO_ERR_INVALID_ARGUMENT',
  'OAO_ERR_INSECURE_BIND',
  'OAO_ERR_UNKNOWN_WORKFLOW',
  'OAO_ERR_INVALID_WORKFLOW',
  'OAO_ERR_WORKFLOW_CYCLE',
]);

/** Details that survive JSON (they are printed with `--json`); none when they would not. */
function jsonDetails(details: Readonly<Record<string, unknown>> | undefined): { details?: Readonly<Record<string, unknown>> } {
  if (details === undefined) return {};
  try {
    return { details: JSON.parse(JSON.stringify(details)) as Record<string, unknown> };
  } catch {
    return {};
  }
}

/** Exit codes of errors that are not bad usage. */
const EXIT_BY_CODE: Partial<Record<string, ExitCodeValue>> = {
  OAO_ERR_SERVER_UNREACHABLE: ExitCode.UNREACHABLE,
  OAO_ERR_STORE_UNAVAILABLE: ExitCode.UNREACHABLE,
  OAO_ERR_LISTEN_FAILED: ExitCode.COULD_NOT_START,
  OAO_ERR_MISSING_PACKAGE: ExitCode.COULD_NOT_START,
  OAO_ERR_STORE: ExitCode.COULD_NOT_START,
  // A stored log that cannot be read back, or a re-run that differs from it: the replay failed.
  OAO_ERR_LOG_CORRUPT: ExitCode.RUN_FAILED,
  OAO_ERR_LOG_VERSION: ExitCode.RUN_FAILED,
  OAO_ERR_REPLAY_DIVERGED: ExitCode.RUN_FAILED,
};

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
  if (error instanceof StoreOpenError) {
    return { code: error.original.code, message: error.message, exitCode: ExitCode.COULD_NOT_START };
  }
  if (OaoError.isInstance(error)) {
    return {
      code: error.code,
      message: error.message,
      exitCode: EXIT_BY_CODE[error.code] ?? ExitCode.USAGE,
      ...jsonDetails(error.details),
    };
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
