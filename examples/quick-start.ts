// The quick start: a plain object with invoke() is a complete agent.
// Run: npx tsx --conditions=oao-source examples/quick-start.ts
import { Orchestrator, StrictPolicy } from 'open-agent-orchestrator';
class DummyAgent { invoke(task: string) { return { output: `Processed: ${task}` }; } }
const orch = new Orchestrator({ policy: new StrictPolicy({ maxSteps: 5 }) });
const report = await orch.run({ agent: new DummyAgent(), task: 'Explain AI orchestration' });
console.log(report.status, report.finalOutput);

// A synchronous agent can also run without the event loop, through the same governed lifecycle.
const same = orch.runSync({ agent: new DummyAgent(), task: 'Explain AI orchestration' });
console.log('runSync:', same.status, same.termination.reason, same.finalOutput);
console.log('states:', same.stateHistory.map((entry) => entry.state).join(' -> '));
