// An agent that runs elsewhere, governed here: each remote turn is one OAO step and one governed
// model call (reserved before it is sent, charged the usage the remote reports), the run's signal
// cancels the remote task, and a remote that never answers times out.
// Run: npx tsx --conditions=oao-source examples/remote-agent.ts
//
// No network beyond loopback: a small A2A agent (express + @a2a-js/sdk) is started in-process. In
// production the URL is a CrewAI crew or an AutoGen team deployed behind an A2A endpoint.
import { Orchestrator } from 'open-agent-orchestrator';
import { fromRemoteAgent } from 'open-agent-orchestrator/remote';
import { startA2AAgentServer } from './support/a2aAgentServer.js';

const server = await startA2AAgentServer({
  name: 'analyst',
  answer: (text, seen) => {
    if (text.startsWith('slow')) return { text: '', hang: true };
    // The first message asks back; the reply to the question finishes the task.
    if (!seen.continued) return { text: 'Which region?', state: 'input-required', usage: { inputTokens: 40, outputTokens: 6 } };
    return { text: `Q3 revenue in ${text} grew 12%.`, usage: { inputTokens: 55, outputTokens: 14, model: 'gpt-4o-mini' } };
  },
});

try {
  const orch = new Orchestrator({ policy: { maxSteps: 4, maxTokens: 4_000 } });
  orch.on('MODEL_RESULT', ({ payload }) => {
    const said = payload.ok ? JSON.stringify((payload.output as { output: unknown }).output) : `failed (${payload.error?.code})`;
    console.log(`  turn ${payload.step}: ${said}, charged ${payload.usage?.total ?? 0} tokens`);
  });

  // 1. Two turns: the remote asks for input, onInputRequired answers, the same remote task finishes.
  const analyst = fromRemoteAgent({
    name: 'analyst',
    transport: { kind: 'a2a', url: server.url },
    timeoutMs: 10_000,
    maxOutputTokens: 500,
    onInputRequired: ({ question }) => (question === 'Which region?' ? 'EMEA' : undefined),
  });
  const report = await orch.run({ agent: analyst, task: 'How did Q3 revenue develop?' });
  console.log(`analyst: ${report.status}, ${report.totalSteps} steps, ${report.tokenUsage.total} tokens`);
  console.log('answer:', report.finalOutput);

  // 2. Cancelling the run aborts the request and sends the remote task tasks/cancel.
  const handle = orch.start({ agent: analyst, task: 'slow: rebuild the forecast' });
  const taskId = await server.hanging;
  handle.cancel('no longer needed');
  const cancelled = await handle.report;
  console.log(`cancelled: ${cancelled.termination.reason}; remote task cancelled: ${(await server.firstCancel) === taskId}`);

  // 3. A turn that does not answer in time fails with a typed error.
  const impatient = fromRemoteAgent({ name: 'analyst', transport: { kind: 'a2a', url: server.url }, timeoutMs: 200 });
  const late = await orch.run({ agent: impatient, task: 'slow: and again' });
  console.log(`timeout: ${late.status} ${late.error?.code}`);
} finally {
  await server.close();
}
