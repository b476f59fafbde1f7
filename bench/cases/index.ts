import type { BenchCase, BenchDifference, BenchRatio, BenchTarget } from '../harness.js';
import { adapterCases, adapterRatios } from './adapters.js';
import { coreCases, coreRatios } from './core.js';
import { costCases, costRatios } from './cost.js';
import { durableCases, durableHeapCase, durablePostgresCase, durableRatios, durableSustainedCase, durableTargets } from './durable.js';
import { eventsCase, eventsRatios } from './events.js';
import { heapCase, heapRatios } from './heap.js';
import { llamaIndexCases, llamaIndexRatios } from './llamaindex.js';
import { resumeCase, resumeRatios } from './resume.js';
import { httpCase, httpRatios } from './http.js';
import { pluginCases, pluginRatios } from './plugins.js';
import { remoteCases, remoteRatios } from './remote.js';
import { queueCase, queueRatios } from './queue.js';
import { langchainCases, langchainDifferences, langchainRatios } from './langchain.js';
import { supervisorCase, supervisorRatios } from './supervisor.js';
import { workflowCase, workflowRatios } from './workflow.js';
import { workflowDurableCase, workflowDurableRatios } from './workflowDurable.js';

/**
 * Every case `npm run bench` runs, in table order, and the ratios it reports. A new group (the
 * supervisor, an adapter, the HTTP service) adds a file next to these that exports its cases and
 * ratios (and rate targets, if it has any), and appends them here. Time cases are measured
 * interleaved with each other; custom cases run one after another after them.
 */
export const benchCases: readonly BenchCase[] = [
  ...coreCases,
  ...langchainCases,
  ...adapterCases,
  ...llamaIndexCases,
  ...remoteCases,
  ...pluginCases,
  ...costCases,
  ...durableCases,
  heapCase,
  eventsCase,
  supervisorCase,
  workflowCase,
  workflowDurableCase,
  httpCase,
  durableSustainedCase,
  durablePostgresCase,
  durableHeapCase,
  resumeCase,
  queueCase,
];

export const benchRatios: readonly BenchRatio[] = [
  ...coreRatios,
  ...langchainRatios,
  ...adapterRatios,
  ...llamaIndexRatios,
  ...remoteRatios,
  ...pluginRatios,
  ...costRatios,
  ...heapRatios,
  ...eventsRatios,
  ...supervisorRatios,
  ...workflowRatios,
  ...workflowDurableRatios,
  ...httpRatios,
  ...durableRatios,
  ...resumeRatios,
  ...queueRatios,
];

/** Differences of time rows, where the requirements state an aim as time added. */
export const benchDifferences: readonly BenchDifference[] = [...langchainDifferences];

/** Rates that rows must reach on their own (ops/s), where the requirements state them so. */
export const benchTargets: readonly BenchTarget[] = [...durableTargets];
