/**
 * Queryable state end to end, on the real broker: two replicas of a windowed job with hour-long
 * windows that stay open share its partitions; once both are ready and have processed every input
 * record, every key is asked of BOTH replicas and each answer is compared with a recomputation of the
 * input (count per key and window) — a key the asked replica owns is answered there, any other is
 * proxied to its owner, which `sluice-served-by` must name (the owner as the replicas' /api/status
 * shows it). Also: a window range, `?redirect=1`, and, with SLUICE_HTTP_TOKEN set, requests without
 * the token (or with a wrong one) get 401 and no state. Once with `keyBy(page)` (state in the
 * repartition topic's tasks), once per Kafka key (state in the input partitions).
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, test } from '@jest/globals';
import { Partitioners } from 'kafkajs';
import { mulberry32 } from '../../examples/generator/clickstream.ts';
import { freePort } from '../../scripts/kafka/local-broker.ts';
import { admin, onCleanup, uniqueName, waitFor } from '../helpers.ts';
import { metricValue, startService, type RunningService } from '../support/service.ts';
import { newTopic, testProducer } from '../support/topics.ts';

const PARTITIONS = 6;
const EVENTS = 6_000;
const HOUR = 3_600_000;
/** Event times over three and a bit hours from here: every key has several windows, all open. */
const BASE = Date.UTC(2024, 0, 1, 6);
const TOKEN = randomBytes(24).toString('hex');
const AUTH = { authorization: `Bearer ${TOKEN}` };

interface Replica {
  service: RunningService;
  url: string;
}

interface View {
  page?: string;
  user: string;
  ts: number;
}

interface StateAnswer {
  key: string;
  partition: number;
  windows: Array<{ windowStart: number; windowEnd: number; value: unknown }>;
}

/** A replica listening on a port chosen here, advertising it: the replicas reach each other there. */
async function startReplica(env: Record<string, string>): Promise<Replica> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const service = await startService({
    job: 'test/fixtures/jobs/queryable-counts.ts',
    env: { ...env, SLUICE_HTTP_PORT: String(port), SLUICE_HTTP_ADVERTISED_URL: url, SLUICE_HTTP_TOKEN: TOKEN },
  });
  onCleanup(() => service.stop('SIGKILL'));
  return { service, url };
}

const get = (r: Replica, path: string, headers: Record<string, string> = AUTH): Promise<Response> =>
  fetch(`${r.url}${path}`, { headers, redirect: 'manual' });

async function assignedOf(r: Replica): Promise<Array<{ topic: string; partition: number }> | undefined> {
  const ready = await fetch(`${r.url}/readyz`).catch(() => undefined);
  if (!ready?.ok) return undefined;
  const status = (await (await get(r, '/api/status')).json()) as {
    partitions: Array<{ topic: string; partition: number }>;
  };
  return status.partitions;
}

/** Page views over many pages and users; one in fifty has no page (filtered out, counted nowhere). */
function generate(): View[] {
  const random = mulberry32(20240101);
  const pages = [...Array.from({ length: 45 }, (_, i) => `/p/${i}`), '/café', '/a b', '/x?y=1&z=#', '日本'];
  return Array.from({ length: EVENTS }, () => {
    const user = `user-${Math.floor(random() * 90)}`;
    const ts = BASE + Math.floor(random() * 3.3 * HOUR);
    const page = pages[Math.floor(random() * pages.length)]!;
    return random() < 0.02 ? { user, ts } : { page, user, ts };
  });
}

/** Count per group key and window, recomputed from the input. */
function recompute(views: readonly View[], keyOf: (v: View) => string): Map<string, StateAnswer['windows']> {
  const counts = new Map<string, Map<number, number>>();
  for (const v of views) {
    if (typeof v.page !== 'string') continue;
    const key = keyOf(v);
    const start = Math.floor(v.ts / HOUR) * HOUR;
    const perKey = counts.get(key) ?? new Map<number, number>();
    perKey.set(start, (perKey.get(start) ?? 0) + 1);
    counts.set(key, perKey);
  }
  return new Map(
    [...counts].map(([key, perKey]) => [
      key,
      [...perKey]
        .sort(([a], [b]) => a - b)
        .map(([windowStart, value]) => ({ windowStart, windowEnd: windowStart + HOUR, value })),
    ]),
  );
}

/** Every partition of `topics` committed by the group up to its end (input first, then what it fed). */
async function caughtUp(groupId: string, topics: string[]): Promise<true | undefined> {
  const a = await admin();
  for (const topic of topics) {
    const ends = await a.fetchTopicOffsets(topic);
    const [committed] = await a.fetchOffsets({ groupId, topics: [topic] });
    for (const end of ends) {
      const at = Number(committed?.partitions.find((p) => p.partition === end.partition)?.offset ?? -1);
      if (Number(end.high) > 0 && at < Number(end.high)) return undefined;
    }
  }
  return true;
}

async function run(variant: 'keyBy' | 'kafka-key'): Promise<void> {
  const started = Date.now();
  const input = await newTopic('qs-in', PARTITIONS);
  const name = uniqueName('qs-job');
  const keyBy = variant === 'keyBy';
  const env = {
    TEST_JOB_NAME: name,
    TEST_INPUT: input,
    TEST_OUTPUT: uniqueName('qs-out'),
    ...(keyBy ? { TEST_KEY_BY: 'page' } : {}),
  };
  const replicas = await Promise.all([startReplica(env), startReplica(env)]);
  try {
    const stateTopic = keyBy ? `${name}-repartition` : input;
    const topics = keyBy ? [input, stateTopic] : [input];
    const shares = await waitFor(
      'both replicas ready, sharing the partitions',
      async () => {
        const [a, b] = await Promise.all(replicas.map(assignedOf));
        return a && b && a.length > 0 && b.length > 0 && a.length + b.length === topics.length * PARTITIONS
          ? [a, b]
          : undefined;
      },
      90_000,
    ).catch((error: unknown) => {
      for (const r of replicas) console.log(r.service.output().slice(-3000));
      throw error;
    });

    const views = generate();
    const producer = await testProducer();
    for (let i = 0; i < views.length; i += 1_000) {
      await producer.send({
        topic: input,
        messages: views
          .slice(i, i + 1_000)
          .map((v) => ({ key: v.user, value: JSON.stringify(v), timestamp: String(v.ts) })),
      });
    }
    await waitFor('every record processed and committed', () => caughtUp(name, topics), 60_000);

    const keyOf = keyBy ? (v: View) => v.page! : (v: View) => v.user;
    const expected = recompute(views, keyOf);
    expect(expected.size).toBe(keyBy ? 49 : 90);
    // The owner of each key: the replica whose status lists the key's partition (Kafka's default
    // partitioner over the key's bytes, as a producer — and the shuffle writer — place it).
    const partitioner = Partitioners.DefaultPartitioner();
    const partitionOf = (key: string): number =>
      partitioner({
        topic: stateTopic,
        partitionMetadata: Array.from({ length: PARTITIONS }, (_, p) => ({
          partitionId: p,
          leader: 0,
          partitionErrorCode: 0,
          replicas: [0],
          isr: [0],
        })),
        message: { key: Buffer.from(key), value: null },
      });
    const ownerOf = (partition: number): Replica =>
      replicas[shares.findIndex((share) => share.some((p) => p.topic === stateTopic && p.partition === partition))]!;

    let remote = 0;
    for (const [key, windows] of expected) {
      const partition = partitionOf(key);
      const owner = ownerOf(partition);
      expect(owner).toBeDefined();
      for (const asked of replicas) {
        const res = await get(asked, `/api/state/${encodeURIComponent(key)}`);
        const body = (await res.json()) as StateAnswer;
        expect({
          key,
          asked: asked.url,
          status: res.status,
          servedBy: res.headers.get('sluice-served-by'),
          body,
        }).toEqual({
          key,
          asked: asked.url,
          status: 200,
          servedBy: owner.url,
          body: { key, partition, windows },
        });
        if (asked !== owner) remote++;
      }
      // One window by its range, from either replica: [start, start + 1) intersects only that window.
      const middle = windows[Math.floor(windows.length / 2)]!;
      const ranged = await get(
        replicas[0]!,
        `/api/state/${encodeURIComponent(key)}?from=${middle.windowStart}&to=${middle.windowStart + 1}`,
      );
      expect(((await ranged.json()) as StateAnswer).windows).toEqual([middle]);
    }
    expect(remote).toBe(expected.size);
    // A key nobody sent has no window, wherever it is asked.
    for (const asked of replicas) {
      expect(((await (await get(asked, '/api/state/never-seen')).json()) as StateAnswer).windows).toEqual([]);
    }

    // ?redirect=1: a key the asked replica does not own answers 307 to its owner.
    const [remoteKey] = [...expected.keys()].filter((k) => ownerOf(partitionOf(k)) !== replicas[0]);
    const redirected = await get(replicas[0]!, `/api/state/${encodeURIComponent(remoteKey!)}?redirect=1`);
    expect(redirected.status).toBe(307);
    const location = redirected.headers.get('location')!;
    expect(location).toBe(`${ownerOf(partitionOf(remoteKey!)).url}/api/state/${encodeURIComponent(remoteKey!)}`);
    const followed = await fetch(location, { headers: AUTH });
    expect([followed.status, followed.headers.get('sluice-served-by')]).toEqual([
      200,
      ownerOf(partitionOf(remoteKey!)).url,
    ]);
    expect(((await followed.json()) as StateAnswer).windows).toEqual(expected.get(remoteKey!));

    // Without the token, or with a wrong one: 401 and no state, for local and remote keys alike.
    for (const asked of replicas) {
      for (const headers of [{}, { authorization: `Bearer ${TOKEN.slice(1)}x` }]) {
        for (const key of [...expected.keys()].slice(0, 6)) {
          const res = await get(asked, `/api/state/${encodeURIComponent(key)}`, headers);
          const text = await res.text();
          expect({
            key,
            status: res.status,
            challenge: res.headers.get('www-authenticate')?.startsWith('Bearer'),
          }).toEqual({
            key,
            status: 401,
            challenge: true,
          });
          expect(text).not.toContain('windows');
          expect(text).not.toContain(JSON.stringify(key));
        }
      }
      expect((await fetch(`${asked.url}/readyz`)).status).toBe(200);
    }
    for (const r of replicas) {
      const metrics = await (await fetch(`${r.url}/metrics`)).text();
      expect(metricValue(metrics, 'sluice_state_queries_total', { outcome: 'proxied' })).toBeGreaterThan(0);
      expect(metricValue(metrics, 'sluice_state_queries_total', { outcome: 'local' })).toBeGreaterThan(0);
    }
    console.log(
      `queryable state (${variant}): ${expected.size} keys asked of 2 replicas (${remote} proxied), ` +
        `shares ${shares.map((s) => s.length).join('/')}, ${Date.now() - started} ms`,
    );
  } catch (error) {
    for (const r of replicas) console.log(`${r.url}:\n${r.service.output().slice(-5000)}`);
    throw error;
  }
  for (const r of replicas) expect((await r.service.stop('SIGTERM')).code).toBe(0);
}

describe('queryable state', () => {
  test('re-keyed (keyBy page): every key answered exactly by either replica, proxied to its owner', () => run('keyBy'));
  test('per Kafka key: every key answered exactly by either replica, proxied to its owner', () => run('kafka-key'));
});
