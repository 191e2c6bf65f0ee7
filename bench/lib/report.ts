/**
 * The benchmark's report: the throughput, latency, memory and state tables as text, the same as JSON
 * under bench/results/, and the charts (bench/lib/charts.ts) beside the JSON.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type StateMemory } from '../state-memory.ts';
import { writeCharts } from './charts.ts';
import { type LatencyResult } from './latency.ts';
import { type Row } from './peer-runs.ts';

export interface BenchReport {
  records: number;
  partitions: number;
  recordSize: number;
  latencySeconds: number;
  /** Each system's own maximum (`<system>-<job>` → records/s) the latency fractions were taken of. */
  maxRates: Record<string, number>;
  rows: Row[];
  latency: LatencyResult[];
  state: StateMemory[];
}

const pad = (s: string, n: number): string => s.padEnd(n);
const cell = (v: number | null | undefined): string => (v === null || v === undefined ? '-' : String(v));

export function reportText(r: BenchReport): string {
  const lines: string[] = [];
  lines.push(
    `records: ${r.records}, partitions: ${r.partitions}, record size: ~${r.recordSize} B, machine: ${process.env['BENCH_MACHINE'] ?? 'local'}`,
  );
  if (r.rows.length > 0) {
    lines.push('');
    lines.push(
      `${pad('system', 58)}${pad('records/s', 12)}${pad('MB/s', 8)}${pad('×A', 7)}${pad('×B', 7)}${pad('peak RSS MB', 13)}check`,
    );
    for (const row of r.rows) {
      lines.push(
        `${pad(row.system, 58)}${pad(String(row.recordsPerSec), 12)}${pad(String(row.mbPerSec), 8)}${pad(cell(row.ratioA), 7)}${pad(cell(row.ratioB), 7)}${pad(cell(row.peakRssMb), 13)}${row.check}`,
      );
    }
  }
  for (const metric of ['close', 'end-to-end'] as const) {
    const rows = r.latency.filter((l) => l.metric === metric);
    if (rows.length === 0) continue;
    lines.push('');
    lines.push(
      metric === 'close'
        ? 'close latency, windowed job (result readable − produce time of the first record that made its window closable)'
        : 'end-to-end latency, stateless job (output readable − produce time of its input record)',
    );
    lines.push(
      `${pad('system', 26)}${pad('setting', 10)}${pad('load', 6)}${pad('target/s', 10)}${pad('achieved/s', 12)}${pad('samples', 9)}${pad('p50 ms', 9)}${pad('p95 ms', 9)}${pad('p99 ms', 9)}${pad('max ms', 9)}${pad('RSS MB', 8)}check`,
    );
    for (const l of rows) {
      lines.push(
        `${pad(l.system, 26)}${pad(`${l.setting} ms`, 10)}${pad(`${Math.round(l.fraction * 100)} %`, 6)}${pad(String(l.targetRate), 10)}${pad(String(l.achievedRate), 12)}${pad(String(l.samples), 9)}${pad(cell(l.p50), 9)}${pad(cell(l.p95), 9)}${pad(cell(l.p99), 9)}${pad(cell(l.max), 9)}${pad(cell(l.peakRssMb), 8)}${l.check}`,
      );
    }
  }
  const loaded = r.latency.filter((l) => Math.abs(l.fraction - 0.5) < 1e-9);
  if (loaded.length > 0) {
    lines.push('');
    lines.push('memory: peak RSS at 50 % of each system’s own maximum (largest over its settings)');
    const peak = new Map<string, number>();
    for (const l of loaded) {
      const key = `${l.system}, ${l.job}`;
      peak.set(key, Math.max(peak.get(key) ?? 0, l.peakRssMb ?? 0));
    }
    for (const [key, mb] of peak) lines.push(`${pad(key, 58)}${mb} MB`);
  }
  if (r.state.length > 0) {
    lines.push('');
    lines.push(
      `${pad('state (one task’s window store, V8 heap)', 58)}${pad('entries', 12)}${pad('MB', 8)}bytes per entry`,
    );
    for (const s of r.state)
      lines.push(
        `${pad(s.aggregator, 58)}${pad(String(s.entries), 12)}${pad((s.heapBytes / 1e6).toFixed(1), 8)}${Math.round(s.bytesPerEntry)}`,
      );
  }
  return lines.join('\n');
}

/** Prints the tables and writes `bench-<iso>.json` and its charts into `dir`. */
export async function writeReport(dir: string, r: BenchReport): Promise<void> {
  const text = reportText(r);
  console.log(text);
  mkdirSync(dir, { recursive: true });
  const prefix = `bench-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  const file = join(dir, `${prefix}.json`);
  writeFileSync(file, JSON.stringify({ ...r, table: text }, null, 2));
  console.log(`\nresults: ${file}`);
  for (const chart of await writeCharts({ ...r }, dir, prefix)) console.log(`chart: ${chart}`);
}
