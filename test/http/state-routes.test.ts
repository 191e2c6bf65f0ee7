/**
 * `/api/state/:key` (`state-routes.ts`) across three replicas, each a Fastify instance with a fake
 * backend; proxied requests go from one to another through `inject()`. Covers: a local key, a key
 * another replica owns (proxied with the bearer token, `sluice-served-by` naming the owner), the
 * 307 redirect, an owner that moved (503 `not-owner` there, never proxied again; the asking replica
 * reads the group again and asks the new owner), partitions restoring or without an owner (503 and
 * Retry-After), a key split over two replicas (windows merged, tagged by topic), an unreachable owner,
 * an owner with another token, a job without windows and a bad range.
 */
import { afterAll, beforeEach, describe, expect, jest, test } from '@jest/globals';
import * as cookie from 'cookie';
import Fastify, { type FastifyInstance } from 'fastify';
import { registerStateRoutes, PROXIED_BY, PARTITIONS, SERVED_BY } from '../../src/http/state-routes.ts';
import { partitionId } from '../../src/pool/protocol.ts';
import { type TopicPartition } from '../../src/query/key-partitions.ts';
import { type ReplicaWindow } from '../../src/query/local-state.ts';
import { type StateBackend, type StateQueryOutcome } from '../../src/query/state-backend.ts';

jest.mock('cookie', () => cookie);

interface Replica {
  url: string;
  app: FastifyInstance;
  owned: Set<string>;
  restoring: Set<string>;
  rebalancing: boolean;
  /** Requests this replica received, with their headers. */
  received: Array<{ url: string; headers: Record<string, unknown> }>;
  outcomes: StateQueryOutcome[];
}

/** Which replica owns what, as the group says; `seen` is each replica's possibly stale copy of it. */
const group = { truth: new Map<string, string>(), seen: new Map<string, Map<string, string>>() };
let topics = ['in'];
const replicas = new Map<string, Replica>();

/** A key's partitions: `k<n>` is in partition n of every input topic. */
const partitionsOf = (key: string): TopicPartition[] =>
  topics.map((topic) => ({ topic, partition: Number(/\d+/.exec(key)?.[0] ?? 0) }));

/** What each partition holds for a key: one window per partition, valued by where it lives. */
const windowOf = (key: string, tp: TopicPartition): ReplicaWindow => ({
  ...(topics.length > 1 ? { topic: tp.topic } : {}),
  windowStart: 1_000 * (tp.partition + 1) + (tp.topic === 'in' ? 0 : 500),
  windowEnd: 1_000 * (tp.partition + 2),
  value: `${key}@${partitionId(tp.topic, tp.partition)}`,
});

async function viaInject(input: string | URL | Request, init?: RequestInit): Promise<Response> {
  const url = new URL(String(input));
  const target = replicas.get(url.origin);
  if (!target) throw new TypeError(`fetch failed: connect ECONNREFUSED ${url.host}`);
  const res = await target.app.inject({
    method: 'GET',
    url: `${url.pathname}${url.search}`,
    headers: init?.headers as Record<string, string>,
  });
  return new Response(res.body, { status: res.statusCode, headers: res.headers as Record<string, string> });
}

function backendOf(r: Replica): StateBackend {
  return {
    selfUrl: r.url,
    partitionsOf,
    local: {
      ownership: (tp) =>
        r.rebalancing ? 'rebalancing' : r.owned.has(partitionId(tp.topic, tp.partition)) ? 'owned' : 'not-assigned',
      async answer(key, tps) {
        for (const tp of tps) {
          const id = partitionId(tp.topic, tp.partition);
          if (!r.owned.has(id)) return { ok: false, error: 'not-owner', reason: `${id} is not assigned here` };
          if (r.restoring.has(id)) return { ok: false, error: 'restoring', reason: `${id} is restoring its state` };
        }
        return { ok: true, windows: tps.map((tp) => windowOf(key, tp)) };
      },
    },
    owners: {
      async ownerOf(topic, partition, options) {
        const id = partitionId(topic, partition);
        if (options?.stale || !group.seen.get(r.url)!.has(id)) group.seen.set(r.url, new Map(group.truth));
        const url = group.seen.get(r.url)!.get(id);
        return url ? { kind: 'owner', url } : { kind: 'unknown', reason: `no replica is assigned ${id} yet` };
      },
    },
    counted: (outcome) => r.outcomes.push(outcome),
  };
}

function replica(url: string, windowed = true): Replica {
  const r: Replica = {
    url,
    app: Fastify(),
    owned: new Set(),
    restoring: new Set(),
    rebalancing: false,
    received: [],
    outcomes: [],
  };
  r.app.addHook('onRequest', async (req) => void r.received.push({ url: req.url, headers: req.headers }));
  registerStateRoutes(r.app, { job: 'job', windowed, backend: () => backendOf(r), fetch: viaInject });
  replicas.set(url, r);
  group.seen.set(url, new Map());
  return r;
}

/** Assigns `id` to `owner`, in the group and on the replicas (not in their cached views). */
function assign(id: string, owner: Replica): void {
  for (const r of replicas.values()) r.owned.delete(id);
  owner.owned.add(id);
  group.truth.set(id, owner.url);
}

let a: Replica;
let b: Replica;
let c: Replica;
beforeEach(() => {
  for (const r of replicas.values()) void r.app.close();
  replicas.clear();
  group.truth.clear();
  group.seen.clear();
  topics = ['in'];
  a = replica('http://a:8080');
  b = replica('http://b:8080');
  c = replica('http://c:8080');
  assign('in:0', a);
  assign('in:1', b);
  assign('in:2', c);
});
afterAll(async () => {
  for (const r of replicas.values()) await r.app.close();
});

describe('/api/state/:key', () => {
  test('a key this replica owns is answered here', async () => {
    const res = await a.app.inject({ url: '/api/state/k0' });
    expect(res.statusCode).toBe(200);
    expect(res.headers[SERVED_BY]).toBe('http://a:8080');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.json()).toEqual({ key: 'k0', partition: 0, windows: [windowOf('k0', { topic: 'in', partition: 0 })] });
    expect(b.received).toEqual([]);
    expect(a.outcomes).toEqual(['local']);
  });

  test('a key another replica owns is proxied to it, with the token and the range; its answer names it', async () => {
    const res = await a.app.inject({
      url: '/api/state/k1?from=5&to=99',
      headers: { authorization: 'Bearer the-token-of-the-api' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers[SERVED_BY]).toBe('http://b:8080');
    expect(res.json()).toEqual({ key: 'k1', partition: 1, windows: [windowOf('k1', { topic: 'in', partition: 1 })] });
    expect(b.received).toHaveLength(1);
    expect(b.received[0]!.url).toBe('/api/state/k1?from=5&to=99');
    expect(b.received[0]!.headers).toMatchObject({
      authorization: 'Bearer the-token-of-the-api',
      [PROXIED_BY]: 'http://a:8080',
      [PARTITIONS]: 'in:1',
    });
    expect([a.outcomes, b.outcomes]).toEqual([['proxied'], ['local']]);
    // Keys with reserved characters reach the owner intact.
    const odd = await a.app.inject({ url: `/api/state/${encodeURIComponent('k1/é?#&')}` });
    expect(odd.json().key).toBe('k1/é?#&');
  });

  test('?redirect=1 answers 307 to the owner instead', async () => {
    const res = await a.app.inject({ url: '/api/state/k2?redirect=1&from=10' });
    expect(res.statusCode).toBe(307);
    expect(res.headers['location']).toBe('http://c:8080/api/state/k2?from=10');
    expect(c.received).toEqual([]);
    expect(a.outcomes).toEqual(['redirected']);
    // A key of its own is answered, redirect or not.
    expect((await a.app.inject({ url: '/api/state/k0?redirect=1' })).statusCode).toBe(200);
  });

  test('an owner that moved: 503 not-owner there (never proxied again), then the new owner answers', async () => {
    await a.app.inject({ url: '/api/state/k1' }); // a's view: in:1 on b
    assign('in:1', c);
    const res = await a.app.inject({ url: '/api/state/k1' });
    expect(res.statusCode).toBe(200);
    expect(res.headers[SERVED_BY]).toBe('http://c:8080');
    expect(res.json().windows).toEqual([windowOf('k1', { topic: 'in', partition: 1 })]);
    // b was asked, refused, and asked nobody.
    expect(b.outcomes).toEqual(['local', 'unavailable']);
    expect(c.received.map((r) => r.headers[PROXIED_BY])).toEqual(['http://a:8080']);

    // Asked directly as a proxied request, a replica that does not own the key refuses; it never proxies.
    const refused = await b.app.inject({ url: '/api/state/k1', headers: { [PROXIED_BY]: 'http://a:8080' } });
    expect(refused.statusCode).toBe(503);
    expect(refused.json()).toEqual({ error: 'not-owner', reason: 'in:1 is not assigned here' });
    expect(refused.headers['retry-after']).toBe('1');
    expect(c.received).toHaveLength(1);
    // Partitions listed that are not the key's are refused.
    const wrong = await c.app.inject({
      url: '/api/state/k1',
      headers: { [PROXIED_BY]: 'http://a:8080', [PARTITIONS]: 'in:2' },
    });
    expect(wrong.statusCode).toBe(400);
  });

  test('restoring, rebalancing or without an owner: 503 restoring with Retry-After', async () => {
    a.restoring.add('in:0');
    const restoring = await a.app.inject({ url: '/api/state/k0' });
    expect([restoring.statusCode, restoring.headers['retry-after']]).toEqual([503, '1']);
    expect(restoring.json()).toEqual({ error: 'restoring', reason: 'in:0 is restoring its state' });
    // The same, through the replica that proxies it.
    const proxied = await b.app.inject({ url: '/api/state/k0' });
    expect([proxied.statusCode, proxied.headers[SERVED_BY], proxied.json().error]).toEqual([
      503,
      'http://a:8080',
      'restoring',
    ]);

    group.truth.delete('in:7');
    const nobody = await a.app.inject({ url: '/api/state/k7' });
    expect([nobody.statusCode, nobody.headers['retry-after']]).toEqual([503, '1']);
    expect(nobody.json()).toEqual({ error: 'restoring', reason: 'no replica is assigned in:7 yet' });

    b.rebalancing = true;
    const rebalancing = await b.app.inject({ url: '/api/state/k1' });
    expect(rebalancing.statusCode).toBe(503);
    expect(rebalancing.json().reason).toBe('the consumer group is rebalancing: partitions are being reassigned');
  });

  test('a key whose partitions two replicas own (several input topics): windows merged by start, tagged by topic', async () => {
    topics = ['in', 'other'];
    assign('other:1', c);
    const res = await a.app.inject({ url: '/api/state/k1' });
    expect(res.statusCode).toBe(200);
    expect(res.headers[SERVED_BY]).toBe('http://b:8080, http://c:8080');
    expect(res.json()).toEqual({
      key: 'k1',
      partition: 1,
      partitions: [
        { topic: 'in', partition: 1 },
        { topic: 'other', partition: 1 },
      ],
      windows: [windowOf('k1', { topic: 'in', partition: 1 }), windowOf('k1', { topic: 'other', partition: 1 })],
    });
    expect(b.received[0]!.headers[PARTITIONS]).toBe('in:1');
    expect(c.received[0]!.headers[PARTITIONS]).toBe('other:1');
  });

  test('an owner that does not answer: 502', async () => {
    replicas.delete('http://b:8080');
    const res = await a.app.inject({ url: '/api/state/k1' });
    expect(res.statusCode).toBe(502);
    expect(res.json()).toEqual({
      error: 'owner-unreachable',
      reason:
        'the replica that owns the key (http://b:8080) did not answer: TypeError: fetch failed: connect ECONNREFUSED b:8080',
    });
  });

  test('an owner with another token: 502 saying so', async () => {
    b.app.addHook('onRequest', async (_req, reply) => reply.code(401).send({ error: 'unauthorized' }));
    const res = await a.app.inject({ url: '/api/state/k1', headers: { authorization: 'Bearer mine' } });
    expect(res.statusCode).toBe(502);
    expect(res.json()).toEqual({
      error: 'owner-refused',
      reason:
        'the replica that owns the key (http://b:8080) refused the bearer token: every replica needs the same SLUICE_HTTP_TOKEN',
    });
  });

  test('a job without windows: 404; a bad range: 400', async () => {
    const stateless = replica('http://s:8080', false);
    const none = await stateless.app.inject({ url: '/api/state/k0' });
    expect([none.statusCode, none.json()]).toEqual([
      404,
      { error: 'no-windows', reason: 'job job has no window: it keeps no state to query' },
    ]);
    const bad = await a.app.inject({ url: '/api/state/k0?from=yesterday' });
    expect([bad.statusCode, bad.json()]).toEqual([
      400,
      { error: 'bad-request', reason: 'from must be a time in epoch milliseconds (got "yesterday")' },
    ]);
  });
});
