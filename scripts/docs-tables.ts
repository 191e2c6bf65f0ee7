/**
 * The README's configuration and metrics tables, generated from the code (src/config/schema.ts and
 * src/metrics/registry.ts) so they cannot drift: `npm run docs` rewrites them, a test checks them.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ENV } from '../src/config/schema.ts';
import { Metrics } from '../src/metrics/registry.ts';

export function configTable(): string {
  const rows = Object.entries(ENV).map(([name, spec]) => {
    const def = 'default' in spec ? `\`${spec.default}\`` : 'computedDefault' in spec ? spec.computedDefault : '—';
    return `| \`${name}\` | ${def} | ${spec.description} |`;
  });
  return ['| variable | default | meaning |', '|---|---|---|', ...rows].join('\n');
}

export function metricsTable(): string {
  const metrics = new Metrics().registry.getMetricsAsArray() as unknown as Array<{
    name: string;
    help: string;
    labelNames: readonly string[];
    constructor: { name: string };
  }>;
  const rows = metrics
    .filter((m) => m.name.startsWith('sluice_'))
    .map(
      (m) => `| \`${m.name}\` | ${m.constructor.name.toLowerCase()} | ${m.labelNames.join(', ') || '—'} | ${m.help} |`,
    );
  return ['| metric | type | labels | meaning |', '|---|---|---|---|', ...rows].join('\n');
}

export function replaceBlock(text: string, name: string, content: string): string {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i < 0 || j < i) throw new Error(`README has no ${start} … ${end} block`);
  return `${text.slice(0, i + start.length)}\n${content}\n${text.slice(j)}`;
}

export function renderReadme(readme: string): string {
  return replaceBlock(replaceBlock(readme, 'config-table', configTable()), 'metrics-table', metricsTable());
}

const invokedDirectly = process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname);
if (invokedDirectly) {
  const path = resolve(new URL('..', import.meta.url).pathname, 'README.md');
  writeFileSync(path, renderReadme(readFileSync(path, 'utf8')));
  console.log('README tables updated');
}
