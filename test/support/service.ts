/**
 * Runs the real service (`src/main.ts run <job>`) as a child process against the test broker, the way
 * a user runs it: its own process, its own worker threads, configured by environment variables.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../scripts/kafka/local-broker.ts';
import { testBrokers } from '../helpers.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface RunningService {
  readonly process: ChildProcess;
  readonly port: number;
  readonly url: string;
  /** Everything the process printed (JSON log lines and stderr). */
  output(): string;
  /** Resolves with the exit code (or signal). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitReady(timeoutMs?: number): Promise<void>;
  metrics(): Promise<string>;
  json<T>(path: string): Promise<T>;
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface ServiceOptions {
  /** The job module, relative to `root`. */
  job: string;
  env?: Record<string, string>;
  /** The source tree to run (another version's, say). @defaultValue this repository */
  root?: string;
}

/** Starts the service from the TypeScript sources (no build needed). */
export async function startService(options: ServiceOptions): Promise<RunningService> {
  const port = await freePort();
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    KAFKA_BROKERS: testBrokers().join(','),
    SLUICE_HTTP_HOST: '127.0.0.1',
    SLUICE_HTTP_PORT: String(port),
    SLUICE_LOG_LEVEL: 'info',
    SLUICE_WORKERS: '2',
    KAFKAJS_NO_PARTITIONER_WARNING: '1',
    ...options.env,
  };
  delete env['NODE_OPTIONS'];
  const tree = options.root ?? root;
  const child = spawn(
    process.execPath,
    ['--conditions=sluice-source', join(tree, 'src', 'main.ts'), 'run', options.job],
    { cwd: tree, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  const url = `http://127.0.0.1:${port}`;
  let done = false;
  void exited.then(() => (done = true));
  const service: RunningService = {
    process: child,
    port,
    url,
    output: () => out,
    exited,
    async waitReady(timeoutMs = 90_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (done) throw new Error(`service exited before ready:\n${out.slice(-4000)}`);
        try {
          const res = await fetch(`${url}/readyz`);
          if (res.ok) return;
        } catch {
          // not listening yet
        }
        if (Date.now() > deadline) throw new Error(`service not ready in ${timeoutMs} ms:\n${out.slice(-4000)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    async metrics() {
      return (await fetch(`${url}/metrics`)).text();
    },
    async json<T>(path: string) {
      return (await (await fetch(`${url}${path}`)).json()) as T;
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (!done) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
  return service;
}

/** Sum of a Prometheus counter/gauge over all its label sets. */
/** A process's resident set size (VmRSS) or its peak (VmHWM) in bytes, from /proc; 0 when it is gone. */
export function residentBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    const labelText = match[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`))) total += Number(match[3]);
  }
  return total;
}
