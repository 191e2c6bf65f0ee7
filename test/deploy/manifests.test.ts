/**
 * The deployment files agree with the code they deploy: every environment variable they set exists
 * in `ENV` (src/config/schema.ts), every port is SLUICE_HTTP_PORT's default, every probe path is a
 * route of the real HTTP server, every metric (and label) the dashboard and the alerts use is in the
 * real registry, the job and topics are the example job's, and the Dockerfile ships what `package.json`
 * publishes. Nothing is copied by hand: each expectation is read from its source of truth.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, posix, relative, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { type FastifyInstance } from 'fastify';
import pino from 'pino';
import { kafkaVersion } from '../../scripts/kafka/local-broker.ts';
import { ENV } from '../../src/config/schema.ts';
import { buildHttpServer } from '../../src/http/server.ts';
import { loadJobPlan } from '../../src/job/loader.ts';
import { type JobPlan } from '../../src/job/plan.ts';
import { Metrics } from '../../src/metrics/registry.ts';
import { BatchHistory } from '../../src/scheduler/batch-history.ts';
import { parseDuration } from '../../src/util/duration.ts';
import {
  alertGroups,
  alertRules,
  copies,
  dashboard,
  dashboardExprs,
  dashboardPanels,
  deployDir,
  dockerIgnored,
  execForm,
  filesUnder,
  groupings,
  healthcheck,
  instructions,
  last,
  metricNames,
  readDockerfile,
  readYaml,
  readYamlOne,
  root,
  selectorLabels,
  stageVars,
  workdir,
  type Stage,
} from './support.ts';

const DEFAULT_PORT = Number(ENV.SLUICE_HTTP_PORT.default);
const DEFAULT_SHUTDOWN_MS = parseDuration(ENV.SLUICE_SHUTDOWN_TIMEOUT.default)!;
const envNames = new Set(Object.keys(ENV));
const packageJson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  name: string;
  type: string;
  bin: Record<string, string>;
  files: string[];
  exports: Record<string, Record<string, string>>;
  engines: { node: string };
};

/** Labels Prometheus adds to every scraped series (compose: job, instance; Kubernetes: also these). */
const TARGET_LABELS = ['job', 'instance', 'namespace', 'pod', 'container', 'endpoint'];

let plan: JobPlan;
let app: FastifyInstance;
let baseUrl: string;
/** Every series name the registry exposes, with the label names it may carry. */
const exposed = new Map<string, Set<string>>();

beforeAll(async () => {
  plan = await loadJobPlan(join(root, 'examples', 'page-views.ts'));
  const metrics = new Metrics();
  app = buildHttpServer({
    logger: pino({ level: 'silent' }),
    registry: metrics.registry,
    history: new BatchHistory(10),
    liveness: () => ({ ok: true }),
    readiness: () => ({ ok: true }),
    status: () => ({ job: 'test', groupId: 'test', batchIntervalMs: 1000, partitions: [] }),
  });
  // A real listener, asked the way probes and scrapers ask (inject() would need Jest to load cookie@2's ESM).
  baseUrl = await app.listen({ host: '127.0.0.1', port: 0 });
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    const object = metrics.registry.getSingleMetric(metric.name) as unknown as { labelNames?: readonly string[] };
    const labels = new Set(object.labelNames ?? []);
    const type = String(metric.type);
    exposed.set(metric.name, labels);
    if (type === 'histogram' || type === 'summary') {
      exposed.set(`${metric.name}_sum`, labels);
      exposed.set(`${metric.name}_count`, labels);
    }
    if (type === 'histogram') exposed.set(`${metric.name}_bucket`, new Set([...labels, 'le']));
    if (type === 'summary') exposed.set(metric.name, new Set([...labels, 'quantile']));
  }
});

afterAll(async () => {
  await app.close();
});

/** GET `path` on the real HTTP server (fake dependencies, all healthy). */
async function statusOf(path: string): Promise<number> {
  const res = await fetch(`${baseUrl}${path}`);
  await res.arrayBuffer();
  return res.status;
}

// ---------------------------------------------------------------------------------------------------

describe('deploy/ files', () => {
  test('every YAML file parses (all documents) and every JSON file parses', () => {
    const yamlFiles = filesUnder(deployDir, ['.yaml', '.yml']);
    expect(yamlFiles.length).toBeGreaterThanOrEqual(12);
    for (const file of yamlFiles) {
      const docs = readYaml(join(root, file));
      expect({ file, documents: docs.length > 0 }).toEqual({ file, documents: true });
      for (const doc of docs) expect(typeof doc).toBe('object');
    }
    for (const file of filesUnder(deployDir, ['.json'])) {
      expect(() => JSON.parse(readFileSync(join(root, file), 'utf8')) as unknown).not.toThrow();
    }
  });
});

// ---------------------------------------------------------------------------------------------------

describe('Dockerfile', () => {
  const file = readDockerfile();
  const build = file.stages[0]!;
  const runtime = file.stages.at(-1)!;
  const runs = (stage: Stage): string[] => instructions(stage, 'RUN').map((i) => i.args);
  const appDir = workdir(runtime);

  test('is multi-stage on an official Node LTS slim image', () => {
    expect(file.stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of file.stages) {
      const match = /^node:(\d+)[\w.-]*-slim$/.exec(stage.base);
      expect(match).not.toBeNull();
      // LTS lines are the even majors; 20 reached end of life in April 2026. The image's line must
      // satisfy `engines` (a floating major tag is that line's newest release).
      expect(Number(match![1]) % 2).toBe(0);
      expect(Number(match![1])).toBeGreaterThanOrEqual(22);
      expect(Number(match![1])).toBeGreaterThanOrEqual(Number(/^>=\s*(\d+)/.exec(packageJson.engines.node)![1]));
    }
  });

  test('the build stage installs everything and runs the build script; the runtime stage production dependencies', () => {
    expect(runs(build).some((r) => /^npm ci\b/.test(r) && !r.includes('--omit=dev'))).toBe(true);
    expect(runs(build)).toContain('npm run build');
    expect(runs(runtime).some((r) => /^npm ci\b.*--omit=dev/.test(r))).toBe(true);
    expect(runs(runtime).some((r) => r.includes('npm run build') || r.includes('tsc'))).toBe(false);
  });

  test('the runtime stage ships everything package.json publishes ("files")', () => {
    const shipped = copies(file, runtime).flatMap((c) => {
      const dest = posix.resolve(appDir, c.dest);
      return c.sources.map((s) => posix.relative(appDir, dest.endsWith('/') ? posix.join(dest, basename(s)) : dest));
    });
    for (const entry of packageJson.files) expect(shipped).toContain(entry.replace(/\/$/, ''));
    const fromBuild = copies(file, runtime).filter((c) => c.from !== undefined);
    expect(fromBuild.map((c) => c.from)).toEqual(fromBuild.map(() => build.name));
  });

  test('every COPY from the build context exists and is not excluded by .dockerignore', () => {
    const ignore = readFileSync(join(root, '.dockerignore'), 'utf8');
    const sources = file.stages
      .flatMap((s) => copies(file, s).filter((c) => c.from === undefined))
      .flatMap((c) => c.sources);
    expect(sources).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', 'src', 'bin']));
    for (const source of sources) {
      expect({ source, exists: existsSync(join(root, source)) }).toEqual({ source, exists: true });
      expect({ source, ignored: dockerIgnored(ignore, source) }).toEqual({ source, ignored: false });
    }
    // The matcher itself: what must stay out of the image does.
    for (const path of [
      'node_modules',
      'node_modules/x/index.js',
      'dist/main.js',
      '.git/config',
      '.kafka',
      'test/x.ts',
    ]) {
      expect({ path, ignored: dockerIgnored(ignore, path) }).toEqual({ path, ignored: true });
    }
  });

  test('runs as the non-root node user, exposes SLUICE_HTTP_PORT and stops on SIGTERM', () => {
    expect(last(runtime, 'USER')?.args).toBe('node');
    expect(instructions(runtime, 'EXPOSE').map((i) => i.args)).toEqual([String(DEFAULT_PORT)]);
    expect(last(runtime, 'STOPSIGNAL')?.args).toBe('SIGTERM');
    expect(stageVars(file, runtime)['NODE_ENV']).toBe('production');
  });

  test('HEALTHCHECK asks /healthz with node itself, on SLUICE_HTTP_PORT or its default', async () => {
    const check = healthcheck(runtime)!;
    expect(check.command[0]).toBe('node');
    const script = check.command.join(' ');
    expect(script).toContain('/healthz');
    expect(script).toContain('process.env.SLUICE_HTTP_PORT');
    expect(script).toContain(`|| ${DEFAULT_PORT})`);
    expect(await statusOf('/healthz')).toBe(200);
    // Its timeout leaves room for the fetch's own abort, and the start period covers a cold start.
    expect(parseDuration(check.options['timeout']!)).toBeGreaterThan(Number(/timeout\((\d+)\)/.exec(script)?.[1]));
    expect(parseDuration(check.options['start-period']!)).toBeGreaterThanOrEqual(30_000);
  });

  test('ENTRYPOINT is the package bin; CMD runs the baked-in job, which resolves `sluice` through the package itself', () => {
    const entrypoint = execForm(last(runtime, 'ENTRYPOINT')!.args);
    const cmd = execForm(last(runtime, 'CMD')!.args);
    expect(entrypoint).toEqual(['node', posix.normalize(packageJson.bin['sluice']!)]);
    expect(cmd[0]).toBe('run');
    const jobPath = cmd[1]!;
    // The job lies inside the app directory, whose package.json is `sluice` with `exports` (self-reference).
    expect(jobPath.startsWith(`${appDir}/`)).toBe(true);
    expect(packageJson.name).toBe('sluice');
    expect(packageJson.type).toBe('module');
    expect(packageJson.exports['.']?.['default']).toBeDefined();
    const jobCopy = copies(file, runtime).find((c) => posix.resolve(appDir, c.dest) === jobPath);
    expect(jobCopy?.sources).toEqual(['examples/page-views.ts']);
  });
});

// ---------------------------------------------------------------------------------------------------

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile?: string; args?: Record<string, string> };
  environment?: Record<string, string> | string[];
  ports?: string[];
  command?: string[];
  entrypoint?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }> | string[];
  stop_grace_period?: string;
}

function envOf(service: ComposeService): Record<string, string> {
  const env = service.environment ?? {};
  if (!Array.isArray(env)) return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
  return Object.fromEntries(env.map((e) => [e.split('=')[0]!, e.slice(e.indexOf('=') + 1)]));
}

/** `host:container` bind mounts as absolute host paths. */
function mounts(service: ComposeService): Array<{ host: string; target: string }> {
  return (service.volumes ?? [])
    .map((v) => v.split(':'))
    .filter(([host]) => host!.startsWith('.') || host!.startsWith('/'))
    .map(([host, target]) => ({ host: resolve(deployDir, host!), target: target! }));
}

describe('deploy/compose.yaml', () => {
  const compose = readYamlOne<{ services: Record<string, ComposeService> }>(join(deployDir, 'compose.yaml'));
  const services = compose.services;
  const sluiceServices = Object.entries(services).filter(
    ([, s]) =>
      s.build && resolve(deployDir, s.build.context, s.build.dockerfile ?? 'Dockerfile') === join(root, 'Dockerfile'),
  );
  const sluice = services['sluice']!;

  test('runs Kafka (the pinned version, KRaft), Sluice from the Dockerfile, Prometheus and Grafana', () => {
    expect(Object.keys(services)).toEqual(expect.arrayContaining(['kafka', 'sluice', 'prometheus', 'grafana']));
    expect(services['kafka']!.image).toBe(`apache/kafka:${kafkaVersion()}`);
    expect(envOf(services['kafka']!)['KAFKA_PROCESS_ROLES']).toBe('broker,controller');
    expect(sluiceServices.map(([name]) => name)).toContain('sluice');
  });

  test("Sluice's environment uses only variables ENV defines", () => {
    for (const [name, service] of sluiceServices) {
      for (const key of Object.keys(envOf(service)))
        expect({ service: name, key, known: envNames.has(key) }).toEqual({ service: name, key, known: true });
    }
    const env = envOf(sluice);
    // Every value passes the variable's own validation.
    for (const [key, value] of Object.entries(env)) {
      expect({ key, ok: ENV[key as keyof typeof ENV].schema.safeParse(value).success }).toEqual({ key, ok: true });
    }
  });

  test('KAFKA_BROKERS is the broker service on its advertised in-network listener', () => {
    const advertised = envOf(services['kafka']!)['KAFKA_ADVERTISED_LISTENERS']!.split(',');
    const broker = envOf(sluice)['KAFKA_BROKERS']!;
    expect(advertised.map((l) => l.replace(/^\w+:\/\//, ''))).toContain(broker);
    expect(broker.split(':')[0]).toBe('kafka');
  });

  test('publishes the HTTP port and stops within a grace period longer than the shutdown timeout', () => {
    const port = Number(envOf(sluice)['SLUICE_HTTP_PORT'] ?? DEFAULT_PORT);
    expect(port).toBe(DEFAULT_PORT);
    expect((sluice.ports ?? []).map((p) => Number(String(p).split(':').at(-1)))).toContain(port);
    const shutdown = parseDuration(envOf(sluice)['SLUICE_SHUTDOWN_TIMEOUT'] ?? ENV.SLUICE_SHUTDOWN_TIMEOUT.default)!;
    expect(parseDuration(sluice.stop_grace_period!)).toBeGreaterThan(shutdown);
  });

  test('the baked-in job is the example; kafka-init creates its input topics and the generator feeds them', () => {
    expect(sluice.build!.args!['JOB']).toBe('examples/page-views.ts');
    const init = services['kafka-init']!;
    const topic = init.command![init.command!.indexOf('--topic') + 1];
    expect(plan.inputTopics).toEqual([topic]);
    expect((sluice.depends_on as Record<string, { condition: string }>)['kafka-init']?.condition).toBe(
      'service_completed_successfully',
    );
    const generator = services['generator']!;
    expect(generator.command![generator.command!.indexOf('--topic') + 1]).toBe(topic);
    expect(generator.command![generator.command!.indexOf('--brokers') + 1]).toBe(envOf(sluice)['KAFKA_BROKERS']);
    for (const m of mounts(generator)) expect(existsSync(m.host)).toBe(true);
    expect(existsSync(join(root, generator.entrypoint!.at(-1)!))).toBe(true);
  });

  test('Prometheus gets the scrape config and the alert rules it names, and scrapes sluice on the HTTP port', () => {
    const prometheus = services['prometheus']!;
    const files = mounts(prometheus);
    for (const m of files) expect(existsSync(m.host)).toBe(true);
    const configTarget = prometheus.command!.find((c) => c.startsWith('--config.file='))!.split('=')[1]!;
    const config = files.find((m) => m.target === configTarget)!;
    expect(config.host).toBe(join(deployDir, 'prometheus', 'prometheus.yml'));
    const parsed = readYamlOne<{
      rule_files: string[];
      scrape_configs: Array<{ job_name: string; metrics_path?: string; static_configs: Array<{ targets: string[] }> }>;
    }>(config.host);
    for (const rules of parsed.rule_files) {
      const target = posix.resolve(posix.dirname(configTarget), rules);
      expect(files.find((m) => m.target === target)?.host).toBe(join(deployDir, 'prometheus', rules));
    }
    const job = parsed.scrape_configs.find((c) => c.job_name === 'sluice')!;
    expect(job.static_configs.flatMap((s) => s.targets)).toEqual([`sluice:${DEFAULT_PORT}`]);
    expect(job.metrics_path ?? '/metrics').toBe('/metrics');
  });

  test('Grafana gets its provisioning: the data source is the prometheus service, the dashboards folder is mounted', () => {
    const grafana = services['grafana']!;
    const files = mounts(grafana);
    for (const m of files) expect(existsSync(m.host)).toBe(true);
    const provisioning = files.find((m) => m.target === '/etc/grafana/provisioning')!;
    const datasources = readYamlOne<{ datasources: Array<{ type: string; url: string; uid: string }> }>(
      join(provisioning.host, 'datasources', 'prometheus.yaml'),
    ).datasources;
    expect(datasources).toEqual([expect.objectContaining({ type: 'prometheus', url: 'http://prometheus:9090' })]);
    const providers = readYamlOne<{ providers: Array<{ options: { path: string } }> }>(
      join(provisioning.host, 'dashboards', 'sluice.yaml'),
    ).providers;
    const dashboards = files.find((m) => m.target === providers[0]!.options.path)!;
    expect(dashboards.host).toBe(join(deployDir, 'grafana', 'dashboards'));
    const home = envOf(grafana)['GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH']!;
    expect(existsSync(join(dashboards.host, relative(dashboards.target, home)))).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------------

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- manifests are free-form; each test reads its fields
  spec?: any;
  data?: Record<string, string>;
}
interface Container {
  name: string;
  image: string;
  args?: string[];
  ports: Array<{ name?: string; containerPort: number }>;
  env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  volumeMounts?: Array<{ name: string; mountPath: string }>;
}

describe('deploy/kubernetes', () => {
  const k8sDir = join(deployDir, 'kubernetes');
  const manifestFiles = filesUnder(k8sDir, ['.yaml', '.yml']).filter((f) => basename(f) !== 'kustomization.yaml');
  const objects = manifestFiles.flatMap((f) => readYaml(join(root, f)) as K8sObject[]);
  const one = (kind: string): K8sObject => {
    const found = objects.filter((o) => o.kind === kind);
    expect(found.map((o) => o.kind)).toEqual([kind]);
    return found[0]!;
  };
  const deployment = one('Deployment');
  const podLabels = deployment.spec.template.metadata.labels as Record<string, string>;
  const container = (deployment.spec.template.spec.containers as Container[]).find((c) => c.name === 'sluice')!;
  const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value]));
  const selects = (selector: Record<string, string>): boolean =>
    Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => podLabels[k] === v);

  test('the kustomization lists every manifest, and each has the expected kind and API version', () => {
    const kustomization = readYamlOne<{ resources: string[] }>(join(k8sDir, 'kustomization.yaml'));
    expect([...kustomization.resources].sort()).toEqual(
      manifestFiles.map((f) => relative(k8sDir, join(root, f))).sort(),
    );
    const kinds = Object.fromEntries(objects.map((o) => [o.kind, o.apiVersion]));
    expect(kinds).toEqual({
      ConfigMap: 'v1',
      Deployment: 'apps/v1',
      Service: 'v1',
      PodMonitor: 'monitoring.coreos.com/v1',
      PrometheusRule: 'monitoring.coreos.com/v1',
      ScaledObject: 'keda.sh/v1alpha1',
      PodDisruptionBudget: 'policy/v1',
    });
  });

  test("the container's environment uses only variables ENV defines, with valid values", () => {
    for (const e of container.env ?? []) {
      expect({ name: e.name, known: envNames.has(e.name) }).toEqual({ name: e.name, known: true });
      if (e.value !== undefined) {
        expect({ name: e.name, ok: ENV[e.name as keyof typeof ENV].schema.safeParse(e.value).success }).toEqual({
          name: e.name,
          ok: true,
        });
      }
    }
    expect(env['KAFKA_BROKERS']).toBeDefined();
  });

  test('the container port is SLUICE_HTTP_PORT; probes ask /healthz and /readyz on it, and both are routes', async () => {
    const port = Number(env['SLUICE_HTTP_PORT'] ?? DEFAULT_PORT);
    expect(port).toBe(DEFAULT_PORT);
    expect(container.ports.map((p) => p.containerPort)).toEqual([port]);
    const resolvePort = (p: string | number): number | undefined =>
      typeof p === 'number' ? p : container.ports.find((c) => c.name === p)?.containerPort;
    expect(container.livenessProbe?.httpGet?.path).toBe('/healthz');
    expect(container.readinessProbe?.httpGet?.path).toBe('/readyz');
    for (const probe of [container.livenessProbe!, container.readinessProbe!]) {
      expect(resolvePort(probe.httpGet!.port)).toBe(port);
      expect(await statusOf(probe.httpGet!.path)).toBe(200);
    }
  });

  test('requests and limits CPU and memory, runs as non-root, and outlasts the shutdown timeout', () => {
    for (const kind of ['requests', 'limits'] as const) {
      expect(Object.keys(container.resources?.[kind] ?? {}).sort()).toEqual(['cpu', 'memory']);
    }
    const pod = deployment.spec.template.spec as { terminationGracePeriodSeconds: number; securityContext: object };
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true });
    const shutdownMs = env['SLUICE_SHUTDOWN_TIMEOUT']
      ? parseDuration(env['SLUICE_SHUTDOWN_TIMEOUT'])
      : DEFAULT_SHUTDOWN_MS;
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(shutdownMs!);
    expect(selects(deployment.spec.selector.matchLabels as Record<string, string>)).toBe(true);
  });

  test('the ConfigMap holds the example job, mounted where the container runs it', () => {
    const configMap = one('ConfigMap');
    const jobPath = container.args![1]!;
    expect(container.args).toEqual(execForm(last(readDockerfile().stages.at(-1)!, 'CMD')!.args));
    const volume = (
      deployment.spec.template.spec.volumes as Array<{ name: string; configMap?: { name: string } }>
    ).find((v) => v.configMap?.name === configMap.metadata.name)!;
    const mount = container.volumeMounts!.find((m) => m.name === volume.name)!;
    expect(mount.mountPath).toBe(dirname(jobPath));
    expect(configMap.data![basename(jobPath)]).toBe(readFileSync(join(root, 'examples', 'page-views.ts'), 'utf8'));
  });

  test('Service and PodMonitor select the pods and reach the named HTTP port; /metrics is a route', async () => {
    const service = one('Service');
    expect(selects(service.spec.selector as Record<string, string>)).toBe(true);
    const portNames = container.ports.map((p) => p.name);
    for (const p of service.spec.ports as Array<{ targetPort: string }>) expect(portNames).toContain(p.targetPort);
    const podMonitor = one('PodMonitor');
    expect(selects(podMonitor.spec.selector.matchLabels as Record<string, string>)).toBe(true);
    const endpoints = podMonitor.spec.podMetricsEndpoints as Array<{ port: string; path: string }>;
    for (const e of endpoints) {
      expect(portNames).toContain(e.port);
      expect(await statusOf(e.path)).toBe(200);
    }
    // job="sluice", as in the compose scrape config, so the alerts and the dashboard work unchanged.
    expect(podLabels[podMonitor.spec.jobLabel as string]).toBe('sluice');
  });

  test('the PodDisruptionBudget covers the pods', () => {
    const pdb = one('PodDisruptionBudget');
    expect(selects(pdb.spec.selector.matchLabels as Record<string, string>)).toBe(true);
    expect(pdb.spec.maxUnavailable ?? pdb.spec.minAvailable).toBeDefined();
  });

  test("KEDA scales the Deployment on the lag of the job's consumer group on its topics", () => {
    const scaled = one('ScaledObject');
    expect(scaled.spec.scaleTargetRef.name).toBe(deployment.metadata.name);
    expect(scaled.spec.minReplicaCount).toBeGreaterThanOrEqual(1);
    expect(scaled.spec.maxReplicaCount).toBeGreaterThanOrEqual(scaled.spec.minReplicaCount as number);
    const triggers = scaled.spec.triggers as Array<{ type: string; metadata: Record<string, string> }>;
    const groupId = env['SLUICE_GROUP_ID'] ?? plan.name;
    const topics = [...plan.inputTopics, ...(plan.repartitionTopic ? [plan.repartitionTopic] : [])];
    expect(triggers.map((t) => t.metadata['topic']).sort()).toEqual([...topics].sort());
    for (const t of triggers) {
      expect(t.type).toBe('kafka');
      expect(t.metadata['bootstrapServers']).toBe(env['KAFKA_BROKERS']);
      expect(t.metadata['consumerGroup']).toBe(groupId);
      expect(Number(t.metadata['lagThreshold'])).toBeGreaterThan(0);
    }
  });

  test('the PrometheusRule carries exactly the alert rules of deploy/prometheus/alerts.yml', () => {
    expect(one('PrometheusRule').spec.groups).toEqual(alertGroups());
  });
});

// ---------------------------------------------------------------------------------------------------

describe('metrics used by the dashboard and the alerts', () => {
  const exprs = [
    ...dashboardExprs().map((e) => ({ where: `dashboard: ${e.panel}`, expr: e.expr })),
    ...alertRules().map((r) => ({ where: `alert: ${r.alert!}`, expr: r.expr })),
  ];
  /** Series Prometheus makes itself, not the service. */
  const synthetic = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped']);

  test('the expression parser finds names, selectors and groupings', () => {
    const expr = 'sum by (topic, partition) (rate(a_total{job="x", code=~"b_c"}[5m])) / on (job) b_sum offset 5m > 1e3';
    expect(metricNames(expr).sort()).toEqual(['a_total', 'b_sum']);
    expect(selectorLabels(expr)).toEqual([{ metric: 'a_total', labels: ['job', 'code'] }]);
    expect(groupings(expr)).toEqual([{ labels: ['topic', 'partition'], metrics: ['a_total'] }]);
    expect(groupings('sum(rate(x[1m])) by (le)')).toEqual([{ labels: ['le'], metrics: ['x'] }]);
  });

  test('every metric name exists in the registry (histograms with _bucket, _sum, _count)', () => {
    const used = new Set<string>();
    for (const { where, expr } of exprs) {
      const names = metricNames(expr);
      expect({ where, names: names.length > 0 }).toEqual({ where, names: true });
      for (const name of names) {
        used.add(name);
        if (synthetic.has(name)) continue;
        expect({ where, name, exists: exposed.has(name) }).toEqual({ where, name, exists: true });
      }
    }
    for (const variable of dashboard().templating.list) {
      if (variable.type !== 'query') continue;
      const query = typeof variable.query === 'string' ? variable.query : variable.query.query;
      const metric = /^label_values\(\s*([a-zA-Z_:][\w:]*)/.exec(query)?.[1];
      expect({ variable: variable.name, metric, exists: exposed.has(metric ?? '') }).toEqual({
        variable: variable.name,
        metric,
        exists: true,
      });
    }
    // The panels the dashboard must have, by the metrics they plot.
    expect([...used]).toEqual(
      expect.arrayContaining([
        'sluice_records_in_total',
        'sluice_batch_processing_seconds_bucket',
        'sluice_batch_scheduling_delay_seconds_bucket',
        'sluice_batch_total_delay_seconds_bucket',
        'sluice_consumer_lag_records',
        'sluice_records_dead_lettered_total',
        'sluice_records_late_total',
        'sluice_open_windows',
        'sluice_buffer_records',
        'sluice_worker_busy_ratio',
        'process_resident_memory_bytes',
        'sluice_worker_restarts_total',
        'up',
      ]),
    );
  });

  test('every label matched or grouped by is one the metric has (or a target label)', () => {
    for (const { where, expr } of exprs) {
      for (const { metric, labels } of selectorLabels(expr)) {
        const known = synthetic.has(metric) ? new Set<string>() : exposed.get(metric)!;
        for (const label of labels) {
          const ok = known.has(label) || TARGET_LABELS.includes(label);
          expect({ where, metric, label, ok }).toEqual({ where, metric, label, ok: true });
        }
      }
      for (const { labels, metrics } of groupings(expr)) {
        for (const label of labels) {
          const ok =
            TARGET_LABELS.includes(label) ||
            metrics.some((m) => synthetic.has(m) || exposed.get(m)?.has(label) === true);
          expect({ where, label, metrics, ok }).toEqual({ where, label, metrics, ok: true });
        }
      }
    }
  });

  test('alert rules are named, labelled with a severity and explained', () => {
    const rules = alertRules();
    expect(rules.length).toBeGreaterThanOrEqual(5);
    const names = rules.map((r) => r.alert);
    expect(new Set(names).size).toBe(names.length);
    for (const rule of rules) {
      expect(rule.alert).toMatch(/^Sluice[A-Z]\w+$/);
      expect(['critical', 'warning', 'info']).toContain(rule.labels?.['severity']);
      expect(rule.annotations?.['summary']).toBeTruthy();
      expect(rule.annotations?.['description']).toBeTruthy();
    }
  });

  test('dashboard panels use the data source variable, have unique ids and fit the grid', () => {
    const panels = dashboardPanels();
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    for (const p of panels) {
      expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
      if (p.type !== 'row') expect(p.datasource?.uid).toBe('${datasource}');
    }
    expect(dashboard().templating.list.map((v) => v.name)).toEqual(
      expect.arrayContaining(['datasource', 'job', 'instance']),
    );
  });
});
