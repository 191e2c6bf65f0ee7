/**
 * The HTTP surface: `buildHttpServer(deps)` builds a Fastify instance (no `listen()` inside, so tests
 * use `inject()`): liveness, readiness, Prometheus metrics, recent batches and partition status.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type pino from 'pino';
import { type Registry } from 'prom-client';
import { type BatchHistory } from '../scheduler/batch-history.ts';
import { type PartitionStatus } from '../scheduler/scheduler.ts';

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
}

export function buildHttpServer(deps: HttpDeps): FastifyInstance {
  const app = Fastify({ loggerInstance: deps.logger as FastifyBaseLogger, return503OnClosing: true });

  app.get('/healthz', async (_req, reply) => {
    const check = deps.liveness();
    return reply
      .code(check.ok ? 200 : 503)
      .send(check.ok ? { status: 'ok' } : { status: 'failing', reason: check.reason });
  });

  app.get('/readyz', async (_req, reply) => {
    const check = await deps.readiness();
    return reply
      .code(check.ok ? 200 : 503)
      .send(check.ok ? { status: 'ready' } : { status: 'not ready', reason: check.reason });
  });

  app.get('/metrics', async (req, reply) => {
    const accept = req.headers.accept ?? '';
    const openMetrics = accept.includes('application/openmetrics-text');
    const registry = deps.registry;
    if (openMetrics) registry.setContentType('application/openmetrics-text; version=1.0.0; charset=utf-8' as never);
    else registry.setContentType('text/plain; version=0.0.4; charset=utf-8' as never);
    const body = await registry.metrics();
    return reply.type(registry.contentType).send(body);
  });

  app.get<{ Querystring: { limit?: string } }>('/api/batches', async (req) => {
    const limit = Math.max(1, Math.min(10_000, Number(req.query.limit ?? 200) || 200));
    return { batches: deps.history.recent(limit) };
  });

  app.get('/api/status', async () => deps.status());

  return app;
}
