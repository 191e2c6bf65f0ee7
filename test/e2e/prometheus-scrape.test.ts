/**
 * A real Prometheus scrapes the real service: the page-windows job runs as its own process, N records
 * go through it, and Prometheus (scraping every second, with deploy/prometheus/alerts.yml loaded)
 * answers `sum(sluice_records_in_total{topic="<input>"})` = N. Every query of the Grafana dashboard
 * and every alert expression runs against that Prometheus without an error, the dashboard's core
 * panels have data, and the alert rules evaluate cleanly. Prometheus is stopped with SIGTERM and
 * must exit 0.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from '@jest/globals';
import { stringify } from 'yaml';
import { freePort } from '../../scripts/kafka/local-broker.ts';
import { createTopic, onCleanup, uniqueName, waitFor } from '../helpers.ts';
import { alertRules, dashboardExprs, deployDir, grafanaToPromQL, root } from '../deploy/support.ts';
import { metricValue, startService, type RunningService } from '../support/service.ts';
import { testProducer } from '../support/topics.ts';

const N = 600;
const PARTITIONS = 3;

interface QueryResult {
  status: 'success' | 'error';
  error?: string;
  data: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
}

interface RunningPrometheus {
  url: string;
  process: ChildProcess;
  output(): string;
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const temp = mkdtempSync(join(tmpdir(), 'sluice-prometheus-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

/** Starts `prometheus` on a free loopback port, scraping `target` every second. */
async function startPrometheus(target: string): Promise<RunningPrometheus> {
  const port = await freePort();
  const config = join(temp, 'prometheus.yml');
  writeFileSync(
    config,
    stringify({
      global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
      rule_files: [join(deployDir, 'prometheus', 'alerts.yml')],
      scrape_configs: [{ job_name: 'sluice', metrics_path: '/metrics', static_configs: [{ targets: [target] }] }],
    }),
  );
  const child = spawn(
    'prometheus',
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(temp, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { cwd: temp, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  // A missing binary emits 'error' and no 'exit': either one ends the wait.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (error) => {
      out += `could not start prometheus (is it installed? scripts/system-deps.sh installs it): ${error.message}\n`;
      resolve({ code: null, signal: null });
    });
  });
  let done = false;
  void exited.then(() => (done = true));
  const prometheus: RunningPrometheus = {
    url: `http://127.0.0.1:${port}`,
    process: child,
    output: () => out,
    async stop() {
      if (!done) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
  onCleanup(() => prometheus.stop());
  await waitFor(
    'Prometheus ready',
    async () => {
      if (done) throw new Error(`prometheus exited:\n${out}`);
      try {
        return (await fetch(`${prometheus.url}/-/ready`)).ok ? true : undefined;
      } catch {
        return undefined;
      }
    },
    20_000,
  );
  return prometheus;
}

async function query(prometheus: RunningPrometheus, promql: string): Promise<QueryResult> {
  const res = await fetch(`${prometheus.url}/api/v1/query?query=${encodeURIComponent(promql)}`);
  return (await res.json()) as QueryResult;
}

describe('Prometheus scraping the service', () => {
  test(`counts the ${N} records the service read, and runs the dashboard's queries and the alert rules`, async () => {
    const input = await createTopic(uniqueName('prom-in'), PARTITIONS);
    const output = uniqueName('prom-out');
    const job = uniqueName('prom-job');
    const service: RunningService = await startService({
      job: join(root, 'test', 'fixtures', 'jobs', 'page-windows.ts'),
      env: { TEST_JOB_NAME: job, TEST_INPUT: input, TEST_OUTPUT: output },
    });
    onCleanup(() => service.stop('SIGKILL'));
    const [prometheus] = await Promise.all([startPrometheus(`127.0.0.1:${service.port}`), service.waitReady()]);

    const producer = await testProducer();
    const now = Date.now();
    await producer.send({
      topic: input,
      messages: Array.from({ length: N }, (_, i) => ({
        key: `user-${i % 37}`,
        value: JSON.stringify({ page: `/page-${i % 11}`, user: `user-${i % 37}`, ts: now - 30_000 + i }),
      })),
    });
    // The service has read them all…
    await waitFor(
      'the service to read every record',
      async () =>
        metricValue(await service.metrics(), 'sluice_records_in_total', { topic: input }) === N ? true : undefined,
      30_000,
    );
    // …and Prometheus has scraped that.
    const promql = `sum(sluice_records_in_total{topic="${input}"})`;
    const total = await waitFor(
      'Prometheus to scrape the count',
      async () => {
        const result = await query(prometheus, promql);
        const value = Number(result.data?.result[0]?.value[1]);
        return value === N ? value : undefined;
      },
      20_000,
    );
    expect(total).toBe(N);
    const byPartition = await query(prometheus, `sum by (partition) (sluice_records_in_total{topic="${input}"})`);
    expect(byPartition.data.result.map((r) => r.metric['partition']).sort()).toEqual(['0', '1', '2']);

    // Every dashboard query and alert expression is valid against real data; the core panels have some.
    const rateWindow = '10s'; // $__rate_interval at a 1 s scrape interval
    const expressions = [
      ...dashboardExprs().map((e) => ({
        where: `dashboard: ${e.panel}`,
        expr: grafanaToPromQL(e.expr.replace(/\$__rate_interval/g, rateWindow), { job: 'sluice' }),
      })),
      ...alertRules().map((r) => ({ where: `alert: ${r.alert!}`, expr: r.expr })),
    ];
    const core = [
      'Input rate',
      'Processing time',
      'Scheduling delay',
      'Total delay',
      'Consumer lag per partition',
      'Open windows',
      'Buffer',
      'Worker busy',
      'Memory (RSS)',
    ].map((panel) => `dashboard: ${panel}`);
    // Rates need two samples in their window: poll until the core panels have data.
    const empty = await waitFor(
      'the core panels to have data',
      async () => {
        const none: string[] = [];
        for (const { where, expr } of expressions) {
          const result = await query(prometheus, expr);
          expect({ where, status: result.status, error: result.error }).toEqual({
            where,
            status: 'success',
            error: undefined,
          });
          if (result.data.result.length === 0) none.push(where);
        }
        return core.some((panel) => none.includes(panel)) ? undefined : none;
      },
      20_000,
    );
    for (const panel of core) expect(empty).not.toContain(panel);

    // The alert rules loaded and evaluate without errors; a healthy service fires none.
    const rules = await waitFor(
      'rules evaluated',
      async () => {
        const res = (await (await fetch(`${prometheus.url}/api/v1/rules`)).json()) as {
          data: {
            groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string; state: string }> }>;
          };
        };
        const all = res.data.groups.flatMap((g) => g.rules);
        return all.length > 0 && all.every((r) => r.health === 'ok') ? all : undefined;
      },
      10_000,
    );
    expect(rules.map((r) => r.name).sort()).toEqual(
      alertRules()
        .map((r) => r.alert!)
        .sort(),
    );
    expect(rules.filter((r) => r.state === 'firing').map((r) => r.name)).toEqual([]);

    expect(await prometheus.stop()).toEqual({ code: 0, signal: null });
    expect(prometheus.process.exitCode).toBe(0);
    expect(await service.stop()).toEqual({ code: 0, signal: null });
  });
});
