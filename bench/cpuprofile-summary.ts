import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof`): self time by function, self time by
 * origin (this package's src/, each dependency, node internals, GC), and inclusive time of this
 * package's functions. `npx tsx bench/cpuprofile-summary.ts <file> [--top 30]`
 */

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '30' } } });
const file = positionals[0];
if (file === undefined) throw new Error('Expected the path of a .cpuprofile file');
const top = Number(values.top);

const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const parent = new Map<number, number>();
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

/** Where a frame's code comes from. */
function origin(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const inModules = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (inModules !== null) return inModules[1] as string;
  if (url.includes('/bench/')) return 'bench';
  // This package, run from source (tsx) or compiled (dist/).
  if (/\/(src|dist)\/.+\.(ts|js)$/.test(url)) return 'oao src';
  if (url.startsWith('node:')) return 'node internals';
  return url;
}

function label(frame: CallFrame): string {
  const where = /\/((?:src|dist|bench|node_modules\/(?:@[^/]+\/)?[^/]+)\/.+)$/.exec(frame.url)?.[1] ?? frame.url;
  const name = frame.functionName === '' ? '(anonymous)' : frame.functionName;
  return where === '' ? name : `${name}  ${where}:${frame.lineNumber + 1}`;
}

const selfByFunction = new Map<string, number>();
const selfByOrigin = new Map<string, number>();
const inclusiveSrc = new Map<string, number>();
let total = 0;
profile.samples.forEach((sampleId, i) => {
  const delta = profile.timeDeltas[i] ?? 0;
  const node = byId.get(sampleId);
  if (node === undefined) return;
  total += delta;
  const frame = node.callFrame;
  selfByFunction.set(label(frame), (selfByFunction.get(label(frame)) ?? 0) + delta);
  selfByOrigin.set(origin(frame), (selfByOrigin.get(origin(frame)) ?? 0) + delta);
  // Inclusive: every distinct src function on the sampled stack.
  const seen = new Set<string>();
  for (let id: number | undefined = sampleId; id !== undefined; id = parent.get(id)) {
    const f = byId.get(id)?.callFrame;
    if (f === undefined || origin(f) !== 'oao src') continue;
    const key = label(f);
    if (seen.has(key)) continue;
    seen.add(key);
    inclusiveSrc.set(key, (inclusiveSrc.get(key) ?? 0) + delta);
  }
});

function print(title: string, entries: Map<string, number>, limit: number): void {
  process.stdout.write(`\n${title}\n`);
  const sorted = [...entries].sort((a, b) => b[1] - a[1]).slice(0, limit);
  for (const [name, micros] of sorted) {
    process.stdout.write(`${((micros / total) * 100).toFixed(1).padStart(6)}%  ${(micros / 1000).toFixed(0).padStart(7)} ms  ${name}\n`);
  }
}

process.stdout.write(`${file}: ${(total / 1e6).toFixed(2)} s sampled\n`);
print('self time by origin', selfByOrigin, 20);
print(`self time by function (top ${top})`, selfByFunction, top);
print(`inclusive time of oao src functions (top ${top})`, inclusiveSrc, top);
