/**
 * `npm run bench:charts`: SVG charts of a benchmark result (bench/lib/charts.ts).
 *
 * Usage: node bench/charts.ts [results.json] [--out DIR] [--prefix NAME]
 * Default: the newest bench/results/bench-*.json, charts next to it, named after it
 * (`<prefix>-throughput.svg`, `<prefix>-rss.svg`, `<prefix>-latency-<job>-<metric>.svg`, `<prefix>-scaling.svg`).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { writeCharts, type ChartInput } from './lib/charts.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { out: { type: 'string' }, prefix: { type: 'string' } },
});

function newestResult(): string {
  const dir = join(root, 'bench', 'results');
  // ISO timestamps in the names: the last in lexical order is the newest.
  const files = readdirSync(dir)
    .filter((f) => /^bench-.*\.json$/.test(f))
    .sort();
  const last = files.at(-1);
  if (!last) throw new Error(`no bench-*.json in ${dir}: run \`npm run bench\` first, or name a file`);
  return join(dir, last);
}

const file = positionals[0] ? resolve(positionals[0]) : newestResult();
const result = JSON.parse(readFileSync(file, 'utf8')) as ChartInput;
const out = values.out ? resolve(values.out) : dirname(file);
const prefix = values.prefix ?? basename(file).replace(/\.json$/, '');
const written = await writeCharts(result, out, prefix);
if (written.length === 0) console.error(`${file}: nothing to chart`);
for (const path of written) console.log(path);
