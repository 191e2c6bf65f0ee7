/**
 * The HTTP surface: `buildHttpServer(deps)` builds a Fastify instance (no `listen()` inside, so tests
 * use `inject()`):
 *
 * - `/healthz` liveness, `/readyz` readiness: 200, or 503 with the reason;
 * - `/metrics`: Prometheus text 0.0.4, or OpenMetrics when asked for (`metrics-format.ts`);
 * - `/api/batches?limit=&after=`: recent batches, oldest first;
 * - `/api/status`: the job, its topics, workers, buffer and partitions, plus uptime and health;
 * - `/api/errors`: failed batches, dead letters by error code and the restart/rebalance counters;
 * - `/api/state/:key`: queryable state, the key's open windows (`state-routes.ts`);
 * - `/` and `/assets/…`: the status page (`status-page.ts`).
 *
 * With a token configured, `/api/*` (and `/metrics` when asked) need it (`auth.ts`).
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type pino from 'pino';
import { type Registry } from 'prom-client';
import { type BatchHistory, type BatchInfo } from '../scheduler/batch-history.ts';
import { type PartitionStatus } from '../scheduler/scheduler.ts';
import { type AuthOptions, registerBearerAuth } from './auth.ts';
import { renderMetrics } from './metrics-format.ts';
import { registerStateRoutes, type StateRoutesOptions } from './state-routes.ts';
import { loadStatusPageAssets, registerStatusPage } from './status-page.ts';

export interface Check {
  ok: boolean;
  reason?: string;
}

export interface HttpDeps {
  logger: pino.Logger;
  registry: Registry;
  history: BatchHistory;
  liveness: () => Check;
  readiness: () => Promise<Check> | Check;
  status: () => { job: string; groupId: string; batchIntervalMs: number; partitions: PartitionStatus[] } & Record<
    string,
    unknown
  >;
  /** When the service started (epoch ms), for the uptime; defaults to the process start. */
  startedAt?: number;
  /** Where the status page's files are; `assets/` next to this module by default. */
  assetsDir?: string;
  /** The bearer token of the API; open without one. */
  auth?: AuthOptions;
  /** Queryable state (`/api/state/:key`); without it the route is not there. */
  state?: StateRoutesOptions;
}

/** What `/api/errors` answers. */
export interface ErrorsResponse {
  /** Failed batches still in the history, newest first. */
  failedBatches: Array<
    Pick<BatchInfo, 'id' | 'scheduledAt' | 'startedAt' | 'records' | 'processingMs'> & { error: string }
  >;
  /** Batches in the history, and how many of them failed. */
  batches: { total: number; failed: number };
  /** Records sent to the dead-letter topic since start, by error code, largest first. */
  deadLetters: { total: number; byCode: Array<{ code: string; count: number }> };
  /** Since start. */
  workerRestarts: number;
  rebalances: number;
  partitionResets: number;
}

const DEFAULT_BATCH_LIMIT = 200;
const MAX_BATCH_LIMIT = 10_000;
const MAX_FAILED_BATCHES = 50;

/** Values of one metric by label set; empty when the registry does not have it. */
async function metricValues(registry: Registry, name: string): Promise<Array<{ value: number; labels: object }>> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return [];
  const data = await metric.get();
  return data.values.map((v) => ({ value: v.value, labels: v.labels }));
}

async function metricSum(registry: Registry, name: string): Promise<number> {
  return (await metricValues(registry, name)).reduce((sum, v) => sum + v.value, 0);
}

const noStore = { 'cache-control': 'no-store' };

export function buildHttpServer(deps: HttpDeps): FastifyInstance {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    return503OnClosing: true,
    // Group keys are path parameters (`/api/state/:key`): allow long ones.
    routerOptions: { maxParamLength: 2048 },
  });
  if (deps.auth) registerBearerAuth(app, deps.auth);
  const startedAt = deps.startedAt ?? Math.round(Date.now() - process.uptime() * 1000);

  app.get('/healthz', async (_req, reply) => {
    const check = deps.liveness();
    return reply
      .code(check.ok ? 200 : 503)
      .headers(noStore)
      .send(check.ok ? { status: 'ok' } : { status: 'failing', reason: check.reason });
  });

  app.get('/readyz', async (_req, reply) => {
    const check = await deps.readiness();
    return reply
      .code(check.ok ? 200 : 503)
      .headers(noStore)
      .send(check.ok ? { status: 'ready' } : { status: 'not ready', reason: check.reason });
  });

  app.get('/metrics', async (req, reply) => {
    const { contentType, body } = await renderMetrics(deps.registry, req.headers.accept);
    return reply.type(contentType).headers(noStore).header('vary', 'Accept').send(body);
  });

  // `after`: only batches with a larger id (the status page polls incrementally). An `after` beyond
  // the newest batch means the service restarted and ids began again: the recent batches are returned.
  app.get<{ Querystring: { limit?: string; after?: string } }>('/api/batches', async (req, reply) => {
    const limit = Math.max(
      1,
      Math.min(MAX_BATCH_LIMIT, Number(req.query.limit ?? DEFAULT_BATCH_LIMIT) || DEFAULT_BATCH_LIMIT),
    );
    const after = req.query.after === undefined ? NaN : Number(req.query.after);
    const lastId = deps.history.last?.id ?? -Infinity;
    let batches = deps.history.recent(limit);
    if (Number.isFinite(after) && after <= lastId) batches = batches.filter((b) => b.id > after);
    void reply.headers(noStore);
    return { batches };
  });

  app.get('/api/status', async (_req, reply) => {
    const [live, ready] = [deps.liveness(), await deps.readiness()];
    const now = Date.now();
    void reply.headers(noStore);
    return { ...deps.status(), startedAt, uptimeMs: Math.max(0, now - startedAt), now, health: { live, ready } };
  });

  app.get('/api/errors', async (_req, reply): Promise<ErrorsResponse> => {
    const batches = deps.history.recent();
    const failed = batches.filter((b) => b.outcome === 'failed');
    const byCode = new Map<string, number>();
    for (const { value, labels } of await metricValues(deps.registry, 'sluice_records_dead_lettered_total')) {
      const code = String((labels as { code?: unknown }).code ?? 'unknown');
      byCode.set(code, (byCode.get(code) ?? 0) + value);
    }
    const codes = [...byCode].map(([code, count]) => ({ code, count })).sort((a, b) => b.count - a.count);
    void reply.headers(noStore);
    return {
      failedBatches: failed
        .slice(-MAX_FAILED_BATCHES)
        .reverse()
        .map((b) => ({
          id: b.id,
          scheduledAt: b.scheduledAt,
          startedAt: b.startedAt,
          records: b.records,
          processingMs: b.processingMs,
          error: b.error ?? 'unknown error',
        })),
      batches: { total: batches.length, failed: failed.length },
      deadLetters: { total: codes.reduce((sum, c) => sum + c.count, 0), byCode: codes },
      workerRestarts: await metricSum(deps.registry, 'sluice_worker_restarts_total'),
      rebalances: await metricSum(deps.registry, 'sluice_rebalances_total'),
      partitionResets: await metricSum(deps.registry, 'sluice_partition_resets_total'),
    };
  });

  if (deps.state) registerStateRoutes(app, deps.state);

  // The page is a convenience: without its files (a build that did not copy them) the service still
  // runs and every other route works; `/` says what is missing.
  try {
    registerStatusPage(app, loadStatusPageAssets(deps.assetsDir));
  } catch (error) {
    deps.logger.warn({ err: error }, 'status page unavailable: its assets could not be read');
    const reason = `status page unavailable: ${error instanceof Error ? error.message : String(error)}`;
    app.get('/', async (_req, reply) =>
      reply.code(503).type('text/plain; charset=utf-8').headers(noStore).send(reason),
    );
  }

  return app;
}
