import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Orchestrator, createMemoryStore } from '../src/index.js';
import { createServer } from '../src/server/index.js';
import { fakeRun } from './store/fakeLog.js';

/**
 * The dashboard reads the same API, so it shows what the store holds: runs recorded by another
 * process, and a run whose process stopped mid-run (`interrupted`), which it follows to its last
 * stored event and then stops following (the server's 204), without a cancel button.
 *
 * Without Chromium at CHROMIUM_PATH the suite is skipped, unless OAO_REQUIRE_BROWSER=1 (as in CI),
 * where it fails instead.
 */

const CHROMIUM_PATH = '/usr/bin/chromium';
const browserFound = existsSync(CHROMIUM_PATH);
const browserRequired = process.env.OAO_REQUIRE_BROWSER === '1';
/** Waiting on the browser: generous, because a loaded machine is slow, never a timing assertion. */
const WAIT_MS = 15_000;

let browser: Browser | undefined;
let app: FastifyInstance | undefined;

beforeAll(async () => {
  if (!browserFound) return;
  browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

afterAll(async () => {
  await browser?.close();
  await app?.close();
});

it.runIf(browserFound || browserRequired)('has the browser the dashboard tests need', () => {
  expect(browserFound, `There is no browser at ${CHROMIUM_PATH}: install Debian's chromium package`).toBe(true);
});

describe.skipIf(!browserFound && !browserRequired)('the dashboard on a store with runs of other processes', () => {
  it('lists a finished run and an interrupted one, and shows the interrupted run as such', { timeout: 60_000 }, async () => {
    const store = createMemoryStore();
    await new Orchestrator({ store }).run({ agent: (task: string) => `done: ${task}`, agentName: 'worker', task: 'earlier', executionId: 'finished-run' });
    // A run whose process died: part of its log, and a lease nobody renews any more.
    const lease = store.acquireLease('cut-short', 'a process that died', 60_000);
    if (lease === undefined) throw new Error('no lease');
    const events = fakeRun('cut-short', { status: 'running', steps: 2, agentName: 'worker', startedAt: Date.now() });
    store.append('cut-short', events, { lease });
    store.releaseLease(lease);

    app = await createServer({ agents: { worker: (task: string) => task }, store, apiKeys: [] });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    if (browser === undefined) throw new Error('The browser did not start');
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page: Page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    await page.goto(`${origin}/dashboard/`);

    const interruptedItem = page.locator('[data-testid="run-item"][data-run-id="cut-short"]');
    await interruptedItem.waitFor({ timeout: WAIT_MS });
    await page.locator('[data-testid="run-item"][data-run-id="finished-run"][data-status="SUCCESS"]').waitFor({ timeout: WAIT_MS });
    expect(await interruptedItem.getAttribute('data-status')).toBe('interrupted');
    expect(await interruptedItem.locator('[data-testid="run-status"]').textContent()).toBe('interrupted');

    await interruptedItem.click();
    const detail = page.locator('[data-testid="run-detail"][data-run-id="cut-short"][data-status="interrupted"]');
    await detail.waitFor({ timeout: WAIT_MS });
    await page.locator(`[data-testid="event-count"]`, { hasText: String(events.length) }).waitFor({ timeout: WAIT_MS });
    await page.locator('[data-testid="stream-state"]', { hasText: 'interrupted' }).waitFor({ timeout: WAIT_MS });
    expect(await page.locator('[data-testid="detail-status"]').textContent()).toBe('interrupted');
    expect(await page.locator('[data-testid="cancel-button"]').isHidden()).toBe(true);

    await page.locator('[data-testid="status-filter"]').selectOption('interrupted');
    await page.locator('[data-testid="run-item"][data-run-id="finished-run"]').waitFor({ state: 'detached', timeout: WAIT_MS });
    expect(await page.locator('[data-testid="run-item"]').count()).toBe(1);
    expect(problems).toEqual([]);
    await context.close();
  });
});
