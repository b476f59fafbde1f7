import { Command, InvalidArgumentError } from 'commander';
import { OaoError } from '../errors.js';
import { Orchestrator } from '../Orchestrator.js';
import type { RunStore } from '../store/RunStore.js';
import { openStore, parseStoreUrl, STORE_FORMS } from './openStore.js';
import type { WorkflowResult } from '../workflow/WorkflowRun.js';
import { ExitCode } from './exitCodes.js';
import { loadAgentModule } from './loadModule.js';
import { createStyle, type Style } from './style.js';
import type { CliIO } from './program.js';

interface WorkflowFlags {
  input?: { readonly value: unknown };
  concurrency: number;
  failFast?: boolean;
  maxTokens?: number;
  json?: boolean;
  color: boolean;
  store?: string;
  runId?: string;
  resume?: string;
}

function positive(name: string, min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min) {
      throw new InvalidArgumentError(`${name} must be a whole number from ${min} up, got "${value}".`);
    }
    return n;
  };
}

function json(value: string): { readonly value: unknown } {
  try {
    return { value: JSON.parse(value) as unknown };
  } catch {
    throw new InvalidArgumentError(`--input must be JSON, got ${value.length > 60 ? `${value.slice(0, 60)}…` : value}`);
  }
}

/** The node table: one line per node with its status, runs, tokens and why it was skipped or failed. */
export function formatWorkflowResult(result: WorkflowResult, style: Style): string {
  const rows = Object.entries(result.nodes).map(([name, node]) => {
    const reports = node.reports ?? (node.report === undefined ? [] : [node.report]);
    const tokens = reports.reduce((sum, report) => sum + report.tokenUsage.total, 0);
    const why =
      node.reason !== undefined
        ? `${node.reason.kind}${node.reason.node === undefined ? '' : ` (${node.reason.node})`}`
        : node.error !== undefined
          ? node.error.message
          : reports.find((report) => report.status === 'FAILED')?.termination.reason ?? '';
    return [name, node.status, String(reports.length), String(tokens), why] as const;
  });
  const header = ['node', 'status', 'runs', 'tokens', 'reason'] as const;
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]?.length ?? 0)));
  const pad = (cells: readonly string[]) => cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  const paint = (status: string, text: string) => (status === 'SUCCESS' ? style.green(text) : status === 'FAILED' ? style.red(text) : style.yellow(text));
  const lines = [style.bold(pad(header)), ...rows.map((row) => paint(row[1], pad(row)))];
  lines.push(
    '',
    `${style.bold(`workflow ${result.workflow}`)}: ${result.status === 'SUCCESS' ? style.green(result.status) : style.red(result.status)} · ${result.counts.succeeded} succeeded · ${result.counts.failed} failed · ${result.counts.skipped} skipped · ${result.tokenUsage.total} tokens · ${Math.round(result.executionTimeMs)} ms`,
  );
  if (result.halted !== null) lines.push(`halted (${result.halted.kind}): ${result.halted.reason}`);
  return lines.join('\n');
}

/** `oao workflow <module> <name>`: runs one of a module's workflows and prints the node table. */
export function workflowCommand(io: CliIO, setExit: (code: number) => void): Command {
  return new Command('workflow')
    .description("Run one of a module's workflows (its `workflows` export) and print the node table.")
    .argument('<module>', 'a .js or .ts module exporting `workflows` (made by defineWorkflow)')
    .argument('<name>', 'the workflow to run')
    .option('-i, --input <json>', 'the workflow input, as JSON', json)
    .option('-c, --concurrency <n>', 'node runs at once', positive('--concurrency', 1), 4)
    .option('--fail-fast', 'cancel the rest on the first failed node')
    .option('--max-tokens <n>', 'a token budget shared by every node run', positive('--max-tokens', 0))
    .option('--json', 'print the result as JSON')
    .option('--no-color', 'disable colours')
    .option('--store <url>', `record the workflow and its node runs durably: ${STORE_FORMS}`)
    .option('--run-id <id>', 'the workflow run id (default: generated); node runs are <id>:<node>')
    .option('--resume <id>', 'continue the workflow run <id> from --store after its process died, instead of starting one')
    .action(async (modulePath: string, name: string, flags: WorkflowFlags) => {
      if (flags.resume !== undefined && (flags.store === undefined || flags.store === 'memory')) {
        throw new OaoError('OAO_ERR_CLI_USAGE', '--resume reads the workflow run from the store it was recorded in: give --store sqlite:<path> or a postgres:// URL', {
          details: { field: '--store' },
        });
      }
      if (flags.resume !== undefined && (flags.input !== undefined || flags.runId !== undefined)) {
        throw new OaoError('OAO_ERR_CLI_USAGE', '--resume continues a recorded workflow run with its recorded input: leave out --input and --run-id', {
          details: { field: flags.input !== undefined ? '--input' : '--run-id' },
        });
      }
      const location = flags.store === undefined ? undefined : parseStoreUrl(flags.store);
      const mod = await loadAgentModule(modulePath, io.cwd);
      const workflow = Object.hasOwn(mod.workflows, name) ? mod.workflows[name] : undefined;
      if (workflow === undefined) {
        const names = Object.keys(mod.workflows);
        throw new OaoError('OAO_ERR_UNKNOWN_WORKFLOW', `No workflow "${name}" in ${modulePath}; it exports: ${names.length === 0 ? 'none' : names.join(', ')}`, {
          details: { workflow: name, workflows: names },
        });
      }
      const store: RunStore | undefined = location === undefined ? undefined : await openStore(location, { cwd: io.cwd });
      let result: WorkflowResult;
      try {
        const orch = new Orchestrator({ ...(mod.policy === undefined ? {} : { policy: mod.policy }), ...(store === undefined ? {} : { store }) });
        result =
          flags.resume !== undefined
            ? await orch.resumeWorkflow(flags.resume, workflow, { maxConcurrency: flags.concurrency })
            : await orch.runWorkflow(workflow, flags.input?.value ?? null, {
                maxConcurrency: flags.concurrency,
                ...(flags.failFast === true ? { onFailure: 'fail-fast' as const } : {}),
                ...(flags.maxTokens === undefined ? {} : { budget: { maxTokens: flags.maxTokens } }),
                ...(flags.runId === undefined ? {} : { workflowRunId: flags.runId }),
              });
      } finally {
        await Promise.resolve(store?.close()).catch(() => {});
      }
      const style = createStyle(flags.color && io.isTTY && io.env.NO_COLOR === undefined);
      io.stdout(flags.json === true ? `${JSON.stringify(result, null, 2)}\n` : `${formatWorkflowResult(result, style)}\n`);
      setExit(result.status === 'SUCCESS' ? ExitCode.OK : ExitCode.RUN_FAILED);
    });
}
