import { agent } from '@llamaindex/workflow';
import { Orchestrator } from 'open-agent-orchestrator';
import { fromLlamaIndex } from 'open-agent-orchestrator/llamaindex';
import { ScriptedLlamaIndexLLM } from '../../examples/support/scriptedLlamaIndexLLM.js';
import type { BenchCase, BenchRatio } from '../harness.js';

/**
 * What governing a LlamaIndex.TS agent workflow costs: `agent({ llm })` run directly, then as an OAO
 * run (a governed copy of the workflow per run, the lifecycle, one governed and metered LLM call,
 * events with one subscriber). The LLM is a scripted ToolCallLLM answering at once with usage, so
 * the rows measure LlamaIndex's workflow engine and OAO, not a provider. Both sides forget the
 * LLM's recorded requests after each call, so neither grows.
 */

const ANSWER = 'Governed.';
const TASK = 'Why govern agents?';

function scriptedLlm(): ScriptedLlamaIndexLLM {
  return new ScriptedLlamaIndexLLM([{ text: ANSWER, tokens: [12, 3] }]);
}

export const llamaIndexCases: readonly BenchCase[] = [
  {
    kind: 'time',
    id: 'llamaindex.raw',
    group: 'adapters',
    label: 'raw: agent({ llm }).run() (LlamaIndex.TS)',
    description: 'A LlamaIndex.TS agent workflow on a scripted LLM (one streamed LLM call, no tools), run directly.',
    mode: 'async',
    setup: async () => {
      const llm = scriptedLlm();
      const workflow = agent({ name: 'bench', llm });
      const call = async () => {
        const result = await workflow.run(TASK);
        llm.requests.splice(0);
        return result.data.result;
      };
      const answer = await call();
      if (answer !== ANSWER) throw new Error(`bench: the raw LlamaIndex agent answered ${JSON.stringify(answer)}`);
      return call;
    },
  },
  {
    kind: 'time',
    id: 'llamaindex.governed',
    group: 'adapters',
    label: 'governed: run(fromLlamaIndex(agent({ llm })))',
    description: 'The same workflow under OAO: a governed copy per run, its LLM call metered and gated; one events$ subscriber.',
    mode: 'async',
    setup: async () => {
      const llm = scriptedLlm();
      const orch = new Orchestrator();
      orch.events$.subscribe(() => {});
      const governed = fromLlamaIndex(agent({ name: 'bench', llm }));
      const call = async () => {
        const report = await orch.run({ agent: governed, task: TASK });
        llm.requests.splice(0);
        return report;
      };
      const report = await call();
      if (report.status !== 'SUCCESS' || report.finalOutput !== ANSWER) {
        throw new Error(`bench: the governed LlamaIndex agent ended ${JSON.stringify(report.termination)} with ${JSON.stringify(report.finalOutput)}`);
      }
      return call;
    },
  },
];

export const llamaIndexRatios: readonly BenchRatio[] = [
  { id: 'llamaindexGoverned/trivial', label: 'governed LlamaIndex agent / trivial run', numerator: 'llamaindex.governed', denominator: 'adapters.trivial' },
  { id: 'llamaindexGoverned/raw', label: 'governed LlamaIndex agent / raw run', numerator: 'llamaindex.governed', denominator: 'llamaindex.raw' },
];
