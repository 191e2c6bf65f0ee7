/**
 * Charts of a benchmark result, as SVG files: Vega-Lite specs compiled and rendered by Vega in Node
 * (no browser, no canvas: text widths are estimated for the layout; the SVG keeps the text as text).
 * Throughput and peak RSS per system, latency percentiles per (job, metric), and scaling by workers.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { type StateMemory } from '../state-memory.ts';
import { type LatencyResult } from './latency.ts';
import { type Row } from './peer-runs.ts';

/** The rows the charts read, as the harness writes them (bench/lib/peer-runs.ts, latency.ts, state-memory.ts). */
export type ThroughputRow = Row;
export type LatencyRow = LatencyResult;
export interface ScalingRow {
  workers: number;
  partitions: number;
  recordsPerSec: number;
  peakRssMb: number | null;
  check: string;
}
export type StateRow = Pick<StateMemory, 'aggregator' | 'entries' | 'heapBytes' | 'bytesPerEntry'>;

/** What `npm run bench` writes (bench/results/bench-<iso>.json). */
export interface BenchResult {
  records: number;
  partitions: number;
  recordSize: number;
  rows: ThroughputRow[];
  latency: LatencyRow[];
  scaling?: ScalingRow[];
  state: StateRow[];
}

/** A latency row as older files have it too: no `job` (windowed), `metric`, `fraction`, `samples` or `max`. */
type LatencyInput = Omit<LatencyRow, 'job' | 'metric' | 'fraction' | 'samples' | 'p50' | 'p95' | 'p99' | 'max'> &
  Partial<Pick<LatencyRow, 'job' | 'metric' | 'fraction' | 'samples'>> & { windows?: number } & {
    [p in 'p50' | 'p95' | 'p99']: number | null;
  } & { max?: number | null };

/**
 * What the charts read: a BenchResult, a part of one (`bench/scaling.ts` writes `{ records, scaling }`)
 * or an older file (latency rows without `metric` are charted as "last record of the window produced →
 * result read"; percentiles are null where nothing was measured).
 */
export type ChartInput = Partial<Omit<BenchResult, 'latency'>> & { latency?: LatencyInput[] };

const COLORS = { reference: '#9e9e9e', exact: '#4c78a8', wrong: '#e45756' } as const;
type Status = keyof typeof COLORS;
const STATUS_LABEL = { reference: 'no check (ceiling, producer)', exact: 'exact', wrong: 'not exact: does not count' };

/** `exact` (or `exact (behind)`) counts; `n/a` is a reference figure; anything else is wrong. */
export function statusOf(check: string): Status {
  if (check === 'n/a') return 'reference';
  return check === 'exact' || check.startsWith('exact (') ? 'exact' : 'wrong';
}

/** The mark a row that does not count carries in its label. */
export function wrongMark(check: string): string {
  if (statusOf(check) !== 'wrong') return '';
  return check.startsWith('failed') ? ' (failed)' : check.startsWith('incomplete') ? ' (incomplete)' : ' (wrong)';
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US').replace(/,/g, ' ');

const config = {
  background: 'white',
  font: 'Helvetica, Arial, sans-serif',
  // Text widths are estimated without a canvas: never truncate a label on the estimate.
  axis: { labelLimit: 0, titleFontWeight: 'normal' as const },
  legend: { labelLimit: 0, titleLimit: 0 },
  header: { labelLimit: 0 },
  title: { anchor: 'start' as const, fontSize: 14, subtitleColor: '#555', subtitleFontSize: 11, offset: 12 },
  locale: { number: { decimal: '.', thousands: ' ', grouping: [3], currency: ['', ''] as [string, string] } },
};

/**
 * Without a canvas Vega estimates every character at 0.8 em, which leaves wide gaps after labels and
 * between legend entries. Its `textMetrics.width` may be replaced (vega-scenegraph provides for it):
 * this estimate uses Helvetica-like widths with a 10 % margin, so that labels do not overlap.
 */
function estimateWidth(item: { fontSize?: number; fontWeight?: string | number }, text: unknown): number {
  let em = 0;
  for (const ch of String(text ?? '')) {
    if ("ijlI.,:;|!'·".includes(ch)) em += 0.26;
    else if ('frt()[]/- '.includes(ch)) em += 0.34;
    else if ('mwMW%@→'.includes(ch)) em += 0.88;
    else em += ch >= 'A' && ch <= 'Z' ? 0.7 : 0.57;
  }
  const bold = item.fontWeight === 'bold' || Number(item.fontWeight) >= 600;
  return Math.ceil(em * (item.fontSize ?? 11) * 1.1 * (bold ? 1.08 : 1));
}
const metrics = (vega as unknown as { textMetrics?: { width: unknown } }).textMetrics;
if (metrics && typeof metrics.width === 'function') metrics.width = estimateWidth;

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile({ ...spec, config } as TopLevelSpec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

function describe({ records, partitions, recordSize }: ChartInput, backlog = true): string {
  const parts = [backlog && records !== undefined ? `${fmt(records)}-record backlog` : ''];
  if (partitions !== undefined) parts.push(`${partitions} input partitions`);
  if (recordSize !== undefined) parts.push(`~${recordSize}-byte records`);
  return parts.filter(Boolean).join(', ');
}

/** Horizontal bars, one per system, in the run's order; rows that do not count in red, marked. */
function barsBySystem(
  result: ChartInput,
  value: (r: ThroughputRow) => number | null,
  [title, unit, better]: [string, string, string],
): TopLevelSpec | undefined {
  const all = result.rows ?? [];
  const rows = all.filter((r) => Number.isFinite(value(r) ?? NaN));
  if (rows.length === 0) return undefined;
  const missing = all.filter((r) => !rows.includes(r)).map((r) => r.system);
  const values = rows.map((r) => ({
    label: `${r.system}${wrongMark(r.check)}`,
    value: value(r)!,
    text: fmt(value(r)!),
    status: STATUS_LABEL[statusOf(r.check)],
  }));
  const statuses = (Object.keys(COLORS) as Status[]).filter((s) => rows.some((r) => statusOf(r.check) === s));
  const subtitle = [[describe(result), better].filter(Boolean).join('; ')];
  if (statuses.includes('wrong')) subtitle.push('Red bars failed the output check: their figure does not count.');
  if (missing.length > 0) subtitle.push(`Not measured: ${missing.join(', ')}.`);
  const y = { field: 'label', type: 'nominal', sort: null, title: null } as const;
  const domain = [0, Math.max(...values.map((v) => v.value), 1) * 1.15];
  const x = { field: 'value', type: 'quantitative', title: unit, scale: { domain, nice: false } } as const;
  const color = {
    field: 'status',
    type: 'nominal',
    scale: { domain: statuses.map((s) => STATUS_LABEL[s]), range: statuses.map((s) => COLORS[s]) },
    legend: { title: 'check', orient: 'bottom' },
  } as const;
  return {
    title: { text: title, subtitle },
    width: 520,
    height: { step: 24 },
    data: { values },
    layer: [
      { mark: 'bar', encoding: { y, x: { ...x, axis: { format: ',d', tickCount: 6 } }, color } },
      { mark: { type: 'text', align: 'left', dx: 4, fontSize: 11 }, encoding: { y, x, text: { field: 'text' } } },
    ],
  } as TopLevelSpec;
}

const METRIC_TITLE: Record<string, string> = {
  close: 'first record that makes the window closable produced → its result read',
  'end-to-end': 'record produced → its output read',
  'last-record': 'last record of the window produced → its result read',
};
const JOB_TITLE: Record<string, string> = {
  windowed: 'page-views job (10 s windows)',
  stateless: 'stateless map/filter job',
};

// One panel per load fraction: each system at that share of its own maximum (its target in its row).
const load = (l: LatencyInput): string =>
  l.fraction !== undefined
    ? `${Math.round(l.fraction * 100)} % of each system’s own maximum`
    : `target ${fmt(l.targetRate)} records/s`;

/** One chart per (job, metric): p50/p95/p99/max of every system and setting, one panel per load. */
function latencyCharts(result: ChartInput): Array<{ name: string; spec: TopLevelSpec }> {
  const groups = new Map<string, LatencyInput[]>();
  for (const l of result.latency ?? []) {
    const id = `${l.job ?? 'windowed'}|${l.metric ?? 'last-record'}`;
    groups.set(id, [...(groups.get(id) ?? []), l]);
  }
  return [...groups].map(([id, rows]) => {
    const [job, metric] = id.split('|') as [string, string];
    const measured = rows.filter((l) => [l.p50, l.p95, l.p99].every((p) => Number.isFinite(p ?? NaN)));
    const left = rows.filter((l) => !measured.includes(l));
    const points: Array<Record<string, string | number>> = [];
    for (const l of measured) {
      const ps = (['p50', 'p95', 'p99', 'max'] as const)
        .map((p): [string, number] => [p, l[p] ?? NaN])
        .filter(([, v]) => Number.isFinite(v));
      const [lo, hi] = [Math.min(...ps.map((p) => p[1])), Math.max(...ps.map((p) => p[1]))];
      const target = l.fraction !== undefined ? ` · ${fmt(l.targetRate)}/s` : '';
      const row = `${l.system} · ${fmt(l.setting)} ms${target}${wrongMark(l.check)}`;
      const base = { row, load: load(l), status: statusOf(l.check) === 'wrong' ? 'not exact' : 'exact', lo, hi };
      // The row's figures as text once, beside its highest point.
      const text = `p50 ${fmt(l.p50!)} · p99 ${fmt(l.p99!)}`;
      ps.forEach(([percentile, value], i) => points.push({ ...base, percentile, value, text: i === 0 ? text : '' }));
    }
    const order = (l: LatencyInput): number => l.fraction ?? l.targetRate;
    const loads = [...new Set(measured.sort((a, b) => order(a) - order(b)).map(load))];
    const what =
      'one row per system · setting · target rate (Sluice: batch interval, Kafka Streams: commit interval, Spark: trigger, Flink: watermark interval and buffer timeout)';
    const subtitle = [[describe(result, false), what].filter(Boolean).join('; ')];
    if (measured.some((l) => statusOf(l.check) === 'wrong'))
      subtitle.push('Rows marked (wrong) or (incomplete) failed the output check: their figures do not count.');
    if (left.length > 0) {
      const runs = left.map((l) => `${l.system} · ${fmt(l.setting)} ms at ${load(l)}: ${l.check}`);
      subtitle.push(`No latency measured: ${runs.join('; ')}.`);
    }
    const title = { text: `Latency of the ${JOB_TITLE[job] ?? job}: ${METRIC_TITLE[metric] ?? metric} (ms)`, subtitle };
    const name = `latency-${job}-${metric}`;
    // Nothing measured: the chart is the note.
    if (points.length === 0)
      return { name, spec: { title, width: 520, height: 20, data: { values: [] }, mark: 'text' } };
    const all = points.map((p) => p['value'] as number).filter((v) => v > 0);
    const log = all.length > 0 && Math.max(...all) / Math.min(...all) > 20;
    const x = {
      type: 'quantitative',
      title: `latency, ms${log ? ' (log scale)' : ''}`,
      scale: log ? { type: 'log' } : { zero: true },
      axis: { format: ',d', grid: true, ...(log ? { values: logTicks(all) } : { tickCount: 6 }) },
    } as const;
    const y = { field: 'row', type: 'nominal', sort: null, title: null } as const;
    const percentiles = ['p50', 'p95', 'p99', ...(points.some((p) => p['percentile'] === 'max') ? ['max'] : [])];
    const byPercentile = (range: string[]) => ({
      field: 'percentile',
      type: 'nominal',
      scale: { domain: percentiles, range },
    });
    // A panel per load, each with its own rows, on one latency axis.
    const panel = (at: string) => ({
      title: { text: at, fontSize: 11, anchor: 'start', frame: 'group', offset: 6 },
      data: { values: points.filter((p) => p['load'] === at) },
      width: 480,
      height: { step: 22 },
      layer: [
        {
          // Drawn once per percentile of the row, all alike.
          mark: { type: 'rule', strokeWidth: 2 },
          encoding: {
            y,
            x: { ...x, field: 'lo' },
            x2: { field: 'hi' },
            color: { condition: { test: "datum.status === 'not exact'", value: COLORS.wrong }, value: '#bbbbbb' },
          },
        },
        {
          mark: { type: 'point', filled: true, size: 60, opacity: 1 },
          encoding: {
            y,
            x: { ...x, field: 'value' },
            color: {
              ...byPercentile(['#4c78a8', '#f58518', '#e45756', '#222222']),
              legend: { title: 'percentile', orient: 'bottom' },
            },
            shape: byPercentile(['circle', 'square', 'triangle-up', 'cross']),
          },
        },
        {
          mark: { type: 'text', align: 'left', dx: 8, fontSize: 10, color: '#555' },
          encoding: { y, x: { ...x, field: 'hi' }, text: { field: 'text' } },
        },
      ],
    });
    const resolve = { scale: { x: 'shared', y: 'independent' } };
    return { name, spec: { title, vconcat: loads.map(panel), spacing: 18, resolve } as TopLevelSpec };
  });
}

/** Log axis ticks: 1, 2 and 5 of each decade over up to three decades, else 1 and 3 (labels apart). */
function logTicks(values: number[]): number[] {
  const lo = Math.floor(Math.log10(Math.min(...values)));
  const hi = Math.ceil(Math.log10(Math.max(...values)));
  const steps = hi - lo <= 3 ? [1, 2, 5] : [1, 3];
  const ticks: number[] = [];
  for (let d = lo; d <= hi; d++) for (const m of steps) ticks.push(m * 10 ** d);
  return ticks;
}

/** Records/s by worker threads, one line per input partition count; cells that are not exact marked apart. */
function scalingChart(result: ChartInput): TopLevelSpec | undefined {
  const cells = result.scaling ?? [];
  if (cells.length === 0) return undefined;
  const exact = (c: ScalingRow): boolean => statusOf(c.check) === 'exact';
  // Each figure above its point when it is the highest at its worker count, else below: labels apart.
  const top = (c: ScalingRow): boolean =>
    cells.every((o) => o.workers !== c.workers || !exact(o) || o.recordsPerSec <= c.recordsPerSec);
  const values = cells.map((c) => ({
    workers: c.workers,
    partitions: `${c.partitions} partitions`,
    value: c.recordsPerSec,
    text: fmt(c.recordsPerSec),
    exact: exact(c),
    top: top(c),
  }));
  const backlog = result.records !== undefined ? `, ${fmt(result.records)}-record backlog` : '';
  const subtitle = [`Sluice page-views job${backlog}, exactly-once; first batch with records → last result read`];
  const wrong = cells
    .filter((c) => !exact(c))
    .map((c) => `${c.workers} workers × ${c.partitions} partitions (${c.check})`);
  if (wrong.length > 0) subtitle.push(`Red crosses failed the output check and do not count: ${wrong.join('; ')}.`);
  const sorted = (ns: number[]): number[] => [...new Set(ns)].sort((a, b) => a - b);
  const x = {
    field: 'workers',
    type: 'ordinal',
    title: 'worker threads (SLUICE_WORKERS)',
    axis: { labelAngle: 0 },
    scale: { domain: sorted(cells.map((c) => c.workers)) },
  };
  const y = { field: 'value', type: 'quantitative', title: 'records/s', scale: { zero: true }, axis: { format: ',d' } };
  const domain = sorted(cells.map((c) => c.partitions)).map((p) => `${p} partitions`);
  const color = { field: 'partitions', type: 'nominal', scale: { domain }, legend: { title: 'input' } };
  return {
    title: { text: 'Scaling: page-views throughput by worker threads (records/s)', subtitle },
    width: 420,
    height: 260,
    layer: [
      {
        data: { values: values.filter((v) => v.exact) },
        layer: [
          { mark: { type: 'line', point: { filled: true, size: 50 } }, encoding: { x, y, color } },
          ...[true, false].map((above) => ({
            transform: [{ filter: above ? 'datum.top' : '!datum.top' }],
            mark: { type: 'text', dy: above ? -10 : 12, fontSize: 10 },
            encoding: { x, y, color, text: { field: 'text' } },
          })),
        ],
      },
      {
        data: { values: values.filter((v) => !v.exact) },
        mark: { type: 'point', shape: 'cross', size: 120, filled: true, opacity: 1, color: COLORS.wrong },
        encoding: { x, y },
      },
    ],
  } as TopLevelSpec;
}

const THROUGHPUT = 'Throughput on a backlog, first record read → last result read (records/s)';

/** Every chart the result has the data for, as `<prefix>-<chart>.svg` in `dir`; returns the paths written. */
export async function writeCharts(result: ChartInput, dir: string, prefix: string): Promise<string[]> {
  const bars = (name: string, value: (r: ThroughputRow) => number | null, text: [string, string, string]) => ({
    name,
    spec: barsBySystem(result, value, text),
  });
  const charts: Array<{ name: string; spec: TopLevelSpec | undefined }> = [
    bars('throughput', (r) => r.recordsPerSec, [THROUGHPUT, 'records/s', 'higher is better']),
    bars('rss', (r) => r.peakRssMb, ['Peak resident memory per system (RSS, MB)', 'MB', 'lower is better']),
    ...latencyCharts(result),
    { name: 'scaling', spec: scalingChart(result) },
  ];
  const written: string[] = [];
  for (const { name, spec } of charts.filter((c) => c.spec)) {
    mkdirSync(dir, { recursive: true });
    written.push(join(dir, `${prefix}-${name}.svg`));
    writeFileSync(written.at(-1)!, await renderSvg(spec!));
  }
  return written;
}
