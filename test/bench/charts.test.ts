/**
 * The benchmark's charts (bench/lib/charts.ts) on a small result: every chart is well-formed SVG whose
 * text names every system, figures that failed their check are marked, and parts a result lacks
 * (scaling, latency, an older file's fields) give no chart or a legacy one instead of an error.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, test } from '@jest/globals';
import { writeCharts, type BenchResult, type ChartInput, type LatencyRow } from '../../bench/lib/charts.ts';

const dir = mkdtempSync(join(tmpdir(), 'sluice-charts-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const row = (system: string, check: string, recordsPerSec: number, peakRssMb: number | null) => ({
  system,
  check,
  recordsPerSec,
  mbPerSec: recordsPerSec / 10_000,
  ratioA: null,
  ratioB: null,
  peakRssMb,
});

const lat = (
  system: string,
  job: LatencyRow['job'],
  metric: LatencyRow['metric'],
  setting: number,
  fraction: number,
  p50: number,
  check = 'exact',
): LatencyRow => ({
  system,
  job,
  metric,
  setting,
  fraction,
  targetRate: Math.round(150_000 * fraction),
  achievedRate: Math.round(149_000 * fraction),
  samples: 60,
  p50,
  p95: p50 * 1.2,
  p99: p50 * 1.3,
  max: p50 * 1.5,
  peakRssMb: 250,
  check,
});

const full: BenchResult = {
  records: 100_000,
  partitions: 8,
  recordSize: 100,
  rows: [
    row('ceiling A: kafkajs consume', 'n/a', 900_000, 300),
    row('ceiling B: Java consumer', 'n/a', 1_300_000, null),
    row('Sluice page-views (windowed, exactly-once)', 'exact', 120_000, 240),
    row('Sluice stateless map/filter (exactly-once)', 'exact', 90_000, 250),
    row('Kafka Streams page-views', '3028 mismatches, e.g. /a|0: expected 3, got 1', 77_000, 500),
    row('Spark Structured Streaming page-views', 'failed: spark-submit exited 1', 0, null),
  ],
  latency: [
    lat('sluice', 'windowed', 'end-to-end', 1000, 0.2, 4500),
    lat('sluice', 'windowed', 'end-to-end', 100, 0.2, 2800),
    lat('kafka-streams', 'windowed', 'end-to-end', 100, 0.2, 2700),
    lat('sluice', 'windowed', 'end-to-end', 1000, 0.5, 14_000),
    lat('spark', 'windowed', 'end-to-end', 1000, 0.5, 9000, '3 windows differ'),
    {
      ...lat('kafka-streams', 'windowed', 'end-to-end', 1000, 0.5, 0, 'incomplete: 0/60 windows'),
      samples: 0,
      // What JSON makes of the NaN percentiles of a run without samples.
      ...({ p50: null, p95: null, p99: null, max: null } as unknown as Pick<LatencyRow, 'p50'>),
    },
    lat('sluice', 'windowed', 'close', 250, 0.2, 900),
    // Stateless: a spread wide enough for a log scale.
    lat('sluice', 'stateless', 'end-to-end', 100, 0.2, 40),
    lat('sluice', 'stateless', 'end-to-end', 100, 0.8, 9000),
  ],
  scaling: [
    { workers: 1, partitions: 8, recordsPerSec: 100_000, peakRssMb: 240, check: 'exact' },
    { workers: 2, partitions: 8, recordsPerSec: 150_000, peakRssMb: 300, check: 'exact' },
    { workers: 4, partitions: 8, recordsPerSec: 160_000, peakRssMb: 380, check: 'exact' },
    { workers: 1, partitions: 32, recordsPerSec: 90_000, peakRssMb: 250, check: 'exact' },
    { workers: 2, partitions: 32, recordsPerSec: 140_000, peakRssMb: 310, check: '2 mismatches, e.g. x' },
    { workers: 4, partitions: 32, recordsPerSec: 170_000, peakRssMb: 400, check: 'exact' },
  ],
  state: [{ aggregator: 'count()', entries: 1000, heapBytes: 117_000, bytesPerEntry: 117 }],
};

/** Checks that `svg` is one well-formed XML element tree rooted at <svg>; returns its text content. */
function parseSvg(svg: string): { root: string; texts: string[] } {
  const decode = (s: string): string =>
    s.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);/gi, (_, e: string) => {
      if (e[0] === '#')
        return String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : Number(e.slice(1)));
      return { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }[e.toLowerCase()]!;
    });
  const stack: string[] = [];
  const texts: string[] = [];
  let root = '';
  let at = 0;
  const tag = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>/y;
  while (at < svg.length) {
    const lt = svg.indexOf('<', at);
    const content = svg.slice(at, lt === -1 ? svg.length : lt);
    // Character data: entities only, no stray markup, and none outside the root element.
    expect(content).not.toMatch(/&(?!(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);)|>/i);
    if (stack.length === 0) expect(content.trim()).toBe('');
    else if (stack.at(-1) === 'text' || stack.at(-1) === 'tspan') texts.push(decode(content));
    if (lt === -1) break;
    tag.lastIndex = lt;
    const m = tag.exec(svg);
    if (!m) throw new Error(`malformed markup at ${lt}: ${svg.slice(lt, lt + 80)}`);
    const [, close, name, , selfClosing] = m;
    if (close) expect(stack.pop()).toBe(name);
    else if (!selfClosing) {
      if (!root) root = name!;
      else expect(stack.length).toBeGreaterThan(0);
      stack.push(name!);
    }
    at = tag.lastIndex;
  }
  expect(stack).toEqual([]);
  return { root, texts };
}

const chart = (files: string[], name: string): { svg: string; root: string; texts: string[]; all: string } => {
  const file = files.find((f) => basename(f) === `t-${name}.svg`);
  if (!file) throw new Error(`no ${name} chart in ${files.join(', ')}`);
  const svg = readFileSync(file, 'utf8');
  const { root, texts } = parseSvg(svg);
  return { svg, root, texts, all: texts.join('\n') };
};

describe('benchmark charts', () => {
  let files: string[] = [];

  test('a full result gives every chart, each well-formed SVG', async () => {
    files = await writeCharts(full, join(dir, 'full'), 't');
    expect(files.map((f) => basename(f)).sort()).toEqual(
      [
        't-latency-stateless-end-to-end.svg',
        't-latency-windowed-close.svg',
        't-latency-windowed-end-to-end.svg',
        't-rss.svg',
        't-scaling.svg',
        't-throughput.svg',
      ].sort(),
    );
    for (const f of files) {
      const { root, texts } = parseSvg(readFileSync(f, 'utf8'));
      expect(root).toBe('svg');
      expect(texts.join(' ')).toMatch(/(records\/s|MB|ms)\)/);
    }
  });

  test('throughput: every system named, the ones that failed their check marked and red', () => {
    const { texts, svg } = chart(files, 'throughput');
    for (const r of full.rows) expect(texts).toContainEqual(expect.stringContaining(r.system));
    expect(texts).toContain('Kafka Streams page-views (wrong)');
    expect(texts).toContain('Spark Structured Streaming page-views (failed)');
    expect(texts).toContain('Sluice page-views (windowed, exactly-once)');
    expect(svg).toContain('fill="#e45756"');
    expect(texts).toContain('120 000');
  });

  test('peak RSS: systems without a figure are named in a note, not drawn', () => {
    const { all, texts } = chart(files, 'rss');
    expect(texts).toContain('Kafka Streams page-views (wrong)');
    expect(texts).not.toContain('ceiling B: Java consumer');
    expect(all).toMatch(/Not measured: ceiling B: Java consumer, Spark Structured Streaming page-views/);
  });

  test('latency: one chart per job and metric, rows by system and setting, a panel per load', () => {
    const windowed = chart(files, 'latency-windowed-end-to-end');
    // A row: system · setting · its own target rate; the panel: the load, a share of each system's own maximum.
    const rows = (prefix: string): string[] => windowed.texts.filter((t) => t.startsWith(`${prefix} · `));
    for (const label of ['sluice · 1 000 ms', 'sluice · 100 ms', 'kafka-streams · 100 ms'])
      expect(rows(label).every((t) => /^.+ · [\d\s]+\/s$/u.test(t)) && rows(label).length > 0).toBe(true);
    expect(rows('spark · 1 000 ms')).toEqual([expect.stringMatching(/^spark · 1 000 ms · [\d\s]+\/s \(wrong\)$/u)]);
    expect(windowed.all).toMatch(/20 % of each system’s own maximum/);
    expect(windowed.all).toMatch(/50 % of each system’s own maximum/);
    // The run without samples: in the note, not drawn.
    expect(windowed.all).toMatch(/No latency measured: kafka-streams · 1 000 ms .*incomplete: 0\/60 windows/);
    expect(rows('kafka-streams · 1 000 ms')).toEqual([]);
    expect(windowed.all).toMatch(/record produced → its output read \(ms\)/);
    expect(windowed.all).not.toMatch(/log scale/);
    const stateless = chart(files, 'latency-stateless-end-to-end');
    expect(stateless.all).toMatch(/latency, ms \(log scale\)/);
    expect(chart(files, 'latency-windowed-close').all).toMatch(/makes the window closable produced → its result read/);
  });

  test('scaling: one line per partition count; a cell that is not exact is named', () => {
    const { all, texts } = chart(files, 'scaling');
    expect(texts).toContain('8 partitions');
    expect(texts).toContain('32 partitions');
    expect(texts).toContain('170 000');
    expect(all).toMatch(/do not count: 2 workers × 32 partitions/);
  });

  test('missing parts give no chart, not an error', async () => {
    expect(await writeCharts({}, join(dir, 'empty'), 't')).toEqual([]);
    const scalingOnly = await writeCharts({ records: 1000, scaling: full.scaling! }, join(dir, 'scaling'), 't');
    expect(scalingOnly.map((f) => basename(f))).toEqual(['t-scaling.svg']);
    const noLatency = await writeCharts({ ...full, latency: [], scaling: [] }, join(dir, 'rows'), 't');
    expect(noLatency.map((f) => basename(f))).toEqual(['t-throughput.svg', 't-rss.svg']);
  });

  test('an older result: latency rows without job, metric, fraction or max', async () => {
    const legacy: ChartInput = {
      records: 100_000,
      partitions: 8,
      recordSize: 100,
      rows: full.rows.slice(0, 3),
      latency: [
        {
          system: 'sluice',
          setting: 1000,
          targetRate: 30_069,
          achievedRate: 30_050,
          windows: 60,
          p50: 4224,
          p95: 5547,
          p99: 6027,
          peakRssMb: 682,
          check: 'exact',
        },
        {
          system: 'sluice',
          setting: 250,
          targetRate: 18_669,
          achievedRate: 18_660,
          windows: 0,
          p50: null,
          p95: null,
          p99: null,
          peakRssMb: 534,
          check: 'no window measured',
        },
      ],
    };
    const written = await writeCharts(legacy, join(dir, 'legacy'), 't');
    const { texts, all } = chart(written, 'latency-windowed-last-record');
    expect(texts).toContain('sluice · 1 000 ms');
    expect(all).toMatch(/target 30 069 records\/s/);
    expect(all).toMatch(/No latency measured: sluice · 250 ms at target 18 669 records\/s: no window measured/);
  });
});
