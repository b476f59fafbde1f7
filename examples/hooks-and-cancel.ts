// Hooks that watch every run, and two ways to cancel one: an AbortSignal and handle.cancel().
// Run: npx tsx --conditions=oao-source examples/hooks-and-cancel.ts
import { first } from 'rxjs';
import { OaoError, Orchestrator, type AgentContext } from 'open-agent-orchestrator';

/** Waits `ms`, or rejects with the signal's reason as soon as it aborts (also if it already has). */
function wait(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), reject(signal.reason)), { once: true });
  });
}

/** Looks something up, then waits on a long "model call" that stops when the run's signal aborts. */
const patientAgent = {
  name: 'patient',
  async invoke(task: string, ctx: AgentContext) {
    await ctx.tools.lookup!({ q: task });
    try {
      await wait(10_000, ctx.signal);
    } catch (reason) {
      console.log(`  agent: my signal aborted (${OaoError.isInstance(reason) ? reason.code : String(reason)})`);
      throw reason;
    }
    return { output: 'finished the long call' };
  },
};
const tools = { lookup: ({ q }: { q: string }) => `notes on ${q}` };

const orch = new Orchestrator({
  // A hook that throws is reported here and never changes a run.
  onHookError: (error, event) => console.log(`  onHookError: a ${event.type} hook threw "${(error as Error).message}"`),
});
orch.on('TOOL_CALL', (event) => console.log(`  hook: TOOL_CALL ${event.payload.tool}(${JSON.stringify(event.payload.args)})`));
orch.on('EXECUTION_CANCELLED', (event) => console.log(`  hook: EXECUTION_CANCELLED "${event.payload.reason}"`));
orch.on('STATE_ENTER', (event) => {
  if (event.payload.state === 'FAILED') throw new Error('this hook is broken');
});

// 1. An AbortSignal: abort it (here after 50 ms) and the run is cancelled.
console.log('1. cancel with an AbortSignal');
const controller = new AbortController();
setTimeout(() => controller.abort('the user closed the tab'), 50);
const viaSignal = await orch.run({ agent: patientAgent, task: 'signals', tools, signal: controller.signal });
console.log(`signal: ${viaSignal.status} ${viaSignal.termination.reason}: ${viaSignal.termination.message}`);

// 2. handle.cancel(): cancel once the tool result is in. The lookup answered synchronously, before
// start() even returned; handle.events$ replays what was already emitted, so nothing is missed.
console.log('2. cancel with handle.cancel()');
const handle = orch.start({ agent: patientAgent, task: 'handles', tools });
handle.events$.pipe(first((event) => event.type === 'TOOL_RESULT')).subscribe(() => handle.cancel('no longer needed'));
const viaHandle = await handle.report;
console.log(`handle.cancel(): ${viaHandle.status} ${viaHandle.termination.reason}: ${viaHandle.termination.message}`);
console.log(`tool calls before the cancel: ${viaHandle.toolUsage.total}; last event: ${handle.events().at(-1)?.type}`);
