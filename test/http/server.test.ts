/**
 * The HTTP surface through `fastify.inject()`, with fake dependencies: a history of a few batches, a
 * registry with a handful of metrics, and liveness/readiness stubs the tests flip.
 */
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
// fastify.inject() loads light-my-request, which `require()`s the ESM-only cookie@2: Node does that
// natively, Jest's CommonJS loader cannot. Hand it the ES module, loaded the ESM way.
import * as cookie from 'cookie';
import { type FastifyInstance } from 'fastify';
import pino from 'pino';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { negotiateMetricsFormat } from '../../src/http/metrics-format.ts';
import { buildHttpServer, type Check, type ErrorsResponse } from '../../src/http/server.ts';
import { BatchHistory, type BatchInfo } from '../../src/scheduler/batch-history.ts';
import { type PartitionStatus } from '../../src/scheduler/scheduler.ts';

jest.mock('cookie', () => cookie);

const PROMETHEUS_ACCEPT =
  'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
const TEXT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
const OPENMETRICS_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';
const STARTED_AT = Date.now() - 90_000;

function batch(id: number, overrides: Partial<BatchInfo> = {}): BatchInfo {
  const scheduledAt = 1_700_000_000_000 + id * 200;
  return {
    id,
    scheduledAt,
    startedAt: scheduledAt + 5,
    records: 100 * id,
    inputRecords: 100 * id,
    outputs: id,
    late: 0,
    deadLettered: 0,
    processingMs: 40 + id,
    schedulingDelayMs: 5,
    totalDelayMs: 45 + id,
    outcome: 'ok',
    ...overrides,
  };
}

const partitions: PartitionStatus[] = [
  {
    topic: 'clicks',
    partition: 0,
    position: 10,
    highWatermark: 15,
    lag: 5,
    streamTime: 1_700_000_000_000,
    buffered: 2,
    kind: 'windowed',
    rewinding: false,
    restoring: null,
  },
  {
    topic: 'clicks',
    partition: 1,
    kind: 'windowed',
    position: null,
    highWatermark: null,
    lag: null,
    streamTime: null,
    buffered: 0,
    rewinding: true,
    restoring: null,
  },
  {
    // Its state is being read back from the changelog: how far, and the end being read to.
    topic: 'clicks',
    partition: 2,
    kind: 'windowed',
    position: 40,
    highWatermark: 90,
    lag: 50,
    streamTime: null,
    buffered: 0,
    rewinding: false,
    restoring: { records: 1_200, end: 5_000 },
  },
];

let app: FastifyInstance;
let registry: Registry;
let liveness: Check = { ok: true };
let readiness: Check = { ok: true };

beforeAll(async () => {
  registry = new Registry();
  const recordsIn = new Counter({
    name: 'sluice_records_in_total',
    help: 'Records read.',
    labelNames: ['topic', 'partition'],
    registers: [registry],
  });
  recordsIn.inc({ topic: 'clicks', partition: '0' }, 3);
  const dead = new Counter({
    name: 'sluice_records_dead_lettered_total',
    help: 'Dead letters by code.',
    labelNames: ['code'],
    registers: [registry],
  });
  dead.inc({ code: 'SLUICE_LATE_RECORD' }, 7);
  dead.inc({ code: 'SLUICE_DESERIALIZE_FAILED' }, 2);
  new Counter({ name: 'sluice_worker_restarts_total', help: 'Restarts.', registers: [registry] }).inc(1);
  new Counter({ name: 'sluice_rebalances_total', help: 'Rebalances.', registers: [registry] }).inc(4);
  const histogram = new Histogram({
    name: 'sluice_batch_processing_seconds',
    help: 'Processing.',
    buckets: [0.1, 1],
    registers: [registry],
  });
  histogram.observe(0.05);
  // A metric that is read asynchronously: scrapes overlap while it is being collected.
  new Gauge({
    name: 'sluice_slow_gauge',
    help: 'Collected after a pause.',
    registers: [registry],
    async collect() {
      await new Promise((r) => setTimeout(r, 5));
      this.set(1);
    },
  });

  const history = new BatchHistory(50);
  for (let id = 1; id <= 5; id++) {
    history.add(
      id === 3
        ? batch(id, { outcome: 'failed', error: 'KafkaJSError: broker went away', processingMs: 900 })
        : batch(id),
    );
  }
  app = buildHttpServer({
    logger: pino({ level: 'silent' }),
    registry,
    history,
    liveness: () => liveness,
    readiness: async () => readiness,
    startedAt: STARTED_AT,
    status: () => ({
      job: 'page-views',
      groupId: 'page-views',
      state: 'running',
      batchIntervalMs: 200,
      inputTopics: ['clicks'],
      outputTopic: 'page-counts',
      dlqTopic: 'page-views-dlq',
      repartitionTopic: null,
      changelogTopic: 'page-views-changelog',
      delivery: 'exactly-once',
      restoring: { partitions: 1, records: 1_200, end: 5_000 },
      workers: 2,
      workerRestarts: 1,
      buffer: { records: 2, bytes: 120, paused: 0 },
      partitions,
    }),
  });
  await app.ready();
});

afterAll(async () => {
  await app.close();
});

describe('health', () => {
  test('/healthz is 200 while live and 503 with the reason when failing', async () => {
    liveness = { ok: true };
    const ok = await app.inject({ url: '/healthz' });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ status: 'ok' });
    expect(ok.headers['cache-control']).toBe('no-store');

    liveness = { ok: false, reason: 'event loop blocked for 12000 ms' };
    const failing = await app.inject({ url: '/healthz' });
    expect(failing.statusCode).toBe(503);
    expect(failing.json()).toEqual({ status: 'failing', reason: 'event loop blocked for 12000 ms' });
    liveness = { ok: true };
  });

  test('/readyz is 200 when ready and 503 with the reason when not', async () => {
    readiness = { ok: true };
    const ready = await app.inject({ url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: 'ready' });

    readiness = { ok: false, reason: 'consumer group not joined' };
    const notReady = await app.inject({ url: '/readyz' });
    expect(notReady.statusCode).toBe(503);
    expect(notReady.json()).toEqual({ status: 'not ready', reason: 'consumer group not joined' });
    readiness = { ok: true };
  });
});

describe('/metrics', () => {
  test('the Prometheus text format 0.0.4 by default', async () => {
    for (const headers of [{}, { accept: '*/*' }, { accept: 'text/plain' }, { accept: 'application/json' }]) {
      const res = await app.inject({ url: '/metrics', headers });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe(TEXT_TYPE);
      expect(res.headers['vary']).toBe('Accept');
      expect(res.body).toContain('# TYPE sluice_records_in_total counter');
      expect(res.body).toContain('sluice_records_in_total{topic="clicks",partition="0"} 3');
      expect(res.body).toContain('sluice_batch_processing_seconds_bucket{le="0.1"} 1');
      expect(res.body).not.toContain('# EOF');
    }
  });

  test('OpenMetrics 1.0.0 when the Accept header asks for it, ending in # EOF', async () => {
    for (const accept of [
      PROMETHEUS_ACCEPT,
      'application/openmetrics-text',
      'application/openmetrics-text; version=1.0.0',
    ]) {
      const res = await app.inject({ url: '/metrics', headers: { accept } });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe(OPENMETRICS_TYPE);
      expect(res.body.endsWith('# EOF\n')).toBe(true);
      // Counter families are named without `_total`; their samples keep it.
      expect(res.body).toContain('# TYPE sluice_records_in counter');
      expect(res.body).toContain('sluice_records_in_total{topic="clicks",partition="0"} 3');
      expect(res.body).not.toContain('_total_total');
      expect(res.body).toContain('sluice_batch_processing_seconds_bucket{le="+Inf"} 1');
      expect(res.body).toContain('sluice_slow_gauge 1');
    }
  });

  test('an OpenMetrics scrape leaves the shared registry as it was', async () => {
    await app.inject({ url: '/metrics', headers: { accept: PROMETHEUS_ACCEPT } });
    expect(registry.contentType).toBe(TEXT_TYPE);
    // prom-client renames counters in place when a registry renders OpenMetrics; the shared one must not.
    expect(registry.getSingleMetric('sluice_records_in_total')).toBeDefined();
    const text = await app.inject({ url: '/metrics' });
    expect(text.body).toContain('sluice_records_in_total{topic="clicks",partition="0"} 3');
    expect(text.body).toContain('# HELP sluice_records_in_total Records read.');
  });

  test('concurrent scrapes in both formats each get their own format', async () => {
    const requests = Array.from({ length: 24 }, (_, i) => (i % 2 === 0 ? PROMETHEUS_ACCEPT : 'text/plain'));
    const responses = await Promise.all(requests.map((accept) => app.inject({ url: '/metrics', headers: { accept } })));
    responses.forEach((res, i) => {
      const openMetrics = i % 2 === 0;
      expect(res.headers['content-type']).toBe(openMetrics ? OPENMETRICS_TYPE : TEXT_TYPE);
      expect(res.body.includes('# EOF')).toBe(openMetrics);
      expect(res.body).toContain(
        openMetrics ? '# TYPE sluice_records_in counter' : '# TYPE sluice_records_in_total counter',
      );
      expect(res.body).toContain('sluice_records_in_total{topic="clicks",partition="0"} 3');
    });
  });

  test.each([
    [undefined, 'prometheus'],
    ['', 'prometheus'],
    ['*/*', 'prometheus'],
    ['text/plain;version=0.0.4', 'prometheus'],
    ['application/json', 'prometheus'],
    ['application/openmetrics-text', 'openmetrics'],
    ['application/openmetrics-text;version=0.0.1', 'openmetrics'],
    ['application/openmetrics-text;version=2.0.0', 'prometheus'],
    ['application/openmetrics-text;q=0', 'prometheus'],
    ['text/plain;q=1, application/openmetrics-text;q=0.5', 'prometheus'],
    ['text/plain;q=0.5, application/openmetrics-text', 'openmetrics'],
    ['*/*, application/openmetrics-text', 'openmetrics'],
    ['text/plain, application/openmetrics-text', 'prometheus'],
    [PROMETHEUS_ACCEPT, 'openmetrics'],
  ])('Accept %j → %s', (accept, format) => {
    expect(negotiateMetricsFormat(accept)).toBe(format);
  });
});

describe('/api/batches', () => {
  test('recent batches, oldest first, with every field', async () => {
    const res = await app.inject({ url: '/api/batches' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['cache-control']).toBe('no-store');
    const { batches } = res.json<{ batches: BatchInfo[] }>();
    expect(batches.map((b) => b.id)).toEqual([1, 2, 3, 4, 5]);
    expect(batches[0]).toEqual(batch(1));
    expect(batches[2]).toMatchObject({ outcome: 'failed', error: 'KafkaJSError: broker went away' });
  });

  test('limit and after', async () => {
    const ids = async (query: string): Promise<number[]> =>
      (await app.inject({ url: `/api/batches${query}` })).json<{ batches: BatchInfo[] }>().batches.map((b) => b.id);
    expect(await ids('?limit=2')).toEqual([4, 5]);
    expect(await ids('?limit=nonsense')).toEqual([1, 2, 3, 4, 5]);
    expect(await ids('?limit=0')).toEqual([1, 2, 3, 4, 5]);
    expect(await ids('?after=3')).toEqual([4, 5]);
    expect(await ids('?after=5')).toEqual([]);
    expect(await ids('?after=3&limit=1')).toEqual([5]);
    // Beyond the newest batch: the service restarted and ids began again; everything recent comes back.
    expect(await ids('?after=999')).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('/api/status', () => {
  test('the job, its topics, workers, buffer and partitions, plus uptime and health', async () => {
    readiness = { ok: false, reason: 'no partitions assigned' };
    const res = await app.inject({ url: '/api/status' });
    readiness = { ok: true };
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const body = res.json<Record<string, unknown>>();
    expect(body).toMatchObject({
      job: 'page-views',
      groupId: 'page-views',
      state: 'running',
      batchIntervalMs: 200,
      inputTopics: ['clicks'],
      outputTopic: 'page-counts',
      dlqTopic: 'page-views-dlq',
      repartitionTopic: null,
      changelogTopic: 'page-views-changelog',
      delivery: 'exactly-once',
      restoring: { partitions: 1, records: 1_200, end: 5_000 },
      workers: 2,
      workerRestarts: 1,
      buffer: { records: 2, bytes: 120, paused: 0 },
      partitions,
      startedAt: STARTED_AT,
      health: { live: { ok: true }, ready: { ok: false, reason: 'no partitions assigned' } },
    });
    // Every partition says whether it is restoring, null when not (the page shows how far it is).
    expect((body['partitions'] as PartitionStatus[]).map((p) => p.restoring)).toEqual([
      null,
      null,
      { records: 1_200, end: 5_000 },
    ]);
    expect(body['uptimeMs']).toBeGreaterThanOrEqual(90_000);
    expect(Math.abs((body['now'] as number) - Date.now())).toBeLessThan(5_000);
  });
});

describe('/api/errors', () => {
  test('failed batches newest first, dead letters by code, restart counters', async () => {
    const res = await app.inject({ url: '/api/errors' });
    expect(res.statusCode).toBe(200);
    expect(res.json<ErrorsResponse>()).toEqual({
      failedBatches: [
        {
          id: 3,
          scheduledAt: batch(3).scheduledAt,
          startedAt: batch(3).startedAt,
          records: 300,
          processingMs: 900,
          error: 'KafkaJSError: broker went away',
        },
      ],
      batches: { total: 5, failed: 1 },
      deadLetters: {
        total: 9,
        byCode: [
          { code: 'SLUICE_LATE_RECORD', count: 7 },
          { code: 'SLUICE_DESERIALIZE_FAILED', count: 2 },
        ],
      },
      workerRestarts: 1,
      rebalances: 4,
      // Not in this registry: zero.
      partitionResets: 0,
    });
  });
});

describe('status page', () => {
  test('/ is HTML that links every asset by content hash, under a strict CSP', async () => {
    const res = await app.inject({ url: '/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-cache');
    expect(res.headers['content-security-policy']).toContain("script-src 'self'");
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.body).toMatch(/^<!doctype html>/i);
    expect(res.body).not.toContain('{{');
    const links = [...res.body.matchAll(/(?:href|src)="(\/assets\/[^"]+)"/g)].map((m) => m[1]!);
    expect(links).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^\/assets\/status\.js\?v=[\w-]{12}$/),
        expect.stringMatching(/^\/assets\/status\.css\?v=/),
        expect.stringMatching(/^\/assets\/vendor\/uPlot\.iife\.min\.js\?v=/),
        expect.stringMatching(/^\/assets\/vendor\/uPlot\.min\.css\?v=/),
        expect.stringMatching(/^\/assets\/favicon\.svg\?v=/),
      ]),
    );
    const types: Record<string, string> = {
      js: 'text/javascript; charset=utf-8',
      css: 'text/css; charset=utf-8',
      svg: 'image/svg+xml',
    };
    for (const link of links) {
      const asset = await app.inject({ url: link });
      expect(asset.statusCode).toBe(200);
      expect(asset.headers['content-type']).toBe(types[/\.(\w+)\?/.exec(link)![1]!]);
      expect(asset.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(asset.headers['x-content-type-options']).toBe('nosniff');
      expect(asset.rawPayload.length).toBeGreaterThan(100);
    }
  });

  test('uPlot is served from the package, not a CDN', async () => {
    const js = await app.inject({ url: '/assets/vendor/uPlot.iife.min.js' });
    expect(js.statusCode).toBe(200);
    expect(js.body).toContain('uPlot');
    const css = await app.inject({ url: '/assets/vendor/uPlot.min.css' });
    expect(css.body).toContain('.uplot');
    const page = await app.inject({ url: '/' });
    expect(page.body).not.toMatch(/https?:\/\//);
  });

  test('an asset without its current hash is revalidated; a matching ETag answers 304', async () => {
    const first = await app.inject({ url: '/assets/status.js' });
    expect(first.statusCode).toBe(200);
    expect(first.headers['cache-control']).toBe('no-cache');
    const etag = first.headers['etag'] as string;
    expect(etag).toMatch(/^"[\w-]+"$/);
    const again = await app.inject({ url: '/assets/status.js', headers: { 'if-none-match': etag } });
    expect(again.statusCode).toBe(304);
    expect(again.rawPayload.length).toBe(0);
    const stale = await app.inject({ url: '/assets/status.js?v=old', headers: { 'if-none-match': '"other"' } });
    expect(stale.statusCode).toBe(200);
    expect(stale.headers['cache-control']).toBe('no-cache');
    const page = await app.inject({ url: '/' });
    const page304 = await app.inject({ url: '/', headers: { 'if-none-match': page.headers['etag'] as string } });
    expect(page304.statusCode).toBe(304);
  });

  test('gzip for clients that accept it', async () => {
    const plain = await app.inject({ url: '/assets/vendor/uPlot.iife.min.js' });
    const gz = await app.inject({
      url: '/assets/vendor/uPlot.iife.min.js',
      headers: { 'accept-encoding': 'gzip, br' },
    });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gz.headers['vary']).toBe('Accept-Encoding');
    expect(gz.rawPayload.length).toBeLessThan(plain.rawPayload.length);
    expect(gunzipSync(gz.rawPayload).equals(plain.rawPayload)).toBe(true);
    const refused = await app.inject({
      url: '/assets/vendor/uPlot.iife.min.js',
      headers: { 'accept-encoding': 'gzip;q=0' },
    });
    expect(refused.headers['content-encoding']).toBeUndefined();
  });

  test('without its files the page answers 503 with the reason and everything else still works', async () => {
    const bare = buildHttpServer({
      logger: pino({ level: 'silent' }),
      registry: new Registry(),
      history: new BatchHistory(10),
      liveness: () => ({ ok: true }),
      readiness: () => ({ ok: true }),
      status: () => ({ job: 'j', groupId: 'j', batchIntervalMs: 1000, partitions: [] }),
      assetsDir: '/nonexistent/sluice-assets',
    });
    try {
      const page = await bare.inject({ url: '/' });
      expect(page.statusCode).toBe(503);
      expect(page.body).toMatch(/^status page unavailable: .*nonexistent/);
      expect((await bare.inject({ url: '/healthz' })).statusCode).toBe(200);
      expect((await bare.inject({ url: '/api/status' })).json()).toMatchObject({ job: 'j', partitions: [] });
      expect((await bare.inject({ url: '/api/errors' })).json()).toMatchObject({
        failedBatches: [],
        workerRestarts: 0,
      });
    } finally {
      await bare.close();
    }
  });

  test('HEAD works and unknown paths are 404', async () => {
    const head = await app.inject({ method: 'HEAD', url: '/' });
    expect(head.statusCode).toBe(200);
    expect(head.headers['content-type']).toBe('text/html; charset=utf-8');
    expect((await app.inject({ url: '/assets/nope.js' })).statusCode).toBe(404);
    expect((await app.inject({ url: '/api/nope' })).statusCode).toBe(404);
  });
});
