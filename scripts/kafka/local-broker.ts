/**
 * A real single-node Apache Kafka broker (KRaft, combined broker/controller) for tests, the demo and
 * benchmarks, run from the Kafka jars on Maven Central: no tarball, no Docker.
 *
 * `fetchKafka()` resolves the jars with Maven from `scripts/kafka/pom.xml` (cached in the Maven
 * repository, so only the first run downloads) and writes the classpath to `.kafka/classpath.txt`.
 * `startLocalBroker()` formats KRaft storage in a temporary folder, starts the broker on free
 * 127.0.0.1 ports, waits until it answers metadata requests and returns a handle whose `stop()` ends
 * the JVM (SIGTERM, then SIGKILL after a grace period) and removes the folder. `stopProcess()` and
 * `startProcess()` end and restart the JVM on the same ports and storage, for broker-outage tests.
 * `{ tls: true }` adds an SSL listener that requires client certificates, with a throw-away CA made
 * by `openssl` in the same folder (only then: a default start runs no openssl).
 *
 * Command line: `node scripts/kafka/local-broker.ts [fetch|start [--tls]]`.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync, rmSync, mkdtempSync, openSync, closeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
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

/** PEM files of a broker started with `{ tls: true }`, all in its data folder. */
export interface LocalBrokerTls {
  /** The CA that signed the broker's and the client's certificates. */
  readonly caFile: string;
  /** A client certificate the SSL listener accepts, and its private key (unencrypted PKCS#8). */
  readonly certFile: string;
  readonly keyFile: string;
  /** A CA that signed nothing this broker uses: trusting only it must fail verification. */
  readonly otherCaFile: string;
}

export interface LocalBroker {
  /** PLAINTEXT listener, `127.0.0.1:port`. */
  readonly brokers: string;
  /** SASL_PLAINTEXT listener with SCRAM-SHA-256 and SCRAM-SHA-512 (user {@link SCRAM_USER}). */
  readonly saslBrokers: string;
  /** SSL listener with `ssl.client.auth=required` (only with `{ tls: true }`). */
  readonly sslBrokers: string | undefined;
  readonly tls: LocalBrokerTls | undefined;
  /** The running JVM's pid (-1 while stopped); a restart changes it. */
  readonly pid: number;
  readonly dataDir: string;
  /** Milliseconds from JVM spawn to the first successful metadata request (of the latest start). */
  readonly startupMs: number;
  /** Whether the JVM is running (between `stopProcess()` and `startProcess()` it is not). */
  readonly running: boolean;
  /**
   * Ends the JVM (SIGTERM, then SIGKILL after `graceMs`, default 15 s) and keeps its ports and
   * storage for {@link startProcess}. Resolves when the process has exited.
   */
  stopProcess(options?: { graceMs?: number }): Promise<void>;
  /**
   * Starts the JVM again on the same ports and storage and waits until it answers metadata requests.
   * The ports were released while it was stopped: if another process took one meanwhile, this fails
   * naming the port instead of starting a broker that cannot bind.
   */
  startProcess(options?: { timeoutMs?: number }): Promise<void>;
  /** Ends the JVM and removes the storage; safe to call twice, also after `stopProcess()`. */
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

/**
 * `count` distinct free ports: every listener stays open until all are picked, so the OS cannot hand
 * out the same port twice (calling {@link freePort} in a row can, and two broker listeners on one
 * port stop the broker's storage format).
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer());
  try {
    return await Promise.all(
      servers.map(
        (server) =>
          new Promise<number>((resolvePort, reject) => {
            server.unref();
            server.on('error', reject);
            server.listen(0, '127.0.0.1', () => {
              const address = server.address();
              resolvePort(typeof address === 'object' && address ? address.port : 0);
            });
          }),
      ),
    );
  } finally {
    await Promise.all(servers.map((server) => new Promise<void>((r) => server.close(() => r()))));
  }
}

const LOG4J = `rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
logger.txn.name = kafka.coordinator.transaction
logger.txn.level = INFO
logger.txn2.name = org.apache.kafka.coordinator.transaction
logger.txn2.level = INFO
`;

interface Ports {
  plain: number;
  sasl: number;
  controller: number;
  ssl?: number;
}

interface ServerTls {
  /** PEM with the broker's private key and certificate. */
  keystore: string;
  /** PEM with the CA its clients' certificates must chain to. */
  truststore: string;
}

function serverProperties(
  dataDir: string,
  ports: Ports,
  tls?: ServerTls,
  overrides: Readonly<Record<string, string>> = {},
): string {
  const ssl = ports.ssl !== undefined && tls ? `SSL://127.0.0.1:${ports.ssl}` : undefined;
  const advertised = [
    `PLAINTEXT://127.0.0.1:${ports.plain}`,
    `SASL_PLAINTEXT://127.0.0.1:${ports.sasl}`,
    ...(ssl ? [ssl] : []),
  ];
  const lines = [
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@127.0.0.1:${ports.controller}`,
    `listeners=${[...advertised, `CONTROLLER://127.0.0.1:${ports.controller}`].join(',')}`,
    `advertised.listeners=${advertised.join(',')}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    `listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT${ssl ? ',SSL:SSL' : ''}`,
    'sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512',
    `listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="${SCRAM_USER.username}" password="${SCRAM_USER.password}";`,
    `listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="${SCRAM_USER.username}" password="${SCRAM_USER.password}";`,
    // Kafka reads PEM files directly (no PKCS12/JKS conversion); an unencrypted key needs no password.
    ...(ssl && tls
      ? [
          'listener.name.ssl.ssl.keystore.type=PEM',
          `listener.name.ssl.ssl.keystore.location=${tls.keystore}`,
          'listener.name.ssl.ssl.truststore.type=PEM',
          `listener.name.ssl.ssl.truststore.location=${tls.truststore}`,
          'listener.name.ssl.ssl.client.auth=required',
        ]
      : []),
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
  ];
  const overridden = (line: string): boolean => Object.hasOwn(overrides, line.slice(0, line.indexOf('=')));
  return [
    ...lines.filter((line) => !overridden(line)),
    ...Object.entries(overrides).map(([key, value]) => `${key}=${value}`),
    '',
  ].join('\n');
}

/** `openssl` with its arguments; failures carry its stderr. */
async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await execFileAsync('openssl', args, { cwd });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new Error(`openssl ${args[0]} failed: ${stderr.trim() || String(error)}`, { cause: error });
  }
}

/** EC P-256 keys: generated in milliseconds (RSA takes tens to hundreds), and both Node and Kafka read them. */
const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function makeCa(dir: string, name: string, cn: string): Promise<void> {
  await openssl(
    [
      'req',
      '-x509',
      ...EC_KEY,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.pem`,
      '-days',
      '30',
      '-subj',
      `/CN=${cn}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
}

async function makeLeaf(dir: string, name: string, cn: string, extensions: string): Promise<void> {
  writeFileSync(join(dir, `${name}.ext`), extensions);
  await openssl(['req', '-new', ...EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-set_serial',
      `0x${randomBytes(8).toString('hex')}`,
      '-days',
      '30',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.pem`,
    ],
    dir,
  );
}

/**
 * A CA, a broker certificate for 127.0.0.1/localhost and a client certificate signed by it, and an
 * unrelated CA, as PEM files in `dir/tls`.
 */
async function makeTlsFiles(dataDir: string): Promise<{ server: ServerTls; client: LocalBrokerTls }> {
  const dir = join(dataDir, 'tls');
  mkdirSync(dir);
  await Promise.all([makeCa(dir, 'ca', 'Sluice test CA'), makeCa(dir, 'other-ca', 'Unrelated test CA')]);
  await Promise.all([
    makeLeaf(
      dir,
      'server',
      'localhost',
      'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n',
    ),
    makeLeaf(
      dir,
      'client',
      'sluice-test-client',
      'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n',
    ),
  ]);
  const keystore = join(dir, 'server-keystore.pem');
  writeFileSync(
    keystore,
    readFileSync(join(dir, 'server.key'), 'utf8') + readFileSync(join(dir, 'server.pem'), 'utf8'),
  );
  return {
    server: { keystore, truststore: join(dir, 'ca.pem') },
    client: {
      caFile: join(dir, 'ca.pem'),
      certFile: join(dir, 'client.pem'),
      keyFile: join(dir, 'client.key'),
      otherCaFile: join(dir, 'other-ca.pem'),
    },
  };
}

async function waitForMetadata(brokers: string, child: ChildProcess, deadline: number, logFile: string): Promise<void> {
  const kafka = new Kafka({
    clientId: 'sluice-broker-probe',
    brokers: [brokers],
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
  });
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `Kafka exited with ${child.exitCode ?? child.signalCode} during start-up; see ${logFile}:\n${tail(logFile)}`,
      );
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

/** Resolves when `port` on 127.0.0.1 can be bound; rejects naming it when another process holds it. */
async function ensurePortFree(port: number, role: string): Promise<void> {
  await new Promise<void>((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `cannot restart the broker: its ${role} port 127.0.0.1:${port} was taken by another process while it was stopped (${error.code ?? error.message})`,
        ),
      ),
    );
    server.listen(port, '127.0.0.1', () => server.close(() => resolvePort()));
  });
}

export interface StartOptions {
  /** JVM heap, e.g. '512m'. */
  heap?: string;
  timeoutMs?: number;
  /** Add an SSL listener requiring client certificates, with certificates made by `openssl`. */
  tls?: boolean;
  /**
   * Broker settings that replace or add to the defaults above, e.g. a shorter
   * `transaction.abort.timed.out.transaction.cleanup.interval.ms` for a test that waits for it.
   */
  properties?: Readonly<Record<string, string>>;
}

/** Starts a fresh broker with empty storage. */
export async function startLocalBroker(options: StartOptions = {}): Promise<LocalBroker> {
  const classpath = await fetchKafka();
  const dataDir = mkdtempSync(join(tmpdir(), 'sluice-kafka-'));
  try {
    return await startIn(dataDir, classpath, options);
  } catch (error) {
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
}

async function startIn(dataDir: string, classpath: string, options: StartOptions): Promise<LocalBroker> {
  const [plain, sasl, controller, ssl] = await freePorts(options.tls ? 4 : 3);
  const ports: Ports = { plain: plain!, sasl: sasl!, controller: controller!, ...(ssl ? { ssl } : {}) };
  const tls = options.tls ? await makeTlsFiles(dataDir) : undefined;
  const props = join(dataDir, 'server.properties');
  const log4j = join(dataDir, 'log4j2.properties');
  writeFileSync(props, serverProperties(dataDir, ports, tls?.server, options.properties));
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
  const brokers = `127.0.0.1:${ports.plain}`;
  let child: ChildProcess | undefined;
  let startupMs = 0;
  // If the parent dies without calling stop(), do not leave the JVM behind.
  const killOnExit = (): void => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const running = (): boolean => child !== undefined && child.exitCode === null && child.signalCode === null;

  const launch = async (timeoutMs: number): Promise<void> => {
    const out = openSync(logFile, 'a');
    const started = Date.now();
    const spawned = spawn(javaBin(), [...jvm, 'kafka.Kafka', props], { stdio: ['ignore', out, out] });
    closeSync(out);
    child = spawned;
    process.once('exit', killOnExit);
    try {
      await waitForMetadata(brokers, spawned, started + timeoutMs, logFile);
    } catch (error) {
      await kill(0);
      throw error;
    }
    startupMs = Date.now() - started;
  };

  const kill = async (graceMs: number): Promise<void> => {
    const current = child;
    process.removeListener('exit', killOnExit);
    if (!current || current.exitCode !== null || current.signalCode !== null) return;
    const exited = new Promise<void>((r) => current.once('exit', () => r()));
    current.kill(graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
    const timer = setTimeout(() => current.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };

  let transition: Promise<void> = Promise.resolve();
  /** Start and stop run one after the other, never interleaved. */
  const serially = (step: () => Promise<void>): Promise<void> => {
    const next = transition.then(step);
    transition = next.catch(() => undefined);
    return next;
  };

  await launch(options.timeoutMs ?? 90_000);

  let removed: Promise<void> | undefined;
  const handle: LocalBroker = {
    brokers,
    saslBrokers: `127.0.0.1:${ports.sasl}`,
    sslBrokers: ports.ssl !== undefined ? `127.0.0.1:${ports.ssl}` : undefined,
    tls: tls?.client,
    get pid() {
      return running() ? (child?.pid ?? -1) : -1;
    },
    dataDir,
    get startupMs() {
      return startupMs;
    },
    get running() {
      return running();
    },
    stopProcess: ({ graceMs = 15_000 } = {}) => serially(() => kill(graceMs)),
    startProcess: ({ timeoutMs = 90_000 } = {}) =>
      serially(async () => {
        if (removed) throw new Error('the broker was stopped for good (stop()); start a new one');
        if (running()) throw new Error(`the broker is already running (pid ${child?.pid})`);
        const named: Array<[string, number | undefined]> = [
          ['PLAINTEXT', ports.plain],
          ['SASL_PLAINTEXT', ports.sasl],
          ['CONTROLLER', ports.controller],
          ['SSL', ports.ssl],
        ];
        for (const [role, port] of named) if (port !== undefined) await ensurePortFree(port, role);
        await launch(timeoutMs);
      }),
    stop: () =>
      (removed ??= serially(async () => {
        await kill(15_000);
        rmSync(dataDir, { recursive: true, force: true });
      })),
  };
  return handle;
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
    const broker = await startLocalBroker({ tls: process.argv.includes('--tls') });
    console.log(
      `Kafka ${kafkaVersion()} ready at ${broker.brokers} (SCRAM at ${broker.saslBrokers}${broker.sslBrokers ? `, SSL at ${broker.sslBrokers}` : ''}) in ${broker.startupMs} ms`,
    );
    if (broker.tls) console.log(`TLS files: ${JSON.stringify(broker.tls)}`);
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
