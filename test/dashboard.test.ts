import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { chromium, type Browser, type BrowserContext, type Locator, type Page, type Request, type Route } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentContext, PolicyOptions, StepResult, ToolCallContext } from '../src/index.js';
import { createServer } from '../src/server/index.js';
import { createGates } from './helpers.js';

/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core against a real
 * server on port 0. Starting runs from the page, following them live, cancelling one, the API-key
 * prompt of a secured server, the server's limits in the form and the limits a run got; the page at
 * a phone's width (375 px) and a desktop's (1400 px); every request the page makes must go to the
 * server itself. Screenshots are kept in test-results/ (dashboard.png, dashboard-375.png,
 * dashboard-1400.png).
 *
 * Without Chromium at CHROMIUM_PATH the suite is skipped, unless OAO_REQUIRE_BROWSER=1 (as in CI),
 * where it fails instead.
 */

const CHROMIUM_PATH = '/usr/bin/chromium';
const browserFound = existsSync(CHROMIUM_PATH);
const browserRequired = process.env.OAO_REQUIRE_BROWSER === '1';
const suiteName = browserFound || browserRequired
  ? 'the dashboard in Chromium'
  : `the dashboard in Chromium (skipped: no browser at ${CHROMIUM_PATH}; OAO_REQUIRE_BROWSER=1 makes this a failure)`;

/** Waiting on the browser: generous, because a loaded machine is slow, never a timing assertion. */
const WAIT_MS = 15_000;
const SCREENSHOT = new URL('../test-results/dashboard.png', import.meta.url);

// ---- agents -------------------------------------------------------------------------------------

/** Tasks starting with "hold:" stop in their last step until the test opens their gate. */
const gates = createGates();
const gate = gates.gate;

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return until(new Promise<void>((resolve) => setTimeout(resolve, ms)), signal);
}

function until<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    promise.then(resolve, reject);
  });
}

const agents = {
  stepper: {
    name: 'stepper',
    description: 'Three steps, each a model call and a lookup.',
    async invoke(task: string, ctx: AgentContext) {
      const call = ctx.beginModelCall({ model: 'fake-model', input: `${task} (step ${ctx.step})`, maxOutputTokens: 12 });
      await pause(40, ctx.signal);
      call.end(`thinking about ${task}`, { input: 30, output: 12 });
      const notes = await ctx.callTool('lookup', { q: task, step: ctx.step });
      await pause(30, ctx.signal);
      if (ctx.step === 3 && task.startsWith('hold:')) await until(gate(task).promise, ctx.signal);
      return { output: `step ${ctx.step}: ${String(notes)}` };
    },
    review: (result: StepResult) => (result.step < 3 ? { done: false } : { done: true }),
  },
  forever: {
    name: 'forever',
    description: 'Works until it is cancelled.',
    invoke: (_task: string, ctx: AgentContext) => until(new Promise<never>(() => {}), ctx.signal),
  },
  brief: {
    name: 'brief',
    description: 'One short step, about 13 ms.',
    async invoke(task: string, ctx: AgentContext) {
      await pause(13, ctx.signal);
      return { output: `done: ${task}` };
    },
  },
  snooper: {
    name: 'snooper',
    description: 'Looks something up, then reaches for a tool it may not use.',
    async invoke(task: string, ctx: AgentContext) {
      await ctx.callTool('lookup', { q: task });
      await ctx.callTool('secrets', {});
      return { output: 'unreachable' };
    },
  },
};

const tools = {
  lookup: async ({ q }: { q: string }, { signal }: ToolCallContext) => {
    await pause(25, signal);
    return `2 notes about ${q}`;
  },
  secrets: () => 'never runs',
};

const policy: PolicyOptions = { maxSteps: 6, maxTokens: 1_000, maxToolCalls: 8, timeoutMs: 20_000, tools: { deny: ['secrets'] } };

// ---- server and browser ----------------------------------------------------------------------------

interface Served {
  readonly app: FastifyInstance;
  readonly origin: string;
}

const servers: FastifyInstance[] = [];
async function serve(apiKeys: string[] = []): Promise<Served> {
  const app = await createServer({ agents, tools, policy, apiKeys });
  servers.push(app);
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, origin: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
}

/** A page with everything it does recorded: every request, console errors and uncaught errors. */
interface Session {
  readonly context: BrowserContext;
  readonly page: Page;
  readonly requests: Request[];
  readonly problems: string[];
}

let browser: Browser | undefined;

async function openDashboard(origin: string, viewport = { width: 1400, height: 900 }): Promise<Session> {
  if (browser === undefined) throw new Error('The browser did not start');
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const requests: Request[] = [];
  const problems: string[] = [];
  page.on('request', (request) => requests.push(request));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  await page.goto(`${origin}/dashboard/`);
  return { context, page, requests, problems };
}

/** Every request went to the server's own origin, and nothing went wrong but what the test expects. */
function expectClean(session: Session, origin: string, expectedProblems: RegExp[] = []): void {
  const elsewhere = session.requests.map((request) => request.url()).filter((url) => new URL(url).origin !== origin);
  expect(elsewhere).toEqual([]);
  expect(session.problems.filter((problem) => !expectedProblems.some((expected) => expected.test(problem)))).toEqual([]);
}

function byTestId(page: Page, testId: string, attributes = ''): Locator {
  return page.locator(`[data-testid="${testId}"]${attributes}`);
}

async function waitFor(locator: Locator, text?: string | RegExp): Promise<Locator> {
  const target = (text === undefined ? locator : locator.filter({ hasText: text })).first();
  await target.waitFor({ state: 'attached', timeout: WAIT_MS });
  return target;
}

async function startFromForm(page: Page, agent: string, task: string, limits: Record<string, string> = {}): Promise<string> {
  await waitFor(page.locator(`[data-testid="agent-select"] option[value="${agent}"]`));
  await byTestId(page, 'agent-select').selectOption(agent);
  await byTestId(page, 'task-input').fill(task);
  if (Object.keys(limits).length > 0) {
    const details = page.locator('details.limits');
    if ((await details.getAttribute('open')) === null) await details.locator('summary').click();
    for (const [name, value] of Object.entries(limits)) await byTestId(page, `limit-${name}`).fill(value);
  }
  const [answer] = await Promise.all([
    page.waitForResponse((response) => response.request().method() === 'POST' && new URL(response.url()).pathname === '/runs', { timeout: WAIT_MS }),
    byTestId(page, 'start-button').click(),
  ]);
  expect(answer.status()).toBe(202);
  const { executionId } = (await answer.json()) as { executionId: string };
  await waitFor(byTestId(page, 'run-detail', `[data-run-id="${executionId}"]`));
  return executionId;
}

async function boxOf(locator: Locator): Promise<{ x: number; y: number; width: number; height: number }> {
  const box = await locator.first().boundingBox();
  if (box === null) throw new Error(`${locator.toString()} is not shown`);
  return box;
}

/** A finished run's events, read as any client reads them: its event stream, which ends with the run. */
async function runEvents(origin: string, id: string): Promise<Array<{ type: string; timestamp: number }>> {
  const answer = await fetch(`${origin}/runs/${encodeURIComponent(id)}/events`, { signal: AbortSignal.timeout(WAIT_MS) });
  expect(answer.status).toBe(200);
  return (await answer.text())
    .split('\n')
    .filter((line) => line.startsWith('data: '))
    .map((line) => JSON.parse(line.slice('data: '.length)) as { type: string; timestamp: number });
}

async function apiGet(origin: string, path: string, key?: string): Promise<any> {
  const answer = await fetch(`${origin}${path}`, { headers: key === undefined ? {} : { authorization: `Bearer ${key}` } });
  expect(answer.status, path).toBe(200);
  return answer.json();
}

beforeAll(async () => {
  // Without a browser, the test above fails when one is required; the rest cannot run.
  if (!browserFound) return;
  browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

afterAll(async () => {
  gates.openAll();
  // The browser first: a page still polling a closed server would only log connection errors.
  await browser?.close();
  await Promise.all(servers.splice(0).map((app) => app.close()));
});

it.runIf(browserFound || browserRequired)('has the browser the dashboard tests need', () => {
  expect(browserFound, `There is no browser at ${CHROMIUM_PATH}: install Debian's chromium package`).toBe(true);
});

describe.skipIf(!browserFound && !browserRequired)(suiteName, () => {
  let served: Served;
  let session: Session;

  beforeAll(async () => {
    served = await serve();
    session = await openDashboard(served.origin);
  });

  afterAll(async () => {
    await session?.context.close();
  });

  it('loads the page, its statechart and the agents from the server', async () => {
    const { page } = session;
    await waitFor(byTestId(page, 'connection', '[data-state="live"]'));
    await waitFor(byTestId(page, 'version'), /^v\d+\.\d+\.\d+/);
    await waitFor(page.locator('[data-testid="agent-select"] option[value="stepper"]'));
    expect(await page.locator('[data-testid="agent-select"] option').allTextContents()).toEqual(['stepper', 'forever', 'brief', 'snooper']);
    await waitFor(byTestId(page, 'agent-description'), 'Three steps');
    const states = await page.locator('[data-testid="state-node"]').evaluateAll((nodes) => nodes.map((node) => node.getAttribute('data-state')));
    expect(states).toEqual(['INIT', 'PLAN', 'EXECUTE', 'REVIEW', 'TERMINATE', 'FAILED']);
    expect(await page.locator('[data-testid="statechart"] [data-edge="REVIEW>EXECUTE"]').count()).toBe(1);
    // Where a run waits for a person: approvals and budgets inside the step, a budget between steps.
    expect(await page.locator('[data-testid="state-node"][data-state="EXECUTE"] [data-testid="state-waits"]').textContent()).toBe('awaits approval · budget');
    expect(await page.locator('[data-testid="state-node"][data-state="REVIEW"] [data-testid="state-waits"]').textContent()).toBe('awaits budget');
    await waitFor(byTestId(page, 'empty-detail'), 'No run selected');
    expectClean(session, served.origin);
  });

  it('starts a run from the form and follows it live until it succeeds', async () => {
    const { page } = session;
    const task = 'hold:live-run';
    const id = await startFromForm(page, 'stepper', task, { maxSteps: '5' });

    // While the run is held in its third step, the page must already show what happened so far.
    await waitFor(byTestId(page, 'run-detail', '[data-status="running"]'));
    await waitFor(byTestId(page, 'run-item', `[data-run-id="${id}"][data-status="running"]`));
    await waitFor(page.locator('[data-testid="state-node"][data-state="EXECUTE"][data-current="true"]'));
    await waitFor(page.locator('[data-testid="gauge"][data-gauge="steps"] [data-testid="gauge-value"]'), '3 / 5');
    await waitFor(page.locator('[data-testid="gauge"][data-gauge="tokens"] [data-testid="gauge-value"]'), '126 / 1,000');
    await waitFor(page.locator('[data-testid="gauge"][data-gauge="toolCalls"] [data-testid="gauge-value"]'), '3 / 8');
    await waitFor(page.locator('[data-testid="event-row"][data-type="TOOL_RESULT"]'));
    await waitFor(page.locator('[data-testid="event-row"][data-type="MODEL_RESULT"]'));
    await waitFor(page.locator('[data-testid="timeline-bar"][data-lane="models"][data-status="ok"]'));
    await waitFor(page.locator('[data-testid="timeline-bar"][data-lane="tools"][data-status="ok"]'));
    await waitFor(page.locator('[data-testid="timeline-bar"][data-lane="steps"][data-status="open"]'));
    expect(await page.locator('[data-testid="state-node"][data-state="REVIEW"]').getAttribute('data-visited')).toBe('true');
    expect(await byTestId(page, 'cancel-button').isEnabled()).toBe(true);
    expect((await apiGet(served.origin, `/runs/${id}`)).status).toBe('running');

    // Time keeps moving on the page while nothing else happens.
    const timeGauge = page.locator('[data-testid="gauge"][data-gauge="time"] [role="meter"]');
    const before = Number(await timeGauge.getAttribute('aria-valuenow'));
    await expect.poll(async () => Number(await timeGauge.getAttribute('aria-valuenow')), { timeout: WAIT_MS }).toBeGreaterThan(before);

    gate(task).resolve();
    await waitFor(byTestId(page, 'run-detail', '[data-status="SUCCESS"]'));
    await waitFor(page.locator('[data-testid="state-node"][data-state="TERMINATE"][data-current="true"]'));
    await waitFor(byTestId(page, 'report-status'), 'SUCCESS');
    await waitFor(byTestId(page, 'report-reason'), 'completed');
    await waitFor(byTestId(page, 'run-item', `[data-run-id="${id}"][data-status="SUCCESS"]`));
    await waitFor(page.locator('[data-testid="event-row"][data-type="EXECUTION_COMPLETE"]'));
    // A finished run cannot be cancelled, so it has no Cancel button at all.
    await expect.poll(() => byTestId(page, 'cancel-button').isHidden(), { timeout: WAIT_MS }).toBe(true);
    expect(await page.locator('[data-testid="timeline-bar"][data-status="open"]').count()).toBe(0);
    expect(await page.locator('[data-testid="timeline-bar"][data-lane="steps"]').count()).toBe(3);
    const events = await page.locator('[data-testid="event-row"]').count();
    expect(await byTestId(page, 'event-count').textContent()).toBe(String(events));

    // An event's full JSON is one click away.
    const toolCall = page.locator('[data-testid="event-row"][data-type="TOOL_CALL"]').first();
    await toolCall.locator('summary').click();
    await waitFor(toolCall.locator('[data-testid="event-json"]'), '"tool": "lookup"');

    const run = await apiGet(served.origin, `/runs/${id}`);
    expect(run).toMatchObject({ status: 'SUCCESS', agent: 'stepper', report: { totalSteps: 3, termination: { reason: 'completed' } } });
    expect(run.events).toBe(events);
    expectClean(session, served.origin);
  });

  it('cancels a run that would never end', async () => {
    const { page } = session;
    const id = await startFromForm(page, 'forever', 'until somebody stops me');
    await waitFor(page.locator('[data-testid="state-node"][data-state="EXECUTE"][data-current="true"]'));
    await waitFor(byTestId(page, 'run-item', `[data-run-id="${id}"][data-status="running"]`));
    const cancel = byTestId(page, 'cancel-button');
    await expect.poll(() => cancel.isEnabled(), { timeout: WAIT_MS }).toBe(true);
    await cancel.click();

    await waitFor(byTestId(page, 'run-detail', '[data-status="FAILED"]'));
    await waitFor(byTestId(page, 'detail-status'), 'FAILED · cancelled');
    await waitFor(byTestId(page, 'report-reason'), 'cancelled');
    await waitFor(page.locator('[data-testid="state-node"][data-state="FAILED"][data-current="true"]'));
    await waitFor(page.locator('[data-testid="timeline-mark"][data-kind="cancelled"]'));
    await waitFor(page.locator('[data-testid="timeline-bar"][data-lane="steps"][data-status="aborted"]'));
    await waitFor(byTestId(page, 'run-item', `[data-run-id="${id}"][data-status="FAILED"]`), 'cancelled');
    await waitFor(byTestId(page, 'announcer'), `Run ${id} finished: FAILED (cancelled)`);
    await expect.poll(() => cancel.isHidden(), { timeout: WAIT_MS }).toBe(true);

    const run = await apiGet(served.origin, `/runs/${id}`);
    expect(run).toMatchObject({ status: 'FAILED', termination: { reason: 'cancelled' } });
    expect(run.report.termination.message).toContain('cancelled from the dashboard');
    expectClean(session, served.origin);
  });

  it('shows a run started elsewhere, with its denied tool call and the violation it caused', async () => {
    const { page } = session;
    const started = await fetch(`${served.origin}/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ agent: 'snooper', task: '<img src=x onerror=alert(1)> & "quotes"' }),
    });
    expect(started.status).toBe(202);
    const { executionId } = (await started.json()) as { executionId: string };

    // It reaches the list by polling; picking it replays its events.
    const item = await waitFor(byTestId(page, 'run-item', `[data-run-id="${executionId}"][data-status="FAILED"]`));
    await item.click();
    await waitFor(byTestId(page, 'run-detail', `[data-run-id="${executionId}"][data-status="FAILED"]`));
    await waitFor(byTestId(page, 'report-rule'), 'tool_denied');
    await waitFor(page.locator('[data-testid="timeline-bar"][data-lane="tools"][data-status="denied"]'));
    await waitFor(page.locator('[data-testid="timeline-bar"][data-lane="tools"][data-status="ok"]'));
    await waitFor(page.locator('[data-testid="timeline-mark"][data-kind="violation"]'));
    await waitFor(page.locator('[data-testid="event-row"][data-type="TOOL_DENIED"]'), 'secrets denied');
    // Untrusted text is shown as text: the task's markup is not markup on the page.
    await waitFor(byTestId(page, 'run-subtitle'), '<img src=x onerror=alert(1)>');
    expect(await page.locator('[data-testid="run-detail"] img').count()).toBe(0);
    expect(page.url()).toContain(`#run=${encodeURIComponent(executionId)}`);
    // Its limits are shown; nothing was asked of this page for it, so nothing was lowered.
    await waitFor(byTestId(page, 'effective-limits'), 'Limits of this run: steps 6');
    expect(await byTestId(page, 'limits-lowered').isHidden()).toBe(true);
    expectClean(session, served.origin);
  });

  it('shows the server\'s error code and message when the form asks for the impossible', async () => {
    const { page } = session;
    await waitFor(page.locator('[data-testid="agent-select"] option[value="stepper"]'));
    await byTestId(page, 'agent-select').selectOption('stepper');
    await byTestId(page, 'task-input').fill('never starts');
    await byTestId(page, 'limit-maxSteps').fill('0');
    await byTestId(page, 'start-button').click();
    await waitFor(byTestId(page, 'form-error'), /OAO_ERR_INVALID_POLICY: body\.policy\.maxSteps/);
    await byTestId(page, 'limit-maxSteps').fill('');
    // Editing the form clears the error it no longer deserves.
    await expect.poll(() => byTestId(page, 'form-error').isHidden(), { timeout: WAIT_MS }).toBe(true);
    // Chromium reports the 400 answer itself in the console; nothing else may appear there.
    expectClean(session, served.origin, [/Failed to load resource: the server responded with a status of 400/]);
  });

  it('shows the server\'s limits in the form, and the limits the server gave a run that asked for more', async () => {
    const { page } = session;
    const details = page.locator('details.limits');
    if ((await details.getAttribute('open')) === null) await details.locator('summary').click();
    // The server's policy (GET /policy) is the ceiling: each field shows it before anything is typed.
    const placeholders = await page.locator('[data-limit]').evaluateAll((inputs) => inputs.map((input) => input.getAttribute('placeholder')));
    expect(placeholders).toEqual(['6 (server limit)', '1000 (server limit)', '8 (server limit)', '20000 (server limit)']);

    // Asking for more is said at once, before the run starts.
    await byTestId(page, 'limit-maxSteps').fill('50');
    await waitFor(byTestId(page, 'limits-warning'), 'steps 50 (limit 6)');

    const id = await startFromForm(page, 'brief', 'asks for more than the server allows', { maxSteps: '50', maxTokens: '300' });
    await waitFor(byTestId(page, 'run-detail', `[data-run-id="${id}"][data-status="SUCCESS"]`));
    // What the run got comes from its own EXECUTION_START: the narrower of each pair.
    await waitFor(byTestId(page, 'effective-limits'), 'Limits of this run: steps 6 · tokens 300 · tool calls 8 · timeout 20.0 s');
    const lowered = await waitFor(byTestId(page, 'limits-lowered'), 'steps 50 → 6');
    expect(await lowered.textContent()).not.toContain('tokens');
    await waitFor(page.locator('[data-testid="gauge"][data-gauge="steps"] [data-testid="gauge-value"]'), '1 / 6');
    await waitFor(page.locator('[data-testid="gauge"][data-gauge="tokens"] [data-testid="gauge-value"]'), '0 / 300');

    // An empty form warns of nothing.
    await byTestId(page, 'limit-maxSteps').fill('');
    await byTestId(page, 'limit-maxTokens').fill('');
    await expect.poll(() => byTestId(page, 'limits-warning').isHidden(), { timeout: WAIT_MS }).toBe(true);
    expectClean(session, served.origin, [/status of 400/]);
  });

  for (const width of [375, 1400]) {
    it(`fits a ${width} px wide screen: no sideways scrolling, the whole header, a readable chart, an axis as long as the run`, async () => {
      const screen = await openDashboard(served.origin, { width, height: 900 });
      const { page } = screen;
      try {
        await waitFor(byTestId(page, 'connection', '[data-state="live"]'));
        const id = await startFromForm(page, 'brief', `on a ${width} px screen`);
        await waitFor(byTestId(page, 'run-detail', `[data-run-id="${id}"][data-status="SUCCESS"]`));
        await waitFor(byTestId(page, 'report-status'), 'SUCCESS');
        await waitFor(page.locator('[data-testid="event-row"][data-type="EXECUTION_COMPLETE"]'));
        await page.mouse.move(0, 0);

        // Nothing is wider than the screen (the document scrolls nothing sideways), nor inside the widest panels.
        const viewport = await page.locator('html').evaluate((html) => ({ scrollWidth: html.scrollWidth, clientWidth: html.clientWidth }));
        expect(viewport.scrollWidth).toBeLessThanOrEqual(viewport.clientWidth);
        for (const panel of ['[data-testid="timeline"]', '[data-testid="event-log"]', '[data-testid="statechart-panel"]']) {
          expect(await page.locator(panel).evaluate((element) => element.scrollWidth <= element.clientWidth), panel).toBe(true);
        }

        // The header whole: each part of it inside the screen and inside the header.
        const header = page.locator('header.topbar');
        const headerBox = await boxOf(header);
        expect(await header.evaluate((element) => element.scrollWidth <= element.clientWidth)).toBe(true);
        for (const part of ['.brand-mark', '.brand-name', '[data-testid="version"]', '[data-testid="connection"]']) {
          const box = await boxOf(header.locator(part));
          expect(box.x, part).toBeGreaterThanOrEqual(0);
          expect(box.x + box.width, part).toBeLessThanOrEqual(viewport.clientWidth);
          expect(box.y, part).toBeGreaterThanOrEqual(headerBox.y);
          expect(box.y + box.height, part).toBeLessThanOrEqual(headerBox.y + headerBox.height);
        }
        expect(await header.locator('.brand-name').evaluate((element) => element.scrollWidth <= element.clientWidth)).toBe(true);

        // The statechart top to bottom on a phone, left to right on a desktop; its names readable on both.
        expect(await byTestId(page, 'statechart').getAttribute('data-layout')).toBe(width < 640 ? 'vertical' : 'horizontal');
        const stateName = await boxOf(page.locator('[data-testid="state-node"][data-state="EXECUTE"] .sc-name'));
        expect(stateName.height).toBeGreaterThanOrEqual(10);

        // The time axis ends just after the run, on a round value: not at a fixed minimum far beyond it.
        const events = await runEvents(served.origin, id);
        const startedAt = events.find((event) => event.type === 'EXECUTION_START')?.timestamp ?? Number.NaN;
        const span = (events.at(-1)?.timestamp ?? Number.NaN) - startedAt;
        expect(span).toBeGreaterThanOrEqual(13);
        const axisEnd = Number(await page.locator('[data-testid="timeline"] svg').getAttribute('data-axis-end'));
        expect(axisEnd).toBeGreaterThanOrEqual(span);
        expect(axisEnd).toBeLessThanOrEqual(Math.max(2 * span, span + 2));
        const ticks = await page.locator('[data-testid="timeline"] .tl-tick').allTextContents();
        expect(ticks.at(-1)).toBe(axisEnd < 1_000 ? `${axisEnd} ms` : `${axisEnd / 1_000} s`);

        // A finished run offers no Cancel button.
        expect(await byTestId(page, 'cancel-button').isHidden()).toBe(true);

        const shot = new URL(`../test-results/dashboard-${width}.png`, import.meta.url);
        await mkdir(new URL('.', shot), { recursive: true });
        await page.screenshot({ path: shot.pathname, fullPage: true });
        expect([...(await readFile(shot)).subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
        expectClean(screen, served.origin);
      } finally {
        await screen.context.close();
      }
    });
  }

  it('keeps a screenshot of the dashboard with a finished run selected', async () => {
    const { page } = session;
    // The three-step run: the fullest timeline of the runs so far.
    const item = await waitFor(byTestId(page, 'run-item', '[data-status="SUCCESS"]'), 'stepper');
    await item.click();
    await waitFor(byTestId(page, 'report-status'), 'SUCCESS');
    await waitFor(page.locator('[data-testid="state-node"][data-state="TERMINATE"][data-current="true"]'));
    await page.mouse.move(0, 0);
    await mkdir(new URL('.', SCREENSHOT), { recursive: true });
    await rm(SCREENSHOT, { force: true });
    await page.screenshot({ path: SCREENSHOT.pathname, fullPage: true });
    const png = await readFile(SCREENSHOT);
    expect(png.length).toBeGreaterThan(10_000);
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    expectClean(session, served.origin, [/status of 400/]);
  });
});

describe.skipIf(!browserFound && !browserRequired)(`${suiteName}, on a server with API keys`, () => {
  it('asks for the key, refuses a wrong one, then works with the right one', async () => {
    const key = 'dashboard-k3y';
    const served = await serve([key]);
    const session = await openDashboard(served.origin);
    const { page } = session;
    try {
      await waitFor(byTestId(page, 'connection', '[data-state="locked"]'));
      await waitFor(byTestId(page, 'api-key-form'));
      expect(await byTestId(page, 'main').isHidden()).toBe(true);

      await byTestId(page, 'api-key-input').fill('not-the-key');
      await byTestId(page, 'api-key-submit').click();
      // Said to the person at the page, not to an HTTP client: no header names, the code kept to look up.
      const refusal = await waitFor(byTestId(page, 'api-key-error'), 'OAO_ERR_UNAUTHORIZED');
      expect(await refusal.textContent()).toContain('The server did not accept this API key. Check it and try again.');
      expect(await refusal.textContent()).not.toMatch(/Authorization|Bearer|send /);
      expect(await byTestId(page, 'main').isHidden()).toBe(true);
      expect(await byTestId(page, 'forget-key').isHidden()).toBe(true);

      await byTestId(page, 'api-key-input').fill(key);
      await byTestId(page, 'api-key-submit').click();
      await waitFor(byTestId(page, 'connection', '[data-state="live"]'));
      expect(await byTestId(page, 'api-key-panel').isHidden()).toBe(true);
      expect(await byTestId(page, 'forget-key').isVisible()).toBe(true);
      expect(await page.evaluate(() => (globalThis as unknown as { sessionStorage: { getItem(k: string): string | null } }).sessionStorage.getItem('oao.apiKey'))).toBe(key);

      const id = await startFromForm(page, 'stepper', 'with a key');
      await waitFor(byTestId(page, 'run-detail', '[data-status="SUCCESS"]'));
      await waitFor(byTestId(page, 'run-item', `[data-run-id="${id}"][data-status="SUCCESS"]`));
      await waitFor(page.locator('[data-testid="event-row"][data-type="EXECUTION_COMPLETE"]'));
      expect((await apiGet(served.origin, `/runs/${id}`, key)).status).toBe('SUCCESS');

      // Every API call carried the key once it was given; the page's own files needed none.
      const apiCalls = session.requests.filter((request) => !new URL(request.url()).pathname.startsWith('/dashboard/'));
      expect(apiCalls.map((request) => new URL(request.url()).pathname)).toEqual(
        expect.arrayContaining(['/agents', '/policy', '/runs', `/runs/${id}`, `/runs/${id}/events`]),
      );
      const authorizations = await Promise.all(apiCalls.map(async (request) => (await request.allHeaders()).authorization));
      const refused = authorizations.filter((header) => header !== `Bearer ${key}`);
      expect(refused.length).toBeGreaterThan(0);
      expect(new Set(refused)).toEqual(new Set(['Bearer not-the-key']));

      // Forgetting the key locks the page again, and keeps it locked even when a run-list answer
      // sent with the old key arrives afterwards (the list requests are held back to make sure).
      const slowList = async (route: Route) => {
        await new Promise((resolve) => setTimeout(resolve, 400));
        await route.continue().catch(() => undefined);
      };
      await page.route(/\/runs\?/, slowList);
      await page.waitForRequest(/\/runs\?/, { timeout: WAIT_MS });
      await byTestId(page, 'forget-key').click();
      await waitFor(byTestId(page, 'connection', '[data-state="locked"]'));
      await page.waitForTimeout(700);
      expect(await byTestId(page, 'connection').getAttribute('data-state')).toBe('locked');
      await page.unroute(/\/runs\?/, slowList);
      // With the key back, it follows the same run again.
      expect(await byTestId(page, 'run-detail').getAttribute('data-run-id')).toBeNull();
      await byTestId(page, 'api-key-input').fill(key);
      await byTestId(page, 'api-key-submit').click();
      await waitFor(byTestId(page, 'run-detail', `[data-run-id="${id}"][data-status="SUCCESS"]`));
      await waitFor(page.locator('[data-testid="event-row"][data-type="EXECUTION_COMPLETE"]'));
      expectClean(session, served.origin, [/Failed to load resource: the server responded with a status of 401/]);
    } finally {
      await session.context.close();
    }
  });
});
