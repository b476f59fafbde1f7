import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { StringOutputParser } from '@langchain/core/output_parsers';
import { ChatPromptTemplate } from '@langchain/core/prompts';
import { FakeListChatModel } from '@langchain/core/utils/testing';
import { Orchestrator, createMemoryStore } from 'open-agent-orchestrator';
import { fromRunnable } from 'open-agent-orchestrator/langchain';
import { createSqliteStore } from 'open-agent-orchestrator/sqlite';
import { createActor, toPromise } from 'xstate';
import { bareLifecycleMachine, DummyAgent, TASK } from './baselines.js';

/**
 * A steady loop of one bench case, for a CPU profile of it alone:
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/oao-prof --import tsx --conditions=oao-source \
 *     bench/profile-governed.ts [--case governed|memory|quiet|sqlite|replay-sqlite|sync|bare|langchain|langchain-direct|langchain-raw] [--seconds 10]
 *   npx tsx bench/cpuprofile-summary.ts /tmp/oao-prof/<file>.cpuprofile
 *
 * It warms up for a second (so the profile is of optimized code), then runs the case back to back.
 */

const { values } = parseArgs({
  options: {
    case: { type: 'string', default: 'governed' },
    seconds: { type: 'string', default: '10' },
  },
});

const agent = new DummyAgent();
const orch = new Orchestrator();
orch.events$.subscribe(() => {});

const stored = new Orchestrator({ store: createMemoryStore({ maxRuns: 1_000 }) });
const quiet = new Orchestrator({ store: false });
// The bench's durable.sqlite row: a SQLite file (WAL, synchronous NORMAL) in a temp directory.
const sqliteDir = mkdtempSync(join(tmpdir(), 'oao-profile-'));
process.on('exit', () => rmSync(sqliteDir, { recursive: true, force: true }));
const sqlite = new Orchestrator({ store: createSqliteStore({ path: join(sqliteDir, 'runs.db') }) });

// The bench's LangChain chain (bench/cases/langchain.ts): raw, governed, and passed straight to run().
const rawChain = ChatPromptTemplate.fromTemplate('Explain {topic} in one line.')
  .pipe(new FakeListChatModel({ responses: ['Governed.'] }))
  .pipe(new StringOutputParser());
const chain = fromRunnable(rawChain);
const TOPIC = { topic: 'agent governance' };

// The bench's replay row: orch.replay(id) cycling over runs recorded in the SQLite file.
const recorded: string[] = [];
let nextReplay = 0;
async function record(): Promise<void> {
  for (let i = 0; i < 1_000; i++) recorded.push((await sqlite.run({ agent, task: TASK })).executionId);
}

const ops: Record<string, () => unknown> = {
  langchain: () => orch.run({ agent: chain, task: TOPIC }),
  'langchain-direct': () => orch.run({ agent: rawChain, task: TOPIC }),
  'langchain-raw': () => rawChain.invoke(TOPIC),
  governed: () => orch.run({ agent, task: TASK }),
  memory: () => stored.run({ agent, task: TASK }),
  quiet: () => quiet.run({ agent, task: TASK }),
  sqlite: () => sqlite.run({ agent, task: TASK }),
  'replay-sqlite': () => sqlite.replay(recorded[nextReplay++ % recorded.length] as string),
  sync: () => orch.runSync({ agent, task: TASK }),
  bare: () => toPromise(createActor(bareLifecycleMachine, { input: { agent, task: TASK } }).start()),
};

const op = ops[values.case ?? 'governed'];
if (op === undefined) throw new Error(`Expected --case to be one of ${Object.keys(ops).join(', ')}, got ${values.case}`);
const seconds = Number(values.seconds);
if (!Number.isFinite(seconds) || seconds <= 0) throw new Error(`Expected --seconds to be a positive number, got ${values.seconds}`);

async function loopFor(ms: number): Promise<number> {
  const end = performance.now() + ms;
  let runs = 0;
  while (performance.now() < end) {
    for (let i = 0; i < 100; i++) await op?.();
    runs += 100;
  }
  return runs;
}

if (values.case === 'replay-sqlite') await record();
await loopFor(1_000);
const started = performance.now();
const runs = await loopFor(seconds * 1_000);
const elapsed = performance.now() - started;
process.stderr.write(`${values.case}: ${runs} runs in ${(elapsed / 1000).toFixed(1)} s, ${((elapsed * 1000) / runs).toFixed(1)} µs/run\n`);
