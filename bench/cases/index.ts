import type { BenchCase, BenchRatio } from '../harness.js';
import { coreCases, coreRatios } from './core.js';
import { eventsCase, eventsRatios } from './events.js';
import { heapCase, heapRatios } from './heap.js';
import { httpCase, httpRatios } from './http.js';
import { langchainCases, langchainRatios } from './langchain.js';
import { supervisorCase, supervisorRatios } from './supervisor.js';

/**
 * Every case `npm run bench` runs, in table order, and the ratios it reports. A new group (the
 * supervisor, an adapter, the HTTP service) adds a file next to these that exports its cases and
 * ratios, and appends them here. Time cases are measured interleaved with each other; custom cases
 * run one after another after them.
 */
export const benchCases: readonly BenchCase[] = [...coreCases, ...langchainCases, heapCase, eventsCase, supervisorCase, httpCase];

export const benchRatios: readonly BenchRatio[] = [...coreRatios, ...langchainRatios, ...heapRatios, ...eventsRatios, ...supervisorRatios, ...httpRatios];
