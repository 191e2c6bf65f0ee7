/**
 * The status page in a real browser: the real service runs the page-windows job while a live
 * clickstream is produced; headless Chromium opens `/` and must show the job, draw every chart from
 * live data, list the partitions and the dead letters, without a console error or a failed request,
 * and without leaving the service's origin (the page works offline). Screenshots, light and dark, go
 * to `test/artifacts/`.
 */
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from '@jest/globals';
import { chromium, type Browser } from 'playwright-core';
import { runGenerator, type GeneratorStats } from '../../examples/generator/clickstream.ts';
import { createTopic, onCleanup, testBrokers, uniqueName } from '../helpers.ts';
import { startService } from '../support/service.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const artifacts = join(root, 'test', 'artifacts');
const PARTITIONS = 4;
const RATE = 800;

/** The DOM the page functions below read (this project compiles without the DOM library). */
declare const document: {
  body: { dataset: Record<string, string | undefined> };
  querySelectorAll(selector: string): { length: number };
};

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

describe('status page', () => {
  test('shows live charts, partitions and errors in a real browser, without errors', async () => {
    const input = await createTopic(uniqueName('sp-in'), PARTITIONS);
    const output = uniqueName('sp-out');
    const name = uniqueName('sp-job');
    const service = await startService({
      job: 'test/fixtures/jobs/page-windows.ts',
      env: { TEST_JOB_NAME: name, TEST_INPUT: input, TEST_OUTPUT: output },
    });
    onCleanup(() => service.stop());
    await service.waitReady();

    // Live traffic for the whole test: a few thousand records, event time = now, with the default mix
    // of out-of-order, late and malformed records (the late and malformed ones become dead letters).
    const abort = new AbortController();
    const generator: Promise<GeneratorStats> = runGenerator({
      brokers: testBrokers(),
      topic: input,
      ratePerSecond: RATE,
      signal: abort.signal,
      limit: 40_000,
      lateFraction: 0.004,
      malformedFraction: 0.002,
      seed: 7,
    });
    onCleanup(async () => {
      abort.abort();
      await generator.catch(() => undefined);
    });

    let browser: Browser | undefined;
    try {
      browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
      const page = await browser.newPage({ viewport: { width: 1440, height: 900 }, colorScheme: 'light' });
      const consoleErrors: string[] = [];
      const failedRequests: string[] = [];
      const foreignRequests: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') consoleErrors.push(`${m.type()}: ${m.text()}`);
      });
      page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
      page.on('requestfailed', (r) => failedRequests.push(`${r.url()}: ${r.failure()?.errorText ?? '?'}`));
      page.on('response', (r) => {
        if (r.status() >= 400) failedRequests.push(`${r.url()}: HTTP ${r.status()}`);
      });
      page.on('request', (r) => {
        if (!r.url().startsWith(`${service.url}/`)) foreignRequests.push(r.url());
      });

      const response = await page.goto(`${service.url}/`, { waitUntil: 'load' });
      expect(response?.status()).toBe(200);

      // The charts have data: batches with records, several lag samples, every uPlot canvas drawn.
      await page.waitForFunction(
        () => {
          const d = document.body.dataset;
          return (
            Number(d['batches']) >= 25 &&
            Number(d['records']) > 0 &&
            Number(d['lagPoints']) >= 4 &&
            document.querySelectorAll('.uplot canvas').length === 5
          );
        },
        null,
        { timeout: 60_000, polling: 250 },
      );
      // The errors panel has the dead letters by code (polled every 4 s).
      await page.waitForSelector('#dead-letters .mono', { timeout: 30_000 });

      expect(await page.textContent('#job-name')).toBe(name);
      expect(await page.title()).toBe(`${name} · Sluice`);
      expect(await page.textContent('#state-pill')).toBe('running · ready');
      expect(await page.textContent('#s-inputs')).toBe(input);
      expect(await page.textContent('#s-output')).toBe(output);
      expect(await page.textContent('#s-dlq')).toBe(`${name}-dlq`);
      expect(await page.textContent('#s-repartition')).toBe(`${name}-repartition`);
      expect(await page.textContent('#s-interval')).toBe('200 ms');
      expect(await page.textContent('#stat-rate')).toMatch(/avg [\d,.]+ records\/s/);
      expect(await page.textContent('#stat-processing')).toMatch(/avg [\d,.]+ m?s/);
      // Input partitions and as many repartition partitions, all assigned to this one replica.
      expect(await page.locator('#partitions tbody tr').count()).toBe(2 * PARTITIONS);
      expect(await page.locator('#batches tbody tr').count()).toBe(12);
      const codes = await page.locator('#dead-letters .mono').allTextContents();
      expect(codes.every((c) => /^SLUICE_[A-Z_]+$/.test(c))).toBe(true);
      // One lag series per partition in the chart's legend (plus the time column).
      expect(await page.locator('#chart-lag .u-legend .u-series').count()).toBe(2 * PARTITIONS + 1);
      const records = Number(await page.getAttribute('body', 'data-records'));
      expect(records).toBeGreaterThan(0);

      mkdirSync(artifacts, { recursive: true });
      await page.screenshot({ path: join(artifacts, 'status-page.png'), fullPage: true });
      // The dark theme: the charts are rebuilt with its colours, live.
      await page.emulateMedia({ colorScheme: 'dark' });
      await page.waitForTimeout(2_500);
      await page.screenshot({ path: join(artifacts, 'status-page-dark.png'), fullPage: true });

      expect(consoleErrors).toEqual([]);
      expect(failedRequests).toEqual([]);
      expect(foreignRequests).toEqual([]);
    } finally {
      await browser?.close();
      abort.abort();
    }
    const sent = await generator;
    expect(sent.sent).toBeGreaterThan(2_000);
    const exit = await service.stop();
    expect(exit.code).toBe(0);
  });
});
