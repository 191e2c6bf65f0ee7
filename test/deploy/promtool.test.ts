/**
 * Prometheus' own tool checks the Prometheus files: the scrape config (and the rule files it names),
 * the alert rules, their unit tests (deploy/prometheus/alerts.test.yml), and every query of the
 * Grafana dashboard (as recording rules, so that promtool parses them).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from '@jest/globals';
import { stringify } from 'yaml';
import { alertRules, dashboardExprs, deployDir, grafanaToPromQL, readYamlOne, run } from './support.ts';

const promDir = join(deployDir, 'prometheus');
const temp = mkdtempSync(join(tmpdir(), 'sluice-promtool-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

async function promtool(...args: string[]): Promise<string> {
  const result = await run('promtool', args, { cwd: promDir, timeoutMs: 30_000 });
  if (result.code !== 0) {
    throw new Error(`promtool ${args.join(' ')} exited ${result.code}:\n${result.stdout}\n${result.stderr}`);
  }
  return result.stdout + result.stderr;
}

describe('promtool', () => {
  test('check config: prometheus.yml and the rule files it names', async () => {
    expect(await promtool('check', 'config', 'prometheus.yml')).toMatch(/SUCCESS/);
  });

  test('check rules: alerts.yml', async () => {
    const out = await promtool('check', 'rules', 'alerts.yml');
    expect(out).toContain(`SUCCESS: ${alertRules().length} rules found`);
  });

  test('test rules: every alert fires in alerts.test.yml', async () => {
    expect(await promtool('test', 'rules', 'alerts.test.yml')).toMatch(/SUCCESS/);
    interface UnitTests {
      rule_files: string[];
      tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts: unknown[] }> }>;
    }
    const unit = readYamlOne<UnitTests>(join(promDir, 'alerts.test.yml'));
    expect(unit.rule_files).toEqual(['alerts.yml']);
    const firing = new Set(
      unit.tests.flatMap((t) =>
        (t.alert_rule_test ?? []).filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname),
      ),
    );
    expect([...firing].sort()).toEqual(
      alertRules()
        .map((r) => r.alert!)
        .sort(),
    );
  });

  test('every dashboard query is valid PromQL', async () => {
    const exprs = dashboardExprs();
    expect(exprs.length).toBeGreaterThan(20);
    const file = join(temp, 'dashboard-queries.yml');
    const rules = exprs.map((e, i) => ({
      record: `dashboard:query_${i}`,
      expr: grafanaToPromQL(e.expr, { job: 'sluice' }),
    }));
    writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules }] }));
    expect(await promtool('check', 'rules', file)).toContain(`SUCCESS: ${rules.length} rules found`);
  });
});
