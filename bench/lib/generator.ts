/**
 * The live load generator: `bench/generator/LoadGenerator.java` (Kafka's Java producer), compiled with
 * `javac` against the broker's own jars (`fetchKafka()`; no Maven project for one class) into
 * `.kafka/generator/<hash of the source>/` and run as a child JVM.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { fetchKafka } from '../../scripts/kafka/local-broker.ts';

const execFileAsync = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const source = join(root, 'bench', 'generator', 'LoadGenerator.java');

export interface GeneratorOptions {
  brokers: string;
  topic: string;
  /** Records per second, kept against the wall clock from the start. */
  rate: number;
  seconds: number;
  recordSize: number;
  seed?: number;
  /** Share of records displaced back in event time by up to 3 s. @defaultValue 0.05 */
  outOfOrder?: number;
}

export interface GeneratorRun {
  sent: number;
  seconds: number;
  failed: number;
}

const javaBin = (): string => (process.env['JAVA_HOME'] ? join(process.env['JAVA_HOME'], 'bin', 'java') : 'java');
const javacBin = (): string => (process.env['JAVA_HOME'] ? join(process.env['JAVA_HOME'], 'bin', 'javac') : 'javac');

/** Compiles the generator unless this source was compiled before; returns the classpath to run it. */
export async function buildGenerator(): Promise<string> {
  const kafka = await fetchKafka();
  const hash = createHash('sha256').update(readFileSync(source)).digest('hex').slice(0, 12);
  const out = join(root, '.kafka', 'generator', hash);
  if (!existsSync(join(out, 'LoadGenerator.class'))) {
    mkdirSync(out, { recursive: true });
    await execFileAsync(javacBin(), ['-nowarn', '-cp', kafka, '-d', out, source]);
  }
  return `${out}:${kafka}`;
}

/** Produces for `seconds` at `rate`; resolves with what was sent once the producer has flushed. */
export async function runGenerator(o: GeneratorOptions): Promise<GeneratorRun> {
  const classpath = await buildGenerator();
  const args = [
    '-Xmx256m',
    '-XX:+UseSerialGC',
    '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn',
    '-cp',
    classpath,
    'LoadGenerator',
    '--bootstrap',
    o.brokers,
    '--topic',
    o.topic,
    '--rate',
    String(o.rate),
    '--seconds',
    String(o.seconds),
    '--record-size',
    String(o.recordSize),
    '--seed',
    String(o.seed ?? 7),
    '--out-of-order',
    String(o.outOfOrder ?? 0.05),
  ];
  const child = spawn(javaBin(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  const code = await new Promise<number | null>((r) => child.once('close', r));
  const match = /^SENT (\d+) (\d+) (\d+)$/m.exec(stdout);
  if (code !== 0 || !match) throw new Error(`the load generator failed (exit ${code}): ${stderr}`);
  return { sent: Number(match[1]), seconds: Number(match[2]) / 1000, failed: Number(match[3]) };
}
