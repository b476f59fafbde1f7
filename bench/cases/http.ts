import { createRequire } from 'node:module';
import { Orchestrator, type ExecutionReport, type PolicyOptions } from 'open-agent-orchestrator';
import { startServer } from 'open-agent-orchestrator/server';
import { DummyAgent, TASK } from '../baselines.js';
import { summarize, type BenchEnv, type BenchRatio, type BenchRow, type CustomCase } from '../harness.js';

/**
 * What the HTTP service costs on top of the runs it serves: POST /run of the seed's trivial agent
 * over loopback, driven by autocannon (10 connections, 127.0.0.1 only), against the same runs
 * started in process by 10 concurrent callers of `orch.run()` with the same policy. Each
 * repetition measures both sides for the same wall time, one after the other.
 *
 * autocannon records latency in whole milliseconds: the latency rows are that coarse.
 */

const CONNECTIONS = 10;
const POLICY: PolicyOptions = { maxSteps: 3 };

interface AutocannonResult {
  /** Seconds. */
  readonly duration: number;
  readonly requests: { readonly total: number };
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
  readonly latency: { readonly p50: number; readonly p99: number };
}

type Autocannon = (options: {
  url: string;
  connections: number;
  duration: number;
  method: 'POST';
  headers: Record<string, string>;
  body: string;
}) => Promise<AutocannonResult>;

// autocannon ships no type declarations; this is the part of its API the bench uses.
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

interface Sample {
  readonly perSecond: number;
  /** Nanoseconds. */
  readonly p50: number;
  readonly p99: number;
}

async function overHttp(url: string, seconds: number): Promise<Sample> {
  const result = await autocannon({
    url: `${url}/run`,
    connections: CONNECTIONS,
    duration: seconds,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ agent: 'dummy', task: TASK }),
  });
  if (result.errors > 0 || result.timeouts > 0 || result.non2xx > 0 || result.requests.total === 0) {
    throw new Error(`bench: POST /run failed (${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx answers)`);
  }
  return {
    perSecond: result.requests.total / result.duration,
    p50: result.latency.p50 * 1e6,
    p99: result.latency.p99 * 1e6,
  };
}

async function inProcess(orch: Orchestrator, seconds: number): Promise<Sample> {
  const latencies: number[] = [];
  const deadline = performance.now() + seconds * 1_000;
  const started = performance.now();
  const caller = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      const report: ExecutionReport = await orch.run({ agent: new DummyAgent(), task: TASK });
      latencies.push(performance.now() - t0);
      if (report.status !== 'SUCCESS') throw new Error(`bench: an in-process run ended ${report.status}`);
    }
  };
  await Promise.all(Array.from({ length: CONNECTIONS }, caller));
  const elapsed = (performance.now() - started) / 1_000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => (latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0) * 1e6;
  return { perSecond: latencies.length / elapsed, p50: at(0.5), p99: at(0.99) };
}

function row(id: string, label: string, description: string, kind: 'time' | 'throughput', unit: string, samples: number[]): BenchRow {
  return { id, group: 'http', label, description, kind, unit, ...summarize(samples), samples, size: CONNECTIONS };
}

export const httpCase: CustomCase = {
  kind: 'custom',
  id: 'http',
  group: 'http',
  label: 'HTTP service: POST /run vs in process',
  async run(env: BenchEnv) {
    const seconds = env.quick ? 1 : 2;
    const repetitions = env.quick ? 2 : 5;
    const orch = new Orchestrator({ policy: POLICY });
    const server = await startServer({ agents: { dummy: new DummyAgent() }, policy: POLICY, apiKeys: [], host: '127.0.0.1', port: 0 });
    const http: Sample[] = [];
    const local: Sample[] = [];
    try {
      env.log('warming up http');
      await overHttp(server.url, 1);
      await inProcess(orch, 1);
      for (let rep = 0; rep < repetitions; rep++) {
        env.log(`http repetition ${rep + 1}/${repetitions}`);
        // Alternate which side goes first, so neither always runs in the other's GC wake.
        if (rep % 2 === 0) {
          http.push(await overHttp(server.url, seconds));
          local.push(await inProcess(orch, seconds));
        } else {
          local.push(await inProcess(orch, seconds));
          http.push(await overHttp(server.url, seconds));
        }
      }
    } finally {
      await server.close();
    }
    const http50 = 'POST /run with the trivial agent, over loopback (autocannon, 10 connections, whole-ms latency)';
    const local50 = 'The same runs started in process: 10 concurrent callers of orch.run() with the same policy';
    return [
      row('http.run.rps', 'HTTP POST /run: requests/s', http50, 'throughput', 'req/s', http.map((s) => s.perSecond)),
      row('http.inprocess.rps', 'in process orch.run(): runs/s', local50, 'throughput', 'runs/s', local.map((s) => s.perSecond)),
      row('http.run.p50', 'HTTP POST /run: p50 latency', http50, 'time', 'ns/op', http.map((s) => s.p50)),
      row('http.inprocess.p50', 'in process orch.run(): p50 latency', local50, 'time', 'ns/op', local.map((s) => s.p50)),
      row('http.run.p99', 'HTTP POST /run: p99 latency', http50, 'time', 'ns/op', http.map((s) => s.p99)),
      row('http.inprocess.p99', 'in process orch.run(): p99 latency', local50, 'time', 'ns/op', local.map((s) => s.p99)),
    ];
  },
};

export const httpRatios: readonly BenchRatio[] = [
  { id: 'http.throughputCost', label: 'in-process runs/s over HTTP requests/s', numerator: 'http.inprocess.rps', denominator: 'http.run.rps' },
  { id: 'http.p50Cost', label: 'HTTP p50 latency over in-process p50', numerator: 'http.run.p50', denominator: 'http.inprocess.p50' },
  { id: 'http.p99Cost', label: 'HTTP p99 latency over in-process p99', numerator: 'http.run.p99', denominator: 'http.inprocess.p99' },
];
