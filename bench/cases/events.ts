import { Orchestrator, type AgentContext, type OaoEvent } from 'open-agent-orchestrator';
import { Subject } from 'rxjs';
import { TASK } from '../baselines.js';
import {
  runBatch,
  seededRandom,
  shuffled,
  summarize,
  warmUpAndCalibrate,
  type BenchEnv,
  type BenchRatio,
  type BenchRow,
  type CustomCase,
  type Op,
  type OpMode,
} from '../harness.js';

/**
 * Event throughput: how many events per second reach one subscriber, end to end. The agent reports
 * spend with `ctx.usage(1)` many times per step; each report is parsed, charged to the ledger and
 * checked against the token budget, and becomes one TOKEN_USAGE event (envelope, counters, recorded
 * in the run) delivered synchronously to the subscriber. So the figure is the rate at which a
 * governed agent can produce observable, budget-checked events, not the speed of RxJS alone (the
 * floor row gives that).
 */

/** Reports per step: 1,000 tokens, well inside the default budget of 4,000. */
export const USAGE_REPORTS_PER_STEP = 1_000;

const usageAgent = {
  name: 'UsageAgent',
  async invoke(task: string, ctx: AgentContext): Promise<{ output: string }> {
    // Yield once, so a handle.events$ subscriber attached right after start() sees the reports live.
    await Promise.resolve();
    for (let i = 0; i < USAGE_REPORTS_PER_STEP; i++) ctx.usage(1);
    return { output: 'Processed: ' + task };
  },
};

interface ThroughputSource {
  readonly id: string;
  readonly label: string;
  readonly description: string;
  readonly mode: OpMode;
  /** The operation, and a counter of the events the subscriber has received so far. */
  setup(): Promise<{ readonly op: Op; readonly delivered: () => number }>;
}

function checkRun(status: string, tokens: number): void {
  if (status !== 'SUCCESS' || tokens !== USAGE_REPORTS_PER_STEP) {
    throw new Error(`bench: a usage run ended ${status} with ${tokens} tokens`);
  }
}

const sources: readonly ThroughputSource[] = [
  {
    id: 'events.orchestrator',
    label: 'events -> orch.events$ subscriber',
    description: `await orch.run() of an agent making ${USAGE_REPORTS_PER_STEP} ctx.usage(1) calls in its one step; one subscriber on orch.events$.`,
    mode: 'async',
    async setup() {
      const orch = new Orchestrator();
      let count = 0;
      orch.events$.subscribe(() => {
        count++;
      });
      const report = await orch.run({ agent: usageAgent, task: TASK });
      checkRun(report.status, report.tokenUsage.total);
      return { op: () => orch.run({ agent: usageAgent, task: TASK }), delivered: () => count };
    },
  },
  {
    id: 'events.handle',
    label: 'events -> handle.events$ subscriber',
    description: 'The same runs started with orch.start(); one subscriber on each run\'s handle.events$ (replay, then live).',
    mode: 'async',
    async setup() {
      const orch = new Orchestrator();
      let count = 0;
      const runOnce = () => {
        const handle = orch.start({ agent: usageAgent, task: TASK });
        handle.events$.subscribe(() => {
          count++;
        });
        return handle.report;
      };
      const report = await runOnce();
      checkRun(report.status, report.tokenUsage.total);
      return { op: runOnce, delivered: () => count };
    },
  },
  {
    id: 'events.subjectFloor',
    label: 'floor: RxJS Subject.next -> subscriber',
    description: 'A recorded TOKEN_USAGE event pushed through an RxJS Subject to one subscriber: delivery alone.',
    mode: 'sync',
    async setup() {
      const orch = new Orchestrator();
      const handle = orch.start({ agent: usageAgent, task: TASK });
      await handle.report;
      const event = handle.events().find((e) => e.type === 'TOKEN_USAGE');
      if (event === undefined) throw new Error('bench: the usage run recorded no TOKEN_USAGE event');
      const subject = new Subject<OaoEvent>();
      let count = 0;
      subject.subscribe(() => {
        count++;
      });
      return { op: () => subject.next(event), delivered: () => count };
    },
  },
];

export const eventsCase: CustomCase = {
  kind: 'custom',
  id: 'events',
  group: 'events',
  label: 'event throughput',
  async run(env: BenchEnv) {
    const options = { warmupMs: env.quick ? 100 : 400, batchMs: env.quick ? 30 : 50, repetitions: env.quick ? 5 : 15 };
    const prepared = [];
    for (const source of sources) {
      const { op, delivered } = await source.setup();
      env.log(`warming up ${source.id}`);
      const size = await warmUpAndCalibrate(op, source.mode, options);
      prepared.push({ source, op, delivered, size, samples: [] as number[] });
    }
    const random = seededRandom(0xe7);
    for (let rep = 0; rep < options.repetitions; rep++) {
      env.log(`events repetition ${rep + 1}/${options.repetitions}`);
      for (const entry of shuffled(prepared, random)) {
        const before = entry.delivered();
        const elapsedNs = await runBatch(entry.op, entry.source.mode, entry.size);
        entry.samples.push(((entry.delivered() - before) * 1e9) / elapsedNs);
      }
    }
    return prepared.map(
      ({ source, size, samples }): BenchRow => ({
        id: source.id,
        group: 'events',
        label: source.label,
        description: source.description,
        kind: 'throughput',
        unit: 'events/s',
        ...summarize(samples),
        samples,
        size,
      }),
    );
  },
};

export const eventsRatios: readonly BenchRatio[] = [];
