/**
 * `open-agent-orchestrator/inspect`: watch runs in the XState inspector. Streams every run actor and
 * supervisor to an `@statelyai/inspect` WebSocket inspector (`createRunInspector`), or wraps any
 * other XState inspector so it sees OAO's actors without their ledgers (`inspectRuns`). Needs the
 * optional peer dependencies `@statelyai/inspect` and `ws`. See docs/inspector.md.
 */
export { createRunInspector, DEFAULT_INSPECTOR_URL } from './createRunInspector.js';
export type { RunInspector, RunInspectorOptions } from './createRunInspector.js';
export { inspectRuns, sanitizeInspectionEvent } from './inspectRuns.js';
export type { InspectedBatch, InspectedRun } from './inspectRuns.js';
