/**
 * The benchmark's peers: Sluice's page-views job (and the stateless job) written for Kafka Streams,
 * for Spark Structured Streaming and for Flink (the Maven projects beside this file), built and run as
 * JVM child processes.
 *
 * `buildPeers()` runs `mvn -q -B package` in each project unless its stamp is newer than the pom and
 * every source file; the build compiles to `target/classes` and writes the runtime classpath to
 * `target/classpath.txt` (jars stay in the Maven repository: no fat jar). `startKafkaStreams()`,
 * `startSpark()` and `startFlink()` spawn the JVM (`-Xmx1g`, java from JAVA_HOME or PATH) and return
 * a {@link PeerRun}: `firstRecordAt` resolves with the epoch ms the peer printed as `FIRST_RECORD
 * <ms>`, `peakRssBytes()` is the JVM's VmHWM (sampled from /proc every 250 ms, so it survives the
 * process), `stop()` sends SIGTERM (SIGKILL after 60 s) and resolves when the JVM has exited.
 *
 * Every peer reads the input from the earliest offset and writes `{"key","windowStart","windowEnd",
 * "value"}` keyed by page, as Sluice does (`job: 'stateless'`: the records it keeps, keyed as read).
 * Semantics that differ by engine: see {@link eventAsReadBy}.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));

export type PeerName = 'kafka-streams' | 'spark' | 'flink';

/** Which of the benchmark's jobs a peer runs. */
export type PeerJob = 'page-views' | 'stateless';

export interface PeerRun {
  name: PeerName;
  process: ChildProcess;
  /**
   * Epoch ms of the first processed input record. Spark: the start of the first micro-batch that read
   * input, which Spark reports when that batch has ended (so this resolves a batch later). Flink: when
   * its Kafka source deserialized the first record.
   */
  firstRecordAt: Promise<number>;
  /** Peak resident set of the JVM (VmHWM), as last sampled; 0 before the first sample. */
  peakRssBytes(): number;
  /** SIGTERM, then SIGKILL after 60 s; resolves when the JVM has exited. */
  stop(): Promise<void>;
  /**
   * Kafka Streams: records dropped as too late (its `dropped-records-total` task metrics), known once
   * stop() has resolved; undefined before, and always for Spark and Flink, which do not count them.
   */
  droppedRecords(): number | undefined;
  /** The JVM's stdout and stderr. */
  logFile: string;
}

interface PeerProject {
  dir: string;
  mainClass: string;
}

const PROJECTS: Record<PeerName, PeerProject> = {
  'kafka-streams': { dir: join(here, 'kafka-streams'), mainClass: 'dev.sluice.bench.PageViewsStreams' },
  spark: { dir: join(here, 'spark'), mainClass: 'dev.sluice.bench.PageViewsSpark' },
  flink: { dir: join(here, 'flink'), mainClass: 'dev.sluice.bench.PageViewsFlink' },
};

const HEAP = '-Xmx1g';

/**
 * What `bin/spark-submit` adds for Java 17+ (org.apache.spark.launcher.JavaModuleOptions in Spark
 * 4.2.0), less `--sun-misc-unsafe-memory-access=allow`, which Java 17's launcher rejects.
 */
const SPARK_JVM_OPTIONS = [
  '-XX:+IgnoreUnrecognizedVMOptions',
  '--add-modules=jdk.incubator.vector',
  ...[
    'java.base/java.lang',
    'java.base/java.lang.invoke',
    'java.base/java.lang.reflect',
    'java.base/java.io',
    'java.base/java.net',
    'java.base/java.nio',
    'java.base/java.util',
    'java.base/java.util.concurrent',
    'java.base/java.util.concurrent.atomic',
    'java.base/jdk.internal.ref',
    'java.base/sun.nio.ch',
    'java.base/sun.nio.cs',
    'java.base/sun.security.action',
    'java.base/sun.util.calendar',
    'java.security.jgss/sun.security.krb5',
  ].map((pkg) => `--add-opens=${pkg}=ALL-UNNAMED`),
  '--enable-native-access=ALL-UNNAMED',
  '-Dio.netty.tryReflectionSetAccessible=true',
  '-Dio.netty.allocator.type=pooled',
  '-Dio.netty.handler.ssl.defaultEndpointVerificationAlgorithm=NONE',
];

/**
 * Flink 2.2 on Java 17 needs none of the `--add-opens`/`--add-exports` that its distribution's
 * launcher passes (`env.java.default-opts.all`): they serve Kryo's reflective serialization of JDK
 * classes, and this peer's records are Flink tuples of strings and longs and a POJO of byte arrays,
 * which Flink serializes without Kryo (its state and checkpoints likewise). Its 64 MB of network
 * buffers are direct memory, well within the JVM's default limit (the heap size).
 */
const FLINK_JVM_OPTIONS: string[] = [];

function javaBin(): string {
  const home = process.env['JAVA_HOME'];
  return home ? join(home, 'bin', 'java') : 'java';
}

const stampFile = (project: PeerProject): string => join(project.dir, 'target', '.peer-build-stamp');
const classpathFile = (project: PeerProject): string => join(project.dir, 'target', 'classpath.txt');

/** Latest modification time of the pom and everything under src/. */
function newestInput(project: PeerProject): number {
  let newest = statSync(join(project.dir, 'pom.xml')).mtimeMs;
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else newest = Math.max(newest, statSync(path).mtimeMs);
    }
  };
  walk(join(project.dir, 'src'));
  return newest;
}

function upToDate(project: PeerProject): boolean {
  const stamp = stampFile(project);
  if (!existsSync(stamp) || !existsSync(classpathFile(project))) return false;
  if (statSync(stamp).mtimeMs < newestInput(project)) return false;
  // The Maven repository may have been cleaned since.
  return readClasspath(project).every((jar) => existsSync(jar));
}

function readClasspath(project: PeerProject): string[] {
  return readFileSync(classpathFile(project), 'utf8').trim().split(':').filter(Boolean);
}

/** Builds the peers (all by default) with `mvn -q -B package`, skipping those that are up to date. */
export async function buildPeers(which: PeerName[] = ['kafka-streams', 'spark', 'flink']): Promise<void> {
  for (const name of which) {
    const project = PROJECTS[name];
    if (upToDate(project)) continue;
    try {
      await execFileAsync('mvn', ['-q', '-B', 'package'], { cwd: project.dir, maxBuffer: 64 * 1024 * 1024 });
    } catch (error) {
      const e = error as { stdout?: string; stderr?: string; message: string };
      throw new Error(`building the ${name} peer failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
    }
    writeFileSync(stampFile(project), `${new Date().toISOString()}\n`);
  }
}

/** VmHWM ("peak resident set") of a live process, in bytes; undefined once it is gone. */
function readVmHwm(pid: number): number | undefined {
  try {
    const match = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match?.[1] ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

function tail(file: string, lines = 40): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

function launch(
  name: PeerName,
  jvmOptions: string[],
  args: string[],
  logFile?: string,
  env: Record<string, string> = {},
): PeerRun {
  const project = PROJECTS[name];
  if (!existsSync(classpathFile(project))) throw new Error(`the ${name} peer is not built: call buildPeers() first`);
  const classpath = [join(project.dir, 'target', 'classes'), ...readClasspath(project)].join(':');
  const log = logFile ?? join(mkdtempSync(join(tmpdir(), `sluice-peer-${name}-`)), 'peer.log');
  const logFd = openSync(log, 'a');

  const child = spawn(
    javaBin(),
    [HEAP, '-Djava.awt.headless=true', ...jvmOptions, '-cp', classpath, project.mainClass, ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    },
  );
  // Both streams go to the log file; stdout is also read line by line for the peers' reports
  // (FIRST_RECORD <ms>; Kafka Streams: DROPPED_RECORDS <n> when it stops).
  child.stderr.on('data', (chunk: Buffer) => writeSync(logFd, chunk));
  let firstSeen = false;
  let dropped: number | undefined;
  let pending = '';
  const firstRecordAt = new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      writeSync(logFd, chunk);
      pending += chunk.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const [word, value] = line.trim().split(' ');
        if (word === 'FIRST_RECORD' && !firstSeen) {
          firstSeen = true;
          resolve(Number(value));
        } else if (word === 'DROPPED_RECORDS') {
          dropped = Number(value);
        }
      }
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (!firstSeen)
        reject(new Error(`${name} exited (${signal ?? code}) before its first record; ${log}:\n${tail(log)}`));
    });
  });
  // Callers that never await firstRecordAt must not get an unhandled rejection.
  firstRecordAt.catch(() => undefined);

  let peak = 0;
  const sample = (): void => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      peak = Math.max(peak, readVmHwm(child.pid) ?? 0);
    }
  };
  const sampler = setInterval(sample, 250);
  sampler.unref();

  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  void exited.then(() => {
    clearInterval(sampler);
    closeSync(logFd);
  });
  // If this Node process exits without stop(), do not leave the JVM behind.
  const killOnExit = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      process.removeListener('exit', killOnExit);
      sample();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
        await exited;
        clearTimeout(timer);
      } else {
        await exited;
      }
    })());

  return {
    name,
    process: child,
    firstRecordAt,
    peakRssBytes: () => {
      sample();
      return peak;
    },
    stop,
    droppedRecords: () => dropped,
    logFile: log,
  };
}

/** What every peer is started with. */
interface PeerOptions {
  brokers: string;
  input: string;
  output: string;
  /** The benchmark job to run (default page-views). */
  job?: PeerJob;
  logFile?: string;
}

/** `--bootstrap --input --output [--job]`, then `--name value` for each further option that is defined. */
function peerArgs(o: PeerOptions, more: Record<string, string | number | undefined>): string[] {
  const options = { bootstrap: o.brokers, input: o.input, output: o.output, job: o.job, ...more };
  return Object.entries(options).flatMap(([name, value]) => (value === undefined ? [] : [`--${name}`, String(value)]));
}

/**
 * Starts the Kafka Streams peer (at-least-once, 2 stream threads unless `threads` says otherwise;
 * local state in a temporary directory removed on exit). `applicationId` is the consumer group and
 * the prefix of its internal topics: a new one per run reads the input from the beginning.
 * `graceMs` (default 5 000, the job's lateness) is the windows' grace.
 */
export async function startKafkaStreams(
  o: PeerOptions & {
    applicationId: string;
    commitIntervalMs: number;
    threads?: number;
    graceMs?: number;
    /** More Streams, consumer or producer properties (passed as `--config key=value`). */
    config?: Record<string, string>;
  },
): Promise<PeerRun> {
  return launch(
    'kafka-streams',
    [],
    [
      ...peerArgs(o, {
        'application-id': o.applicationId,
        'commit-interval-ms': o.commitIntervalMs,
        threads: o.threads ?? 2,
        'grace-ms': o.graceMs,
      }),
      ...Object.entries(o.config ?? {}).flatMap(([key, value]) => ['--config', `${key}=${value}`]),
    ],
    o.logFile,
  );
}

/**
 * Starts the Spark peer (local[2], 8 shuffle partitions, processing-time trigger every `triggerMs`;
 * 0 starts each micro-batch as soon as the previous one ends). `checkpointDir` must be new or belong
 * to an earlier run of the same query. `verbose` logs one line per micro-batch to the log file.
 */
export async function startSpark(
  o: PeerOptions & { checkpointDir: string; triggerMs: number; verbose?: boolean },
): Promise<PeerRun> {
  return launch(
    'spark',
    SPARK_JVM_OPTIONS,
    [
      ...peerArgs(o, { 'checkpoint-dir': o.checkpointDir, 'trigger-ms': o.triggerMs }),
      ...(o.verbose ? ['--verbose'] : []),
    ],
    o.logFile,
    // Otherwise Spark binds its driver and block manager to the first non-loopback interface.
    { SPARK_LOCAL_IP: '127.0.0.1' },
  );
}

/**
 * Starts the Flink peer: a local mini-cluster in the JVM, parallelism 2, at-least-once (a checkpoint
 * every `checkpointMs`, default 1 000; 0: none), per-partition watermarks 5 s behind, tumbling 10 s
 * windows (see PageViewsFlink.java). `settingMs` sets both `pipeline.auto-watermark-interval` and
 * `execution.buffer-timeout.interval` (Flink's defaults: 200 and 100 ms), the intervals at which Flink
 * moves watermarks and buffered records on. Each run reads the input from the earliest offsets.
 */
export async function startFlink(o: PeerOptions & { settingMs?: number; checkpointMs?: number }): Promise<PeerRun> {
  return launch(
    'flink',
    FLINK_JVM_OPTIONS,
    peerArgs(o, { 'setting-ms': o.settingMs, 'checkpoint-ms': o.checkpointMs }),
    o.logFile,
  );
}

/** The fields the page-views job uses, as a peer read them from one input value. */
export interface ReadEvent {
  page: string;
  ts: number;
}

/**
 * How a peer reads one raw input value: the event it counts, or undefined when it drops the value.
 * Sluice, Kafka Streams and Flink: strict JSON (`JSON.parse`; Jackson with FAIL_ON_TRAILING_TOKENS),
 * an object with a string `page` and a numeric `ts`. Spark's JSON parser differs in two ways the
 * benchmark's output check must know about: it reads the first complete JSON value and ignores
 * whatever follows (the generator's `{…}}` malformed records are counted), and a non-string `page`
 * becomes its JSON text; `ts` must be an integer.
 */
export function eventAsReadBy(peer: PeerName | 'sluice', raw: string): ReadEvent | undefined {
  if (peer !== 'spark') {
    const e = tryParse(raw);
    if (!isObject(e) || typeof e['page'] !== 'string' || typeof e['ts'] !== 'number') return undefined;
    return { page: e['page'], ts: Math.floor(e['ts']) };
  }
  // The shortest prefix ending in '}' that parses is the first complete object (objects are prefix-free).
  let e = tryParse(raw);
  for (let end = raw.indexOf('}'); e === undefined && end >= 0; end = raw.indexOf('}', end + 1)) {
    e = tryParse(raw.slice(0, end + 1));
  }
  if (!isObject(e) || e['page'] === undefined || e['page'] === null) return undefined;
  if (!Number.isSafeInteger(e['ts'])) return undefined;
  const page = typeof e['page'] === 'string' ? e['page'] : JSON.stringify(e['page']);
  return { page, ts: e['ts'] as number };
}

function tryParse(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
