import { Command, InvalidArgumentError } from 'commander';
import { OaoError } from '../errors.js';
import type { RunStore } from '../store/RunStore.js';
import { ExitCode } from './exitCodes.js';
import { loadAgentModule, loadPluginModules } from './loadModule.js';
import { describeStore, openStore, parseStoreUrl, STORE_FORMS } from './openStore.js';
import { requirePackages } from './optionalPackages.js';
import type { CliIO } from './program.js';

/** The optional peer packages the queue (`--redis`, `oao worker`) needs. */
export const QUEUE_PACKAGES = ['bullmq', 'ioredis'] as const;

interface WorkerFlags {
  redis: string;
  store: string;
  concurrency: number;
  queueName?: string;
  lockDurationMs?: number;
  plugin?: string[];
}

function positive(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a whole number from 1 up, got "${value}".`);
    return n;
  };
}

/** Checks `--redis`: a redis:// or rediss:// URL. */
export function redisUrl(value: string): string {
  if (!/^rediss?:\/\//.test(value) || !URL.canParse(value)) throw new InvalidArgumentError(`--redis must be a redis:// or rediss:// URL, got "${value}".`);
  return value;
}

/**
 * `oao worker <module> --redis <url> --store <url>`: takes runs from the queue that `oao serve
 * --redis` (or `createQueue()`) fills, and runs them with the module's agents, recording them in
 * the store every worker and server shares.
 */
export function workerCommand(io: CliIO, setExit: (code: number) => void): Command {
  return new Command('worker')
    .description('Run the agents of a module on runs taken from a Redis queue (see docs/distributed.md).')
    .argument('<module>', 'a .js or .ts module exporting `agents` (and optionally `tools`, `policy`)')
    .requiredOption('--redis <url>', 'the Redis the queue lives on (redis://host:port)', redisUrl)
    .requiredOption('--store <url>', `where the runs are recorded, shared with the servers: ${STORE_FORMS}`)
    .option('-c, --concurrency <n>', 'runs this worker executes at once', positive('--concurrency'), 1)
    .option('--queue-name <name>', 'the queue name, as the servers use it (default oao-runs)')
    .option('--plugin <module>', 'govern every run with the plugin(s) this module exports, as the servers do (definePlugin(); repeatable)', (value: string, previous: string[] = []) => [...previous, value])
    .option('--lock-duration-ms <ms>', "how long a run's job stays locked without renewal: another worker takes a dead worker's runs after about this long plus as much again (default 5000)", positive('--lock-duration-ms'))
    .action(async (modulePath: string, flags: WorkerFlags) => {
      const location = parseStoreUrl(flags.store);
      if (location.kind === 'memory') {
        throw new OaoError('OAO_ERR_CLI_USAGE', '--store memory cannot be shared with the servers: give a postgres:// URL (or sqlite:<path> on one host)', { details: { field: '--store' } });
      }
      const mod = await loadAgentModule(modulePath, io.cwd);
      const plugins = await loadPluginModules(flags.plugin ?? [], io.cwd);
      await requirePackages('oao worker', QUEUE_PACKAGES);
      const { createWorker } = await import('../queue/index.js');
      const store: RunStore = await openStore(location, { cwd: io.cwd });
      let worker;
      try {
        worker = await createWorker({
          connection: flags.redis,
          store,
          agents: mod.agents,
          concurrency: flags.concurrency,
          ...(flags.queueName === undefined ? {} : { queueName: flags.queueName }),
          ...(flags.lockDurationMs === undefined ? {} : { lockDuration: flags.lockDurationMs, stalledInterval: flags.lockDurationMs }),
          ...(mod.tools === undefined ? {} : { tools: mod.tools }),
          ...(mod.policy === undefined ? {} : { policy: mod.policy }),
          ...(plugins.length === 0 ? {} : { plugins }),
          onError: (error, message) => io.stderr(`error: ${message}: ${error instanceof Error ? error.message : String(error)}\n`),
        });
      } catch (error) {
        await Promise.resolve(store.close()).catch(() => {});
        throw error;
      }
      io.stdout(
        `OAO worker ${worker.owner} taking runs from ${flags.redis} (queue ${flags.queueName ?? 'oao-runs'}; agents: ${Object.keys(mod.agents).join(', ')}; ` +
          `concurrency ${flags.concurrency}; store ${describeStore(location)})\n`,
      );
      await (io.untilStopped?.() ?? new Promise<void>(() => {}));
      await worker.close();
      await Promise.resolve(store.close()).catch(() => {});
      io.stdout('OAO worker stopped\n');
      setExit(ExitCode.OK);
    });
}
