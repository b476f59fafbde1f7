import { describe, expect, it } from 'vitest';
import { postgresCase } from '../bench/cases/durable.js';
import { a2aAgentUrl, httpAgentUrl } from '../bench/cases/remote.js';
import { computeDifferences, computeRatios, computeTargets, summarize, type BenchEnv, type BenchRow } from '../bench/harness.js';
import { freePort } from './store/pgTestDb.js';

/**
 * The bench's bookkeeping, not its timings: rate targets read time rows as operations per second
 * and throughput rows as they are; a row that could not be measured is printed as skipped and
 * left out of every ratio and target instead of failing the bench.
 */

function row(id: string, kind: BenchRow['kind'], samples: number[], skipped?: string): BenchRow {
  const unit = kind === 'time' ? 'ns/op' : kind === 'heap' ? 'bytes/run' : 'runs/s';
  const summary = samples.length > 0 ? summarize(samples) : { median: Number.NaN, min: Number.NaN, max: Number.NaN, p25: Number.NaN, p75: Number.NaN };
  return { id, group: 'g', label: id, description: id, kind, unit, ...summary, samples, ...(skipped === undefined ? {} : { skipped }) };
}

const quietEnv: BenchEnv = { gc: () => {}, quick: true, log: () => {} };

describe('bench rate targets', () => {
  it('reads a time row as 1e9 / median and a throughput row as its median', () => {
    const rows = [row('fast', 'time', [200_000, 250_000, 300_000]), row('pg', 'throughput', [900, 1_000, 1_100])];
    const results = computeTargets(
      [
        { id: 'a', label: 'fast enough', row: 'fast', atLeastPerSecond: 3_000 },
        { id: 'b', label: 'too slow', row: 'pg', atLeastPerSecond: 1_500 },
      ],
      rows,
    );
    expect(results.map((r) => [r.id, r.perSecond, r.met])).toEqual([
      ['a', 4_000, true],
      ['b', 1_000, false],
    ]);
  });

  it('leaves out targets on skipped, missing and heap rows, and ratios naming a skipped row', () => {
    const rows = [row('down', 'throughput', [], 'not reachable'), row('heap', 'heap', [10_000]), row('base', 'time', [100])];
    expect(
      computeTargets(
        [
          { id: 'a', label: 'skipped', row: 'down', atLeastPerSecond: 1 },
          { id: 'b', label: 'missing', row: 'nowhere', atLeastPerSecond: 1 },
          { id: 'c', label: 'heap', row: 'heap', atLeastPerSecond: 1 },
        ],
        rows,
      ),
    ).toEqual([]);
    expect(computeRatios([{ id: 'r', label: 'r', numerator: 'down', denominator: 'base', target: 2 }], rows)).toEqual([]);
  });
});

describe('bench differences', () => {
  it('subtracts medians, pairs the repetitions, and checks the limit', () => {
    const rows = [row('governed', 'time', [700_000, 500_000, 600_000]), row('trivial', 'time', [150_000, 100_000, 140_000])];
    const [limited, open] = computeDifferences(
      [
        { id: 'a', label: 'governed - trivial', minuend: 'governed', subtrahend: 'trivial', atMostNs: 100_000 },
        { id: 'b', label: 'trivial - governed', minuend: 'trivial', subtrahend: 'governed' },
      ],
      rows,
    );
    expect(limited?.value).toBe(600_000 - 140_000);
    // Per repetition: 550k, 400k, 460k.
    expect(limited?.paired).toMatchObject({ median: 460_000, min: 400_000, max: 550_000 });
    expect(limited?.met).toBe(false);
    expect(open?.value).toBe(-460_000);
    expect(open?.met).toBeUndefined();
    expect(computeDifferences([{ id: 'c', label: 'c', minuend: 'trivial', subtrahend: 'governed', atMostNs: 0 }], rows)[0]?.met).toBe(true);
  });

  it('leaves out differences naming a skipped, missing or heap row', () => {
    const rows = [row('down', 'time', [], 'not reachable'), row('heap', 'heap', [10_000]), row('base', 'time', [100])];
    expect(
      computeDifferences(
        [
          { id: 'a', label: 'a', minuend: 'down', subtrahend: 'base' },
          { id: 'b', label: 'b', minuend: 'heap', subtrahend: 'base' },
          { id: 'c', label: 'c', minuend: 'base', subtrahend: 'gone' },
        ],
        rows,
      ),
    ).toEqual([]);
  });
});

describe('bench loopback agents', () => {
  // A server that announces a keep-alive timeout closes an idle connection when it runs out, which
  // can cross the client reusing it between two batches of a case (ECONNRESET ended a bench run).
  it('keep idle connections open: no keep-alive timeout is announced', { timeout: 15_000 }, async () => {
    const http = await fetch(await httpAgentUrl(), { method: 'POST', body: '{}' });
    await http.json();
    expect(http.headers.get('connection')).toBe('keep-alive');
    expect(http.headers.get('keep-alive')).toBeNull();
    const a2a = await fetch(`${await a2aAgentUrl()}/.well-known/agent-card.json`);
    await a2a.json();
    expect(a2a.headers.get('connection')).toBe('keep-alive');
    expect(a2a.headers.get('keep-alive')).toBeNull();
  });
});

describe('bench PostgreSQL rows', () => {
  it('come back skipped, with the reason, when the server cannot be reached', { timeout: 15_000 }, async () => {
    const port = await freePort();
    const rows = await postgresCase(`postgres://postgres@127.0.0.1:${port}/postgres`).run(quietEnv);
    expect(rows.map((r) => r.id)).toEqual([
      'durable.pg.seq.rps',
      'durable.pg.seq.p50',
      'durable.pg.seq.p99',
      'durable.pg.c50.rps',
      'durable.pg.c50.p50',
      'durable.pg.c50.p99',
      'durable.pg.seqoff.rps',
      'durable.pg.seqoff.p50',
    ]);
    for (const skippedRow of rows) {
      expect(skippedRow.samples).toEqual([]);
      expect(skippedRow.skipped).toMatch(new RegExp(`^PostgreSQL is not reachable at 127\\.0\\.0\\.1:${port} as postgres \\(.+\\)$`));
    }
    expect(computeTargets([{ id: 't', label: 't', row: 'durable.pg.seq.rps', atLeastPerSecond: 1_500 }], rows)).toEqual([]);
  });
});
