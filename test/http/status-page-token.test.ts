/**
 * The status page with SLUICE_HTTP_TOKEN, in a real browser against the HTTP server in process (no
 * Kafka): opened at `/#token=…` it takes the token, removes it from the address bar and sends it with
 * every API call (no 401, the job shown); opened without one it asks once the API refuses it, says so
 * when a wrong token is entered, works with the right one and keeps it for the tab across a reload.
 */
import { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { type FastifyInstance } from 'fastify';
import pino from 'pino';
import { chromium, type Browser, type Page } from 'playwright-core';
import { Registry } from 'prom-client';
import { buildHttpServer } from '../../src/http/server.ts';
import { BatchHistory } from '../../src/scheduler/batch-history.ts';

const TOKEN = 'f00dfacecafebeef0123456789abcdef';
const JOB = 'token-job';

/** The DOM the page functions below read (this project compiles without the DOM library). */
declare const document: { querySelector(selector: string): { textContent: string | null } | null };

let app: FastifyInstance;
let url: string;
let browser: Browser;

beforeAll(async () => {
  const history = new BatchHistory(50);
  const now = Date.now();
  for (let id = 1; id <= 5; id++) {
    history.add({
      id,
      scheduledAt: now - (6 - id) * 200,
      startedAt: now - (6 - id) * 200 + 3,
      records: 100,
      inputRecords: 100,
      outputs: 2,
      late: 0,
      deadLettered: 0,
      processingMs: 20,
      schedulingDelayMs: 3,
      totalDelayMs: 23,
      outcome: 'ok',
    });
  }
  app = buildHttpServer({
    logger: pino({ level: 'silent' }),
    registry: new Registry(),
    history,
    liveness: () => ({ ok: true }),
    readiness: () => ({ ok: true }),
    status: () => ({
      job: JOB,
      groupId: JOB,
      state: 'running',
      batchIntervalMs: 200,
      inputTopics: ['in'],
      outputTopic: 'out',
      dlqTopic: `${JOB}-dlq`,
      repartitionTopic: null,
      workers: 1,
      workerRestarts: 0,
      tasks: [],
      buffer: { records: 0, bytes: 0, paused: 0 },
      partitions: [
        {
          topic: 'in',
          partition: 0,
          kind: 'windowed',
          position: 10,
          highWatermark: 10,
          lag: 0,
          streamTime: Date.now(),
          buffered: 0,
          rewinding: false,
          restoring: null,
        },
      ],
    }),
    auth: { token: TOKEN, metricsRequireToken: false },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox'] });
});

afterAll(async () => {
  await browser?.close();
  await app?.close();
});

/** Every API response the page got, with whether its request carried the token. */
function watch(page: Page): Array<{ path: string; status: number; withToken: boolean }> {
  const seen: Array<{ path: string; status: number; withToken: boolean }> = [];
  page.on('response', (r) => {
    const path = new URL(r.url()).pathname;
    if (!path.startsWith('/api/')) return;
    seen.push({ path, status: r.status(), withToken: r.request().headers()['authorization'] === `Bearer ${TOKEN}` });
  });
  return seen;
}

const jobShown = (page: Page) =>
  page.waitForFunction((job) => document.querySelector('#job-name')?.textContent === job, JOB, { timeout: 15_000 });

describe('status page with an API token', () => {
  test('/#token=… : taken, removed from the address bar, sent with every API call', async () => {
    const page = await browser.newPage();
    const seen = watch(page);
    await page.goto(`${url}/#token=${TOKEN}`);
    await jobShown(page);
    await page.waitForFunction(() => document.querySelector('#updated')?.textContent?.startsWith('updated') === true);
    expect(page.url()).toBe(`${url}/`);
    const paths = new Set(seen.map((s) => s.path));
    expect([...paths].sort()).toEqual(['/api/batches', '/api/errors', '/api/status']);
    expect(seen.every((s) => s.status === 200 && s.withToken)).toBe(true);
    expect(await page.isVisible('#token-form')).toBe(false);
    await page.close();
  });

  test('without a token: asked once refused; a wrong one is refused; the right one works and stays for the tab', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const seen = watch(page);
    await page.goto(`${url}/`);
    await page.waitForSelector('#token-form', { state: 'visible', timeout: 15_000 });
    expect(await page.textContent('#token-hint')).toBe('This service needs an access token.');
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((s) => s.status === 401 && !s.withToken)).toBe(true);
    expect(await page.textContent('#job-name')).toBe('…');

    await page.fill('#token-input', `${TOKEN}0`);
    await page.click('#token-form button');
    await page.waitForSelector('#token-form', { state: 'visible', timeout: 15_000 });
    await page.waitForFunction(
      () => document.querySelector('#token-hint')?.textContent === 'The service refused this token.',
    );

    await page.fill('#token-input', TOKEN);
    await page.click('#token-form button');
    await jobShown(page);
    expect(await page.isVisible('#token-form')).toBe(false);

    // Kept for the tab: a reload sends it from the first request on.
    seen.length = 0;
    await page.reload();
    await jobShown(page);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((s) => s.status === 200 && s.withToken)).toBe(true);
    await context.close();
  });
});
