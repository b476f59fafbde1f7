import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { canonicalJson, definePlugin, Orchestrator, type AgentContext, type OaoEvent } from '../src/index.js';
import { auditSink, loopDetection, piiGuard } from '../src/plugins/index.js';

const tick = () => new Promise((resolve) => setImmediate(resolve));

/** An agent that calls `lookup` with each of `queries` in its one step. */
function caller(queries: readonly unknown[], tool = 'lookup') {
  return {
    name: 'caller',
    async invoke(_task: unknown, ctx: AgentContext) {
      const results: unknown[] = [];
      for (const q of queries) results.push(await ctx.callTool(tool, { q }));
      return { output: results.length };
    },
  };
}

function counting() {
  const calls: unknown[] = [];
  return { calls, tools: { lookup: (args: unknown) => (calls.push(args), 'found') } };
}

describe('definePlugin and the plugins option', () => {
  it('refuses bad definitions and bad plugin lists with typed errors naming the field', { timeout: 5_000 }, () => {
    const bad = (definition: unknown) => () => definePlugin(definition as never);
    expect(bad({ name: '', version: '1' })).toThrow(expect.objectContaining({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'name' } }) as Error);
    expect(bad({ name: 'a/b', version: '1' })).toThrow(expect.objectContaining({ details: { field: 'name' } }) as Error);
    expect(bad({ name: 'a', version: 1 })).toThrow(expect.objectContaining({ details: expect.objectContaining({ field: 'version' }) }) as Error);
    expect(bad({ name: 'a', version: '1', rules: { onStep: () => null } })).toThrow(expect.objectContaining({ details: expect.objectContaining({ field: 'rules.onStep' }) }) as Error);
    expect(bad({ name: 'a', version: '1', rules: { toolCall: 'no' } })).toThrow(expect.objectContaining({ details: expect.objectContaining({ field: 'rules.toolCall' }) }) as Error);
    expect(bad({ name: 'a', version: '1', tools: { t: 1 } })).toThrow(expect.objectContaining({ details: expect.objectContaining({ field: 'tools.t' }) }) as Error);
    expect(() => new Orchestrator({ plugins: [{ name: 'a', version: '1' }] as never })).toThrow(expect.objectContaining({ details: { field: 'plugins[0]' } }) as Error);
    const a = definePlugin({ name: 'a', version: '1' });
    expect(() => new Orchestrator({ plugins: [a, a] })).toThrow(expect.objectContaining({ details: { field: 'plugins', plugin: 'a' } }) as Error);
    const t1 = definePlugin({ name: 't1', version: '1', tools: { same: () => 1 } });
    const t2 = definePlugin({ name: 't2', version: '1', setup: (context) => context.tool('same', () => 2) });
    expect(() => new Orchestrator({ plugins: [t1, t2] })).toThrow(expect.objectContaining({ details: { field: 'plugins', plugin: 't2', tool: 'same' } }) as Error);
  });
});

describe('plugin rules are asked before the spend', () => {
  it('a toolCall refusal denies the call before its body runs and ends the run with the plugin rule; replay agrees', { timeout: 5_000 }, async () => {
    const noSecrets = definePlugin({
      name: 'no-secrets',
      version: '1.0.0',
      rules: { toolCall: ({ toolCall }) => ((toolCall.args as { q?: unknown }).q === 'secret' ? { message: 'secrets are not looked up' } : null) },
    });
    const { calls, tools } = counting();
    const orch = new Orchestrator({ plugins: [noSecrets] });
    const handle = orch.start({ agent: caller(['open', 'secret', 'more']), task: 't', tools });
    const report = await handle.report;
    expect(calls).toEqual([{ q: 'open' }]);
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'plugin:no-secrets/toolCall' });
    expect(report.error).toMatchObject({ code: 'OAO_ERR_POLICY_VIOLATION', details: { rule: 'plugin:no-secrets/toolCall', tool: 'lookup' } });
    const denied = handle.events().find((e) => e.type === 'TOOL_DENIED');
    expect(denied?.payload).toMatchObject({ tool: 'lookup', rule: 'plugin:no-secrets/toolCall', message: 'secrets are not looked up' });
    expect(canonicalJson(await orch.replay(report.executionId))).toBe(canonicalJson(report));
  });

  it('a stepStart refusal keeps the next step from starting', { timeout: 5_000 }, async () => {
    let bodies = 0;
    const oneStep = definePlugin({ name: 'one-step', version: '1', rules: { stepStart: ({ step }) => (step > 1 ? { message: 'one step is enough' } : null) } });
    const agent = { name: 'looper', invoke: () => (bodies++, { output: bodies }), review: () => ({ done: false }) };
    const report = await new Orchestrator({ plugins: [oneStep] }).run({ agent, task: 't' });
    expect(bodies).toBe(1);
    expect(report).toMatchObject({ status: 'FAILED', totalSteps: 1, termination: { reason: 'policy_violation', rule: 'plugin:one-step/stepStart' } });
  });

  it('a modelCall refusal refuses the call before it is sent', { timeout: 5_000 }, async () => {
    const onlyMini = definePlugin({ name: 'models', version: '1', rules: { modelCall: ({ modelCall }) => (modelCall.model === 'mini' ? null : { message: `${String(modelCall.model)} is not allowed` }) } });
    const sent: string[] = [];
    const agent = {
      name: 'modeller',
      async invoke(_task: unknown, ctx: AgentContext) {
        for (const model of ['mini', 'huge']) {
          const call = ctx.beginModelCall({ model, input: 'hi' });
          await call.ready;
          sent.push(model);
          call.end('ok', { input: 1, output: 1 });
        }
        return { output: 'done' };
      },
    };
    const report = await new Orchestrator({ plugins: [onlyMini] }).run({ agent, task: 't' });
    expect(sent).toEqual(['mini']);
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'plugin:models/modelCall' });
  });

  it('a usage refusal stops the run at the charge it refuses, with the facts and counters before it', { timeout: 5_000 }, async () => {
    const seen: unknown[] = [];
    const bigCharge = definePlugin({
      name: 'charges',
      version: '1',
      rules: { usage: ({ usage }, counters) => (seen.push([usage.total, counters.tokens]), usage.total > 50 ? { message: 'one charge over 50 tokens' } : null) },
    });
    const agent = {
      name: 'spender',
      async invoke(_task: unknown, ctx: AgentContext) {
        ctx.usage({ input: 10, output: 10 });
        ctx.usage({ input: 40, output: 40 });
        await tick();
        return { output: 'never' };
      },
    };
    const report = await new Orchestrator({ plugins: [bigCharge] }).run({ agent, task: 't' });
    expect(seen).toEqual([[20, 0], [80, 20]]);
    expect(report).toMatchObject({ status: 'FAILED', tokenUsage: { total: 100 }, termination: { rule: 'plugin:charges/usage' } });
  });

  it('a rule that throws, or answers garbage, fails the run closed with OAO_ERR_PLUGIN_FAILED naming the plugin', { timeout: 5_000 }, async () => {
    const { calls, tools } = counting();
    const broken = definePlugin({ name: 'broken', version: '1', rules: { toolCall: () => { throw new Error('boom'); } } });
    const report = await new Orchestrator({ plugins: [broken] }).run({ agent: caller(['x']), task: 't', tools });
    expect(calls).toEqual([]);
    expect(report).toMatchObject({ status: 'FAILED', termination: { reason: 'error' }, error: { code: 'OAO_ERR_PLUGIN_FAILED', details: { plugin: 'broken', rule: 'plugin:broken/toolCall' } } });
    expect(report.error?.message).toContain('boom');

    const garbage = definePlugin({ name: 'garbage', version: '1', rules: { stepStart: () => ({ reason: 'no' }) as never } });
    let bodies = 0;
    const stepReport = await new Orchestrator({ plugins: [garbage] }).run({ agent: () => (bodies++, 'x'), task: 't' });
    expect(bodies).toBe(0);
    expect(stepReport).toMatchObject({ status: 'FAILED', termination: { reason: 'error' }, error: { code: 'OAO_ERR_PLUGIN_FAILED', details: { plugin: 'garbage' } } });
  });

  it('an onEvent hook that throws is isolated and reported; the run is unaffected', { timeout: 5_000 }, async () => {
    const onHookError = vi.fn();
    const noisy = definePlugin({ name: 'noisy', version: '1', onEvent: () => { throw new Error('hook down'); } });
    const report = await new Orchestrator({ plugins: [noisy], onHookError }).run({ agent: () => 'ok', task: 't' });
    expect(report.status).toBe('SUCCESS');
    await tick();
    expect(onHookError).toHaveBeenCalled();
  });
});

describe("plugins' tools, setup and identity", () => {
  it('adds tools every run may call, governed by the policy; the request wins a name clash', { timeout: 5_000 }, async () => {
    const seen: string[] = [];
    const clock = definePlugin({ name: 'clock', version: '1', tools: { now: () => (seen.push('plugin'), 'noon') }, setup: (context) => context.tool('lookup', () => 'plugin lookup') });
    const orch = new Orchestrator({ plugins: [clock] });
    const agent = { name: 'asker', invoke: async (_t: unknown, ctx: AgentContext) => ({ output: [await ctx.callTool('now'), await ctx.callTool('lookup')] }) };
    expect((await orch.run({ agent, task: 't', tools: { lookup: () => 'request lookup' } })).finalOutput).toEqual(['noon', 'request lookup']);
    const denied = await orch.run({ agent, task: 't', policy: { tools: { deny: ['now'] } } });
    expect(denied.termination).toMatchObject({ reason: 'policy_violation', rule: 'tool_denied' });
    expect(seen).toEqual(['plugin']);
  });

  it('gives setup a name, tool() and on(), nothing that could change a limit, and hooks it registers see events', { timeout: 5_000 }, async () => {
    const types: string[] = [];
    let keys: string[] = [];
    const watcher = definePlugin({
      name: 'watcher',
      version: '1',
      setup: (context) => {
        keys = Object.keys(context).sort();
        context.on('EXECUTION_COMPLETE', (event: OaoEvent) => void types.push(event.type));
      },
    });
    await new Orchestrator({ plugins: [watcher] }).run({ agent: () => 'ok', task: 't' });
    expect(keys).toEqual(['name', 'on', 'tool']);
    expect(types).toEqual(['EXECUTION_COMPLETE']);
  });

  it("puts the plugins' names and versions in the execution hash, and only then", { timeout: 5_000 }, async () => {
    const run = (plugins?: Parameters<typeof definePlugin>[0][]) =>
      new Orchestrator(plugins === undefined ? {} : { plugins: plugins.map(definePlugin) }).runSync({ agent: () => 'ok', task: 't' }).executionHash;
    const plain = run();
    expect(run([])).toBe(plain);
    const v1 = run([{ name: 'p', version: '1' }]);
    expect(v1).not.toBe(plain);
    expect(run([{ name: 'p', version: '1' }])).toBe(v1);
    expect(run([{ name: 'p', version: '2' }])).not.toBe(v1);
  });
});

describe('the shipped plugins', () => {
  it('piiGuard refuses arguments with personal data (naming the pattern, not the data), except for allowed tools', { timeout: 5_000 }, async () => {
    const { calls, tools } = counting();
    const orch = new Orchestrator({ plugins: [piiGuard({ allowTools: ['crm'] })] });
    const ok = await orch.run({ agent: caller(['weather in Paris']), task: 't', tools });
    expect(ok.status).toBe('SUCCESS');
    const report = await orch.run({ agent: caller([{ contact: 'jane.doe@example.com' }]), task: 't', tools });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'plugin:pii-guard/toolCall' });
    expect(report.termination.message).toContain('(email)');
    expect(JSON.stringify(report)).not.toContain('jane.doe');
    const crm = await orch.run({ agent: caller(['jane.doe@example.com'], 'crm'), task: 't', tools: { crm: () => 'ok' } });
    expect(crm.status).toBe('SUCCESS');
    expect(calls).toEqual([{ q: 'weather in Paris' }]);
    expect(() => piiGuard({ patterns: { email: 'x' as never } })).toThrow(expect.objectContaining({ details: { field: 'patterns.email' } }) as Error);
  });

  it('loopDetection refuses the call past maxRepeats of the same tool and arguments', { timeout: 5_000 }, async () => {
    const { calls, tools } = counting();
    const report = await new Orchestrator({ plugins: [loopDetection({ maxRepeats: 2 })] }).run({ agent: caller([1, { a: 1, b: 2 }, 1, { b: 2, a: 1 }, 1]), task: 't', tools });
    // The fifth call is the third { q: 1 }; key order does not make arguments different.
    expect(calls).toHaveLength(4);
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'plugin:loop-detection/toolCall' });
    expect(() => loopDetection({ maxRepeats: 0 })).toThrow(expect.objectContaining({ details: { field: 'maxRepeats' } }) as Error);
  });

  it("loopDetection counts a resumed run's tool calls from before it was unloaded", { timeout: 10_000 }, async () => {
    const lookups: unknown[] = [];
    const tools = { lookup: (args: unknown) => (lookups.push(args), 'found'), send: () => 'sent' };
    const agent = {
      name: 'twice',
      async invoke(_task: unknown, ctx: AgentContext) {
        await ctx.callTool('lookup', { q: 1 });
        await ctx.callTool('send', {});
        await ctx.callTool('lookup', { q: 1 });
        return { output: 'done' };
      },
    };
    const orch = new Orchestrator({ plugins: [loopDetection({ maxRepeats: 1 })], policy: { tools: { approve: ['send'] } } });
    const handle = orch.start({ agent, task: 't', tools, executionId: 'loops' });
    while (handle.pendingApprovals().length === 0) await tick();
    await handle.unload();
    await handle.report.catch(() => undefined);
    await orch.approve('loops', 't2', { by: 'ops' });
    const report = await orch.resume('loops', { agent, tools });
    expect(lookups).toEqual([{ q: 1 }]);
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'plugin:loop-detection/toolCall' });
  });

  it('auditSink appends each governance decision as a JSON line; a sink that cannot write never changes a run', { timeout: 5_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'oao-audit-'));
    const path = join(dir, 'audit.jsonl');
    const { tools } = counting();
    const orch = new Orchestrator({ plugins: [auditSink({ path })], policy: { tools: { deny: ['drop'] } } });
    const report = await orch.run({ agent: caller(['x', 'y']), task: 't', tools: { ...tools, drop: () => 'no' } });
    const denied = await orch.run({ agent: caller(['z'], 'drop'), task: 't', tools: { drop: () => 'no' } });
    const lines = readFileSync(path, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { executionId: string; decision: string; tool?: string; rule?: string });
    expect(lines.filter((l) => l.executionId === report.executionId).map((l) => l.decision)).toEqual(['run_started', 'tool_allowed', 'tool_allowed', 'run_finished']);
    expect(lines.filter((l) => l.executionId === denied.executionId).map((l) => l.decision)).toEqual(['run_started', 'tool_denied', 'violation', 'run_finished']);
    expect(lines.find((l) => l.decision === 'tool_denied')).toMatchObject({ tool: 'drop', rule: 'tool_denied' });

    // A directory cannot be appended to: every write fails for real.
    const onHookError = vi.fn();
    const unwritable = await new Orchestrator({ plugins: [auditSink({ path: dir })], onHookError }).run({ agent: caller(['x']), task: 't', tools });
    expect(unwritable.status).toBe('SUCCESS');
    await tick();
    expect(onHookError).toHaveBeenCalled();
    expect(() => auditSink({} as never)).toThrow(expect.objectContaining({ details: { field: 'path' } }) as Error);
  });
});

describe('plugins govern every run an orchestrator starts', () => {
  it("a workflow's node runs ask the orchestrator's plugins too", { timeout: 10_000 }, async () => {
    const { defineWorkflow } = await import('../src/index.js');
    const { calls, tools } = counting();
    const noSecrets = definePlugin({ name: 'no-secrets', version: '1', rules: { toolCall: ({ toolCall }) => ((toolCall.args as { q?: unknown }).q === 'secret' ? { message: 'no' } : null) } });
    const wf = defineWorkflow({
      id: 'lookups',
      nodes: {
        open: { agent: caller(['open']), tools },
        secret: { agent: caller(['secret']), tools },
      },
    });
    const result = await new Orchestrator({ plugins: [noSecrets] }).runWorkflow(wf, {});
    expect(calls).toEqual([{ q: 'open' }]);
    expect(result.nodes.secret).toMatchObject({ status: 'FAILED', report: { termination: { rule: 'plugin:no-secrets/toolCall' } } });
  });
});
