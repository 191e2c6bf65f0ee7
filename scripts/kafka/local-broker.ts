/**
 * A real single-node Apache Kafka broker (KRaft, combined broker/controller) for tests, the demo and
 * benchmarks, run from the Kafka jars on Maven Central: no tarball, no Docker.
 *
 * `fetchKafka()` resolves the jars with Maven from `scripts/kafka/pom.xml` (cached in the Maven
 * repository, so only the first run downloads) and writes the classpath to `.kafka/classpath.txt`.
 * `startLocalBroker()` formats KRaft storage in a temporary folder, starts the broker on free
 * 127.0.0.1 ports, waits until it answers metadata requests and returns a handle whose `stop()` ends
 * the JVM (SIGTERM, then SIGKILL after a grace period) and removes the folder.
 *
 * Command line: `node scripts/kafka/local-broker.ts [fetch|start]`.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync, rmSync, mkdtempSync, openSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';

const execFileAsync = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
export const projectRoot = resolve(here, '..', '..');
const cacheDir = join(projectRoot, '.kafka');
const classpathFile = join(cacheDir, 'classpath.txt');
const pomFile = join(here, 'pom.xml');

/** Pinned in scripts/kafka/pom.xml; the README says why this version. */
export function kafkaVersion(): string {
  const match = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(readFileSync(pomFile, 'utf8'));
  if (!match?.[1]) throw new Error(`no <kafka.version> in ${pomFile}`);
  return match[1];
}

export const SCRAM_USER = { username: 'sluice', password: 'sluice-secret' } as const;

export interface LocalBroker {
  /** PLAINTEXT listener, `127.0.0.1:port`. */
  readonly brokers: string;
  /** SASL_PLAINTEXT listener with SCRAM-SHA-256 and SCRAM-SHA-512 (user {@link SCRAM_USER}). */
  readonly saslBrokers: string;
  readonly pid: number;
  readonly dataDir: string;
  /** Milliseconds from JVM spawn to the first successful metadata request. */
  readonly startupMs: number;
  stop(): Promise<void>;
}

function javaBin(): string {
  const home = process.env['JAVA_HOME'];
  return home ? join(home, 'bin', 'java') : 'java';
}

/** Resolves the Kafka jars (downloading them once) and returns the JVM classpath. */
export async function fetchKafka(): Promise<string> {
  const pomStamp = readFileSync(pomFile, 'utf8');
  const stampFile = join(cacheDir, 'pom.stamp');
  if (existsSync(classpathFile) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === pomStamp) {
    const cp = readFileSync(classpathFile, 'utf8').trim();
    if (cp.split(':').every((jar) => existsSync(jar))) return cp;
  }
  mkdirSync(cacheDir, { recursive: true });
  await execFileAsync(
    'mvn',
    ['-q', '-B', '-f', pomFile, 'dependency:build-classpath', `-Dmdep.outputFile=${classpathFile}`],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  writeFileSync(stampFile, pomStamp);
  return readFileSync(classpathFile, 'utf8').trim();
}

/** A TCP port on 127.0.0.1 that was free a moment ago (the OS picked it for a listener, then closed it). */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

const LOG4J = `rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
`;

function serverProperties(dataDir: string, ports: { plain: number; sasl: number; controller: number }): string {
  return [
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@127.0.0.1:${ports.controller}`,
    `listeners=PLAINTEXT://127.0.0.1:${ports.plain},SASL_PLAINTEXT://127.0.0.1:${ports.sasl},CONTROLLER://127.0.0.1:${ports.controller}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${ports.plain},SASL_PLAINTEXT://127.0.0.1:${ports.sasl}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT',
    'sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512',
    `listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="${SCRAM_USER.username}" password="${SCRAM_USER.password}";`,
    `listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="${SCRAM_USER.username}" password="${SCRAM_USER.password}";`,
    `log.dirs=${join(dataDir, 'data')}`,
    'num.partitions=1',
    'offsets.topic.replication.factor=1',
    'offsets.topic.num.partitions=1',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'transaction.state.log.num.partitions=1',
    'share.coordinator.state.topic.replication.factor=1',
    'share.coordinator.state.topic.min.isr=1',
    'group.initial.rebalance.delay.ms=0',
    'auto.create.topics.enable=false',
    // Tests create many short-lived topics and groups; keep the broker's own housekeeping light.
    'log.segment.bytes=67108864',
    'message.max.bytes=2097152',
    '',
  ].join('\n');
}

async function waitForMetadata(brokers: string, child: ChildProcess, deadline: number, logFile: string): Promise<void> {
  const kafka = new Kafka({
    clientId: 'sluice-broker-probe',
    brokers: [brokers],
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
  });
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`Kafka exited with code ${child.exitCode} during start-up; see ${logFile}:\n${tail(logFile)}`);
    }
    const admin = kafka.admin();
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      if (cluster.brokers.length > 0) return;
    } catch {
      // not up yet
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    if (Date.now() > deadline)
      throw new Error(`Kafka did not answer metadata requests in time; see ${logFile}:\n${tail(logFile)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-30).join('\n');
  } catch {
    return '';
  }
}

export interface StartOptions {
  /** JVM heap, e.g. '512m'. */
  heap?: string;
  timeoutMs?: number;
}

/** Starts a fresh broker with empty storage. */
export async function startLocalBroker(options: StartOptions = {}): Promise<LocalBroker> {
  const classpath = await fetchKafka();
  const dataDir = mkdtempSync(join(tmpdir(), 'sluice-kafka-'));
  const ports = { plain: await freePort(), sasl: await freePort(), controller: await freePort() };
  const props = join(dataDir, 'server.properties');
  const log4j = join(dataDir, 'log4j2.properties');
  writeFileSync(props, serverProperties(dataDir, ports));
  writeFileSync(log4j, LOG4J);
  const heap = options.heap ?? '512m';
  const jvm = [
    `-Xms${heap}`,
    `-Xmx${heap}`,
    '-XX:+UseG1GC',
    '-XX:MaxGCPauseMillis=20',
    '-XX:TieredStopAtLevel=1',
    '-Djava.awt.headless=true',
    `-Dlog4j2.configurationFile=${log4j}`,
    `-Dkafka.logs.dir=${join(dataDir, 'logs')}`,
    '-cp',
    classpath,
  ];
  const clusterId = (await execFileAsync(javaBin(), [...jvm, 'kafka.tools.StorageTool', 'random-uuid'])).stdout.trim();
  const scram = [
    '--add-scram',
    `SCRAM-SHA-256=[name=${SCRAM_USER.username},password=${SCRAM_USER.password}]`,
    '--add-scram',
    `SCRAM-SHA-512=[name=${SCRAM_USER.username},password=${SCRAM_USER.password}]`,
  ];
  await execFileAsync(javaBin(), [...jvm, 'kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', props, ...scram]);

  const logFile = join(dataDir, 'broker.log');
  const out = openSync(logFile, 'a');
  const started = Date.now();
  const child = spawn(javaBin(), [...jvm, 'kafka.Kafka', props], { stdio: ['ignore', out, out] });
  closeSync(out);
  const brokers = `127.0.0.1:${ports.plain}`;
  // If the parent dies without calling stop(), do not leave the JVM behind.
  const killOnExit = (): void => {
    if (child.exitCode === null) child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  try {
    await waitForMetadata(brokers, child, started + (options.timeoutMs ?? 90_000), logFile);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  const startupMs = Date.now() - started;

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      process.removeListener('exit', killOnExit);
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dataDir, { recursive: true, force: true });
    })());

  return { brokers, saslBrokers: `127.0.0.1:${ports.sasl}`, pid: child.pid ?? -1, dataDir, startupMs, stop };
}

/** Runs a Kafka tool class (e.g. `org.apache.kafka.tools.ConsumerPerformance`) from the same jars. */
export async function runKafkaTool(mainClass: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  const classpath = await fetchKafka();
  return execFileAsync(javaBin(), ['-Xmx512m', '-cp', classpath, mainClass, ...args], {
    maxBuffer: 64 * 1024 * 1024,
  });
}

const invokedDirectly = process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  const command = process.argv[2] ?? 'start';
  if (command === 'fetch') {
    const cp = await fetchKafka();
    console.log(`Kafka ${kafkaVersion()}: ${cp.split(':').length} jars resolved`);
  } else if (command === 'start') {
    const broker = await startLocalBroker();
    console.log(
      `Kafka ${kafkaVersion()} ready at ${broker.brokers} (SCRAM at ${broker.saslBrokers}) in ${broker.startupMs} ms`,
    );
    const shutdown = (): void => {
      void broker.stop().then(() => process.exit(0));
    };
    process.once('SIGINT', shutdown);
    process.once('SIGTERM', shutdown);
  } else {
    console.error(`unknown command ${command}; use fetch or start`);
    process.exit(2);
  }
}
