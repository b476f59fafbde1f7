import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow, type AgentContext } from '../src/index.js';
import { createServer } from '../src/server/index.js';
import { createGates } from './helpers.js';

/**
 * The dashboard's workflow view in a real browser (Debian's Chromium through playwright-core)
 * against a real server: nodes and edges coloured by status, a click opening a node's run.
 */

const CHROMIUM_PATH = '/usr/bin/chromium';
const browserFound = existsSync(CHROMIUM_PATH);
const browserRequired = process.env.OAO_REQUIRE_BROWSER === '1';
const WAIT_MS = 15_000;
const T = 60_000;

const gates = createGates();
const echo = { name: 'echo', invoke: (task: unknown) => ({ output: task }) };
const held = {
  name: 'held',
  async invoke(task: unknown, ctx: AgentContext) {
    await new Promise<void>((resolve, reject) => {
      ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true });
      void gates.gate('held').promise.then(resolve);
    });
    return { output: task };
  },
};
const broken = {
  name: 'broken',
  invoke: () => {
    throw Object.assign(new Error('broken'), { retryable: false });
  },
};
const article = defineWorkflow({
  id: 'article',
  nodes: {
    research: { agent: echo },
    write: { agent: held, needs: ['research'] },
    check: { agent: broken, needs: ['research'] },
    publish: { agent: echo, needs: ['check'] },
    notify: { agent: echo, needs: ['write'], when: () => false },
  },
});

let browser: Browser | undefined;
let app: Awaited<ReturnType<typeof createServer>> | undefined;
let origin = '';

beforeAll(async () => {
  if (!browserFound) return;
  app = await createServer({ agents: { echo }, workflows: { article }, logger: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] });
}, T);

afterAll(async () => {
  gates.openAll();
  await browser?.close();
  await app?.close();
});

it.runIf(browserFound || browserRequired)('has the browser the dashboard tests need', () => {
  expect(browserFound, `There is no browser at ${CHROMIUM_PATH}`).toBe(true);
});

describe.skipIf(!browserFound && !browserRequired)('the workflow view in Chromium', () => {
  it('starts a run, colours nodes and edges by status as it goes, and opens a node\'s run on click', async () => {
    const context = await (browser as Browser).newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    // The runs page links to the workflow view.
    await page.goto(`${origin}/dashboard/`);
    await page.locator('[data-testid="workflows-link"]').click();
    await page.waitForURL(`${origin}/dashboard/workflows.html`, { timeout: WAIT_MS });
    await expect.poll(() => page.locator('[data-testid="workflow-select"] option').allTextContents(), { timeout: WAIT_MS }).toEqual(['article']);
    await page.locator('[data-testid="workflow-input"]').fill('{"topic":"AI"}');
    await page.locator('[data-testid="workflow-start"]').click();

    const node = (name: string) => page.locator(`[data-testid="workflow-node"][data-node="${name}"]`);
    // While `write` is held, it shows running; the failed branch is already settled.
    await expect.poll(() => node('write').getAttribute('data-status'), { timeout: WAIT_MS }).toBe('running');
    expect(await node('check').getAttribute('data-status')).toBe('FAILED');
    expect(await node('publish').getAttribute('data-status')).toBe('SKIPPED');
    expect(await node('research').getAttribute('data-status')).toBe('SUCCESS');
    expect(await page.locator('[data-edge]').evaluateAll((lines) => lines.map((line) => line.getAttribute('data-edge')))).toEqual(
      expect.arrayContaining(['research->write', 'research->check', 'check->publish', 'write->notify']),
    );
    // Colour follows status: a failed node's border is not a succeeded one's.
    const stroke = (name: string) => node(name).locator('rect').getAttribute('stroke');
    expect(await stroke('check')).not.toBe(await stroke('research'));

    gates.gate('held').resolve();
    await expect.poll(() => page.locator('[data-testid="workflow-status"]').textContent(), { timeout: WAIT_MS }).toBe('FAILED');
    expect(await node('write').getAttribute('data-status')).toBe('SUCCESS');
    expect(await node('notify').getAttribute('data-status')).toBe('SKIPPED');

    const runId = /#workflow-run=(.+)$/.exec(page.url())?.[1];
    expect(runId).toBeDefined();
    const view = (await (await fetch(`${origin}/workflow-runs/${runId}`)).json()) as { result: { nodes: Record<string, { report?: { executionId: string } }> } };
    const writeRun = view.result.nodes.write?.report?.executionId as string;
    await node('write').click();
    await page.waitForURL(`${origin}/dashboard/#run=${encodeURIComponent(writeRun)}`, { timeout: WAIT_MS });
    expect(problems).toEqual([]);
    await context.close();
  }, T);
});
