import { existsSync } from 'node:fs';
import cors from '@fastify/cors';
import Fastify, { type FastifyInstance } from 'fastify';
import { chromium, type Browser, type Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oaoPlugin } from '../src/server/index.js';

/**
 * The dashboard of an API mounted under a prefix, in a real browser: the page must find the API
 * below the same prefix (it derives the base from its own URL), list the agents, start a run and
 * follow it to its report, and never call a URL outside the prefix. Skipped like the other
 * browser tests when Chromium is missing, unless OAO_REQUIRE_BROWSER=1.
 */

const CHROMIUM_PATH = '/usr/bin/chromium';
const browserFound = existsSync(CHROMIUM_PATH);
const browserRequired = process.env.OAO_REQUIRE_BROWSER === '1';
/** Waiting on the browser: generous, because a loaded machine is slow, never a timing assertion. */
const WAIT_MS = 15_000;

const echo = { description: 'Repeats the task.', invoke: (task: unknown) => ({ output: `echo: ${String(task)}` }) };

let app: FastifyInstance | undefined;
let origin = '';
let browser: Browser | undefined;

beforeAll(async () => {
  if (!browserFound) return;
  app = Fastify();
  await app.register(cors, { origin: false });
  app.get('/', () => ({ app: 'the user app' }));
  await app.register(oaoPlugin, {
    prefix: '/oao',
    agents: { echo },
    apiKeys: [],
  });
  origin = await app.listen({ port: 0, host: '127.0.0.1' });
  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] });
});

afterAll(async () => {
  await browser?.close();
  await app?.close();
});

describe.skipIf(!browserFound && !browserRequired)('the dashboard under a prefix, in Chromium', () => {
  it('calls the API below its own prefix and follows a run it starts to its report', { timeout: 60_000 }, async () => {
    expect(browserFound, `There is no browser at ${CHROMIUM_PATH}`).toBe(true);
    const context = await (browser as Browser).newContext();
    const page = await context.newPage();
    const requests: Request[] = [];
    const problems: string[] = [];
    page.on('request', (request) => requests.push(request));
    page.on('pageerror', (error) => problems.push(error.message));
    try {
      await page.goto(`${origin}/oao/dashboard/`);
      await page.locator('[data-testid="agent-select"] option[value="echo"]').waitFor({ state: 'attached', timeout: WAIT_MS });
      await page.locator('[data-testid="agent-select"]').selectOption('echo');
      await page.locator('[data-testid="task-input"]').fill('from the prefixed page');
      const [answer] = await Promise.all([
        page.waitForResponse((response) => response.request().method() === 'POST' && new URL(response.url()).pathname === '/oao/runs', { timeout: WAIT_MS }),
        page.locator('[data-testid="start-button"]').click(),
      ]);
      expect(answer.status()).toBe(202);
      const { executionId } = (await answer.json()) as { executionId: string };
      await page.locator(`[data-testid="run-detail"][data-run-id="${executionId}"][data-status="SUCCESS"]`).waitFor({ state: 'attached', timeout: WAIT_MS });
      await page.locator('[data-testid="event-row"][data-type="EXECUTION_COMPLETE"]').first().waitFor({ state: 'attached', timeout: WAIT_MS });

      const paths = requests.map((request) => new URL(request.url()));
      expect(paths.filter((url) => url.origin !== origin)).toEqual([]);
      expect(paths.map((url) => url.pathname).filter((path) => !path.startsWith('/oao/'))).toEqual([]);
      expect(paths.some((url) => url.pathname === '/oao/agents')).toBe(true);
      expect(paths.some((url) => url.pathname === `/oao/runs/${executionId}/events`)).toBe(true);
      expect(problems).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
