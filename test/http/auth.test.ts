/**
 * The bearer token of the JSON API (`auth.ts`), through `buildHttpServer` and `inject()`: with
 * SLUICE_HTTP_TOKEN set, every `/api/*` route — and an unknown one under `/api/` — answers 401 with
 * `WWW-Authenticate: Bearer` and no data without the token or with a wrong one, and its data with the
 * token; `/healthz`, `/readyz`, `/metrics` and the status page stay open, `/metrics` closes when
 * SLUICE_METRICS_REQUIRE_TOKEN is set; without a token everything is open.
 */
import { afterAll, describe, expect, jest, test } from '@jest/globals';
// fastify.inject() loads light-my-request, which `require()`s the ESM-only cookie@2 (see server.test.ts).
import * as cookie from 'cookie';
import { type FastifyInstance } from 'fastify';
import pino from 'pino';
import { Counter, Registry } from 'prom-client';
import { bearerOf, needsToken } from '../../src/http/auth.ts';
import { buildHttpServer, type HttpDeps } from '../../src/http/server.ts';
import { BatchHistory } from '../../src/scheduler/batch-history.ts';

jest.mock('cookie', () => cookie);

const TOKEN = 'b3JhbmdlLXNxdWlkLWNhcnJvdA-_~+/=';

function server(auth: HttpDeps['auth']): FastifyInstance {
  const registry = new Registry();
  new Counter({ name: 'sluice_records_in_total', help: 'Records read.', registers: [registry] }).inc(3);
  const history = new BatchHistory(10);
  history.add({
    id: 1,
    scheduledAt: 1_700_000_000_000,
    startedAt: 1_700_000_000_005,
    records: 42,
    inputRecords: 42,
    outputs: 1,
    late: 0,
    deadLettered: 0,
    processingMs: 9,
    schedulingDelayMs: 5,
    totalDelayMs: 14,
    outcome: 'ok',
  });
  return buildHttpServer({
    logger: pino({ level: 'silent' }),
    registry,
    history,
    liveness: () => ({ ok: true }),
    readiness: () => ({ ok: true }),
    status: () => ({ job: 'secret-job', groupId: 'g', batchIntervalMs: 200, partitions: [] }),
    ...(auth ? { auth } : {}),
    state: { job: 'secret-job', windowed: true, backend: () => undefined },
  });
}

const apps: FastifyInstance[] = [];
afterAll(async () => {
  for (const app of apps) await app.close();
});
function make(auth: HttpDeps['auth']): FastifyInstance {
  const app = server(auth);
  apps.push(app);
  return app;
}

const API = [
  '/api/batches',
  '/api/status',
  '/api/errors',
  '/api/state/some-key',
  '/api/state/a%2Fb?from=0&to=5',
  '/api/nothing-here',
];
const OPEN = ['/healthz', '/readyz', '/', '/assets/favicon.svg'];

describe('bearer token', () => {
  test('without the token, or with a wrong one: 401, a Bearer challenge, and no data', async () => {
    const app = make({ token: TOKEN, metricsRequireToken: false });
    const attempts: Array<Record<string, string>> = [
      {},
      { authorization: `Bearer ${TOKEN}x` },
      { authorization: `Bearer ${TOKEN.slice(0, -1)}` },
      { authorization: `Basic ${Buffer.from(`user:${TOKEN}`).toString('base64')}` },
      { authorization: TOKEN },
      { authorization: `Bearer` },
      { 'x-token': TOKEN },
    ];
    for (const url of API) {
      for (const method of ['GET', 'HEAD'] as const) {
        for (const headers of attempts) {
          const res = await app.inject({ method, url, headers });
          expect({ url, method, headers, status: res.statusCode }).toEqual({ url, method, headers, status: 401 });
          const wrong = headers['authorization']?.startsWith('Bearer ') === true;
          expect(res.headers['www-authenticate']).toBe(
            wrong ? 'Bearer realm="sluice", error="invalid_token"' : 'Bearer realm="sluice"',
          );
          if (method === 'GET') {
            expect(res.json()).toEqual({
              error: 'unauthorized',
              reason: wrong ? 'the bearer token is not valid' : 'a bearer token is required',
            });
            expect(res.body).not.toContain('secret-job');
          }
        }
      }
    }
  });

  test('with the token: the data', async () => {
    const app = make({ token: TOKEN, metricsRequireToken: false });
    for (const scheme of ['Bearer', 'bearer']) {
      const headers = { authorization: `${scheme} ${TOKEN}` };
      const batches = await app.inject({ url: '/api/batches', headers });
      expect(batches.statusCode).toBe(200);
      expect(batches.json().batches.map((b: { records: number }) => b.records)).toEqual([42]);
      const status = await app.inject({ url: '/api/status', headers });
      expect([status.statusCode, status.json().job]).toEqual([200, 'secret-job']);
      expect((await app.inject({ url: '/api/errors', headers })).statusCode).toBe(200);
      // Past the token, the state route itself answers (the service is still starting here).
      const state = await app.inject({ url: '/api/state/k', headers });
      expect([state.statusCode, state.json().error]).toEqual([503, 'restoring']);
      expect((await app.inject({ url: '/api/nothing-here', headers })).statusCode).toBe(404);
    }
  });

  test('/healthz, /readyz, /metrics and the status page stay open; /metrics closes when asked', async () => {
    const open = make({ token: TOKEN, metricsRequireToken: false });
    for (const url of [...OPEN, '/metrics'])
      expect({ url, status: (await open.inject({ url })).statusCode }).toEqual({ url, status: 200 });
    expect((await open.inject({ url: '/metrics' })).body).toContain('sluice_records_in_total 3');

    const closed = make({ token: TOKEN, metricsRequireToken: true });
    for (const url of OPEN)
      expect({ url, status: (await closed.inject({ url })).statusCode }).toEqual({ url, status: 200 });
    const refused = await closed.inject({ url: '/metrics' });
    expect([refused.statusCode, refused.headers['www-authenticate']]).toEqual([401, 'Bearer realm="sluice"']);
    expect(refused.body).not.toContain('sluice_records_in_total');
    const scraped = await closed.inject({ url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(scraped.statusCode).toBe(200);
    expect(scraped.body).toContain('sluice_records_in_total 3');
  });

  test('without a token configured, everything is open', async () => {
    for (const auth of [undefined, { token: undefined, metricsRequireToken: false }]) {
      const app = make(auth);
      for (const url of ['/api/batches', '/api/status', '/api/errors', '/metrics', ...OPEN]) {
        expect({ url, status: (await app.inject({ url })).statusCode }).toEqual({ url, status: 200 });
      }
    }
  });

  test('needsToken and bearerOf', () => {
    expect(['/api', '/api/', '/api/state/x'].map((p) => needsToken(p, false))).toEqual([true, true, true]);
    expect(['/apiary', '/metrics', '/healthz', '/'].map((p) => needsToken(p, false))).toEqual([
      false,
      false,
      false,
      false,
    ]);
    expect(needsToken('/metrics', true)).toBe(true);
    expect(bearerOf({ headers: { authorization: 'Bearer abc' } })).toBe('abc');
    expect(bearerOf({ headers: { authorization: 'Bearer  abc  ' } })).toBe('abc');
    expect(bearerOf({ headers: { authorization: 'Bearer a b' } })).toBeUndefined();
    expect(bearerOf({ headers: {} })).toBeUndefined();
  });
});
