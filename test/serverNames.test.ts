import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { Orchestrator, createMemoryStore, type AgentContext } from '../src/index.js';
import { createMetrics } from '../src/observability/metrics/index.js';
import { createServer, errorBodySchema, type ServerOptions } from '../src/server/index.js';

/**
 * Names a user chooses (agent names, job names, tool names in a request's policy) key records in
 * the server. Names of Object.prototype members are names like any other: they never reach a
 * prototype, never answer 5xx, and never stand for something that is not there. And the name an
 * agent is registered under is the run's agentName.
 */

const PROTOTYPE_NAMES = ['constructor', 'toString', 'hasOwnProperty', 'valueOf', '__proto__'] as const;

/** An agent that calls the tool its task names, as often as the task says. */
function caller(label: string) {
  return {
    async invoke(task: { tool: string; times: number } | string, ctx: AgentContext) {
      if (typeof task === 'string') return { output: `${label}: ${task}` };
      const results: unknown[] = [];
      for (let i = 0; i < task.times; i++) results.push(await ctx.callTool(task.tool, { i }));
      return { output: `${label}: ${results.join(',')}` };
    },
  };
}

/** Agents registered under every prototype name (`__proto__` as an own key, as JSON would have it). */
function prototypeNamedAgents(): ServerOptions['agents'] {
  return Object.fromEntries(PROTOTYPE_NAMES.map((name) => [name, caller(name)]));
}

/** Tools named after prototype members, each answering its own name. */
const prototypeNamedTools = Object.fromEntries(PROTOTYPE_NAMES.map((name) => [name, () => `ran ${name}`]));

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

async function build(options: Partial<ServerOptions> = {}): Promise<FastifyInstance> {
  const app = await createServer({ agents: prototypeNamedAgents(), tools: prototypeNamedTools, apiKeys: [], policy: { maxToolCalls: 20 }, ...options });
  apps.push(app);
  return app;
}

function post(app: FastifyInstance, url: string, payload: unknown) {
  return app.inject({ method: 'POST', url, payload: JSON.stringify(payload), headers: { 'content-type': 'application/json' } });
}

describe('agents registered under Object.prototype names', () => {
  it('are listed and run under their names, each its own agent', async () => {
    const app = await build();
    expect((await app.inject({ method: 'GET', url: '/agents' })).json().agents.map((agent: { name: string }) => agent.name)).toEqual([...PROTOTYPE_NAMES]);
    for (const name of PROTOTYPE_NAMES) {
      const answer = await post(app, '/run', { agent: name, task: 'hi' });
      expect(answer.statusCode, `${name}: ${answer.body}`).toBe(200);
      expect(answer.json()).toMatchObject({ status: 'SUCCESS', agentName: name, finalOutput: `${name}: hi` });
    }
  });

  it('are unknown agents on a server that does not register them', async () => {
    const app = await build({ agents: { plain: caller('plain') } });
    for (const name of PROTOTYPE_NAMES) {
      const answer = await post(app, '/run', { agent: name, task: 'hi' });
      expect(answer.statusCode, `${name}: ${answer.body}`).toBe(404);
      expect(errorBodySchema.parse(answer.json()).error.code).toBe('OAO_ERR_UNKNOWN_AGENT');
    }
  });

  it('name jobs and runs of POST /run-multi, and filter GET /runs', async () => {
    const app = await build();
    const jobs = Object.fromEntries(PROTOTYPE_NAMES.map((name, index) => [name, PROTOTYPE_NAMES[(index + 1) % PROTOTYPE_NAMES.length]]));
    const answer = await post(app, '/run-multi', { agents: jobs, task: 'batch' });
    expect(answer.statusCode, answer.body).toBe(200);
    const reports = answer.json().reports as Record<string, { agentName: string; status: string }>;
    expect(Object.keys(reports).sort()).toEqual([...PROTOTYPE_NAMES].sort());
    for (const [job, agent] of Object.entries(jobs)) expect(reports[job]).toMatchObject({ agentName: agent, status: 'SUCCESS' });
    for (const name of PROTOTYPE_NAMES) {
      const listed = (await app.inject({ method: 'GET', url: `/runs?agent=${encodeURIComponent(name)}` })).json();
      expect(listed.total, name).toBe(1);
    }
  });

  it('label their metrics with their own names', async () => {
    const metrics = createMetrics();
    const app = await build({ metrics });
    for (const name of PROTOTYPE_NAMES) await post(app, '/run', { agent: name, task: 'count' });
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    for (const name of PROTOTYPE_NAMES) expect(text).toContain(`oao_runs_total{status="SUCCESS",agent="${name}",reason="completed"} 1`);
  });
});

describe('a request policy keyed by Object.prototype names', () => {
  it.each(PROTOTYPE_NAMES)('maxCalls.%s limits that tool and nothing else; never a 5xx', async (tool) => {
    const app = await build();
    const policy = JSON.parse(`{"tools":{"maxCalls":{${JSON.stringify(tool)}:2}}}`) as unknown;
    const within = await post(app, '/run', { agent: 'valueOf', task: { tool, times: 2 }, policy });
    expect(within.statusCode, within.body).toBe(200);
    expect(within.json()).toMatchObject({ status: 'SUCCESS', finalOutput: `valueOf: ran ${tool},ran ${tool}` });

    const beyond = await post(app, '/run', { agent: 'valueOf', task: { tool, times: 3 }, policy });
    expect(beyond.statusCode, beyond.body).toBe(200);
    expect(beyond.json()).toMatchObject({ status: 'FAILED', termination: { reason: 'policy_violation', rule: 'tool_max_calls' } });

    // Another tool is not limited by it.
    const other = tool === 'valueOf' ? 'toString' : 'valueOf';
    const unaffected = await post(app, '/run', { agent: 'valueOf', task: { tool: other, times: 3 }, policy });
    expect(unaffected.json(), unaffected.body).toMatchObject({ status: 'SUCCESS' });

    const started = await post(app, '/runs', { agent: 'toString', task: 'x', policy });
    expect(started.statusCode, started.body).toBe(202);
    expect(Object.getOwnPropertyDescriptor(started.json().effectivePolicy.tools.maxCalls, tool)?.value).toBe(2);
  });

  it('deny and allow lists of prototype names hold', async () => {
    const app = await build();
    const denied = await post(app, '/run', { agent: 'valueOf', task: { tool: 'constructor', times: 1 }, policy: { tools: { deny: ['constructor'] } } });
    expect(denied.json()).toMatchObject({ status: 'FAILED', termination: { reason: 'policy_violation', rule: 'tool_denied' } });
    const allowed = await post(app, '/run', { agent: 'valueOf', task: { tool: 'hasOwnProperty', times: 1 }, policy: { tools: { allow: ['toString'] } } });
    expect(allowed.json()).toMatchObject({ status: 'FAILED', termination: { reason: 'policy_violation', rule: 'tool_not_allowed' } });
  });
});

describe('the registered name is the run\'s agentName', () => {
  const anonymous = { invoke: (task: string) => ({ output: `anon: ${task}` }) };
  class Researcher {
    readonly name = 'researcher-own-name';
    invoke(task: string) {
      return { output: `research: ${task}` };
    }
  }

  it('an object literal registered as echo reports agentName "echo", not "agent"', async () => {
    const store = createMemoryStore();
    const metrics = createMetrics();
    const app = await build({ agents: { echo: anonymous, other: { invoke: anonymous.invoke } }, store, metrics });
    const echo = (await post(app, '/run', { agent: 'echo', task: 'a' })).json();
    const other = (await post(app, '/run', { agent: 'other', task: 'a' })).json();
    expect(echo.agentName).toBe('echo');
    expect(other.agentName).toBe('other');
    const start = store.events(echo.executionId)[0];
    expect(start).toMatchObject({ type: 'EXECUTION_START', payload: { agentName: 'echo' } });
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(text).toContain('oao_runs_total{status="SUCCESS",agent="echo",reason="completed"} 1');
    expect(text).toContain('oao_runs_total{status="SUCCESS",agent="other",reason="completed"} 1');
    expect(text).not.toContain('agent="agent"');
  });

  it('wins over the agent\'s own name, and is what the executionHash covers', async () => {
    const app = await build({ agents: { research: new Researcher() }, policy: { maxSteps: 3 } });
    const report = (await post(app, '/run', { agent: 'research', task: 'q', executionId: 'named-1' })).json();
    expect(report.agentName).toBe('research');

    // The same run in process: equal hash under the registered name, another under the agent's own.
    const orchestrator = new Orchestrator({ policy: { maxSteps: 3 } });
    const registered = await orchestrator.run({ agent: new Researcher(), agentName: 'research', task: 'q', tools: prototypeNamedTools });
    const own = await orchestrator.run({ agent: new Researcher(), task: 'q', tools: prototypeNamedTools });
    expect(own.agentName).toBe('researcher-own-name');
    expect(registered.executionHash).toBe(report.executionHash);
    expect(own.executionHash).not.toBe(report.executionHash);
  });

  it('RunRequest.agentName must be a non-empty string', async () => {
    const orchestrator = new Orchestrator();
    for (const agentName of ['', 42, null]) {
      await expect(orchestrator.run({ agent: anonymous, task: 'q', agentName: agentName as string })).rejects.toMatchObject({
        code: 'OAO_ERR_INVALID_ARGUMENT',
        details: { field: 'agentName' },
      });
    }
  });

  it('a batch child is named after the agent it runs, not after its job', async () => {
    const app = await build({ agents: { echo: anonymous } });
    const body = (await post(app, '/run-multi', { agents: { first: 'echo', second: 'echo' }, task: 't' })).json();
    expect(body.reports.first.agentName).toBe('echo');
    expect(body.reports.second.agentName).toBe('echo');
  });
});
