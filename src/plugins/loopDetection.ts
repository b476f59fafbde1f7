import { OaoError } from '../errors.js';
import { canonicalJson } from '../report/canonicalJson.js';
import { definePlugin, type Plugin } from './definePlugin.js';

export interface LoopDetectionOptions {
  /** How many times one tool may be called with the same arguments in a run. @default 3 */
  readonly maxRepeats?: number;
  /** @default 'loop-detection' */
  readonly name?: string;
}

/**
 * A plugin that stops a run going round in circles: the same tool called with the same arguments
 * (compared as canonical JSON) more than `maxRepeats` times in one run is a violation, and that
 * call's body never runs. It keeps no state: the rule reads the run's tool calls from its facts.
 *
 * @example
 * ```ts
 * import { Orchestrator } from 'open-agent-orchestrator';
 * import { loopDetection } from 'open-agent-orchestrator/plugins';
 * const orch = new Orchestrator({ plugins: [loopDetection({ maxRepeats: 2 })] });
 * ```
 */
export function loopDetection(options: LoopDetectionOptions = {}): Plugin {
  const maxRepeats = options.maxRepeats ?? 3;
  if (!Number.isSafeInteger(maxRepeats) || maxRepeats < 1) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected "maxRepeats" to be an integer from 1 and up, got ${String(maxRepeats)}`, { details: { field: 'maxRepeats' } });
  }
  return definePlugin({
    name: options.name ?? 'loop-detection',
    version: '1.0.0',
    rules: {
      toolCall: ({ toolCall, toolCalls }) => {
        const key = canonicalJson(toolCall.args ?? null);
        let repeats = 0;
        for (const call of toolCalls) {
          if (call.tool === toolCall.tool && canonicalJson(call.args ?? null) === key) repeats += 1;
        }
        return repeats < maxRepeats ? null : { message: `${toolCall.tool} was called ${repeats} times with these arguments already (at most ${maxRepeats})` };
      },
    },
  });
}
