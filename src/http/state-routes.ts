/**
 * `GET /api/state/:key` — queryable state: the key's open windows (`{ key, partition, windows }`, each
 * window `{ windowStart, windowEnd, value }`), optionally those intersecting `[from, to)` (epoch ms).
 * Only open windows are held; closed ones were emitted and forgotten.
 *
 * Any replica answers for any key: the key's partitions (`key-partitions.ts`) this replica owns are
 * asked here (`local-state.ts`); the others are *proxied* to the replica the consumer group says owns
 * them (`partition-owners.ts`), which is named by `sluice-served-by`. `?redirect=1` answers 307 to
 * that replica instead. A proxied request carries `sluice-proxied-by` and the partitions it is for
 * (`sluice-partitions`), and is answered where it arrives or not at all (503 `not-owner` when the
 * partition moved): never proxied twice, so no loop. Partitions restoring, or without an owner
 * during a rebalance, answer 503 `restoring` with `Retry-After`.
 */
import { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { describeError } from '../errors.ts';
import { partitionId } from '../pool/protocol.ts';
import { type TopicPartition } from '../query/key-partitions.ts';
import { type ReplicaWindow } from '../query/local-state.ts';
import { type StateBackend, type StateQueryOutcome } from '../query/state-backend.ts';

export const SERVED_BY = 'sluice-served-by';
export const PROXIED_BY = 'sluice-proxied-by';
export const PARTITIONS = 'sluice-partitions';

export interface StateRoutesOptions {
  job: string;
  /** The job has a window (else there is no state: 404). */
  windowed: boolean;
  /** What the running service answers with; undefined while it starts. */
  backend: () => StateBackend | undefined;
  /** For tests. @defaultValue the global fetch */
  fetch?: typeof fetch;
  /** @defaultValue 15 000 */
  proxyTimeoutMs?: number;
}

/** One replica's part of an answer. */
interface Part {
  status: number;
  body: { error?: string; reason?: string; windows?: ReplicaWindow[] };
  servedBy: string | undefined;
  retryAfter?: string | undefined;
  remote: boolean;
}

type Range = { from: number; to: number };
const RETRY_AFTER_S = '1';
const noStore = { 'cache-control': 'no-store' };

function parseRange(query: Record<string, string | undefined>): Range | string {
  const bound = (name: 'from' | 'to', otherwise: number): number | string => {
    const text = query[name];
    if (text === undefined || text === '') return otherwise;
    const n = Number(text);
    return Number.isFinite(n) ? n : `${name} must be a time in epoch milliseconds (got "${text}")`;
  };
  const from = bound('from', -Infinity);
  const to = bound('to', Infinity);
  if (typeof from === 'string') return from;
  if (typeof to === 'string') return to;
  return { from, to };
}

function rangeQuery({ from, to }: Range): string {
  const params = new URLSearchParams();
  if (Number.isFinite(from)) params.set('from', String(from));
  if (Number.isFinite(to)) params.set('to', String(to));
  const text = params.toString();
  return text ? `?${text}` : '';
}

/** `topic:partition,…` as the proxying replica sent it; undefined when malformed. */
function parsePartitions(header: string): TopicPartition[] | undefined {
  const list = header.split(',').map((item) => {
    const cut = item.lastIndexOf(':');
    const partition = Number(item.slice(cut + 1));
    return cut > 0 && Number.isSafeInteger(partition) ? { topic: item.slice(0, cut).trim(), partition } : undefined;
  });
  return list.every((tp) => tp !== undefined) ? list : undefined;
}

function headerOf(req: FastifyRequest, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

const same = (a: TopicPartition, b: TopicPartition): boolean => a.topic === b.topic && a.partition === b.partition;

export function registerStateRoutes(app: FastifyInstance, options: StateRoutesOptions): void {
  const doFetch = options.fetch ?? fetch;
  const proxyTimeoutMs = options.proxyTimeoutMs ?? 15_000;
  const outcome = (o: StateQueryOutcome): void => options.backend()?.counted(o);

  const unavailable = (error: string, reason: string, servedBy?: string): Part => ({
    status: 503,
    body: { error, reason },
    servedBy,
    retryAfter: RETRY_AFTER_S,
    remote: false,
  });

  async function localPart(backend: StateBackend, key: string, tps: TopicPartition[], range: Range): Promise<Part> {
    const answer = await backend.local.answer(key, tps, range.from, range.to);
    if (answer.ok) return { status: 200, body: { windows: answer.windows }, servedBy: backend.selfUrl, remote: false };
    return unavailable(answer.error, answer.reason, backend.selfUrl);
  }

  /** Asks the owner for its partitions of the key; the bearer token goes along. */
  async function proxyPart(
    backend: StateBackend,
    owner: string,
    req: FastifyRequest,
    key: string,
    tps: TopicPartition[],
    range: Range,
  ): Promise<Part> {
    const headers: Record<string, string> = {
      accept: 'application/json',
      [PROXIED_BY]: backend.selfUrl,
      [PARTITIONS]: tps.map((tp) => partitionId(tp.topic, tp.partition)).join(','),
    };
    const authorization = headerOf(req, 'authorization');
    if (authorization !== undefined) headers['authorization'] = authorization;
    try {
      const response = await doFetch(`${owner}/api/state/${encodeURIComponent(key)}${rangeQuery(range)}`, {
        headers,
        redirect: 'manual',
        signal: AbortSignal.timeout(proxyTimeoutMs),
      });
      if (response.status === 401) {
        // This replica took the token: the owner has another one.
        const reason = `the replica that owns the key (${owner}) refused the bearer token: every replica needs the same SLUICE_HTTP_TOKEN`;
        return { status: 502, body: { error: 'owner-refused', reason }, servedBy: owner, remote: true };
      }
      const body = (await response.json()) as Part['body'];
      return {
        status: response.status,
        body,
        servedBy: response.headers.get(SERVED_BY) ?? owner,
        retryAfter: response.headers.get('retry-after') ?? undefined,
        remote: true,
      };
    } catch (error) {
      const reason = `the replica that owns the key (${owner}) did not answer: ${describeError(error)}`;
      return { status: 502, body: { error: 'owner-unreachable', reason }, servedBy: undefined, remote: true };
    }
  }

  /** Each of the key's partitions by the replica that owns it, or why one has no owner to ask. */
  async function locate(
    backend: StateBackend,
    tps: TopicPartition[],
    stale: boolean,
  ): Promise<Map<string, TopicPartition[]> | string> {
    const byOwner = new Map<string, TopicPartition[]>();
    for (const tp of tps) {
      const ownership = backend.local.ownership(tp);
      if (ownership === 'rebalancing') return 'the consumer group is rebalancing: partitions are being reassigned';
      let url = backend.selfUrl;
      if (ownership === 'not-assigned') {
        let owner = await backend.owners.ownerOf(tp.topic, tp.partition, { stale });
        // The group says this replica, the consumer does not (yet): read the group again once.
        if (owner.kind === 'owner' && owner.url === backend.selfUrl)
          owner = await backend.owners.ownerOf(tp.topic, tp.partition, { stale: true });
        if (owner.kind === 'unknown') return owner.reason;
        if (owner.url === backend.selfUrl) return `${partitionId(tp.topic, tp.partition)} is being assigned here`;
        url = owner.url;
      }
      byOwner.set(url, [...(byOwner.get(url) ?? []), tp]);
    }
    return byOwner;
  }

  function send(reply: FastifyReply, part: Part): FastifyReply {
    void reply.code(part.status).headers(noStore);
    if (part.servedBy) void reply.header(SERVED_BY, part.servedBy);
    if (part.retryAfter) void reply.header('retry-after', part.retryAfter);
    return reply.send(part.body);
  }

  app.get<{ Params: { key: string }; Querystring: Record<string, string | undefined> }>(
    '/api/state/:key',
    async (req, reply) => {
      if (!options.windowed) {
        outcome('failed');
        const reason = `job ${options.job} has no window: it keeps no state to query`;
        return reply.code(404).headers(noStore).send({ error: 'no-windows', reason });
      }
      const range = parseRange(req.query);
      if (typeof range === 'string') {
        outcome('failed');
        return reply.code(400).headers(noStore).send({ error: 'bad-request', reason: range });
      }
      const backend = options.backend();
      if (!backend) {
        outcome('unavailable');
        return send(reply, unavailable('restoring', 'the service is starting'));
      }
      const key = req.params.key;
      const partitions = backend.partitionsOf(key);
      const answer = (parts: Part[]): FastifyReply => {
        const failed = parts.find((p) => p.status !== 200);
        if (failed) {
          outcome(failed.status === 503 ? 'unavailable' : 'failed');
          return send(reply, failed);
        }
        outcome(parts.some((p) => p.remote) ? 'proxied' : 'local');
        const windows = parts
          .flatMap((p) => p.body.windows ?? [])
          .sort((a, b) => a.windowStart - b.windowStart || (a.topic ?? '').localeCompare(b.topic ?? ''));
        const servedBy = [...new Set(parts.map((p) => p.servedBy).filter((u) => u !== undefined))].join(', ');
        const body = {
          key,
          partition: partitions[0]?.partition ?? null,
          ...(partitions.length > 1 ? { partitions } : {}),
          windows,
        };
        return send(reply, { status: 200, body, servedBy, remote: false });
      };

      // Proxied here by another replica: answered here or not at all.
      const proxiedBy = headerOf(req, PROXIED_BY);
      if (proxiedBy !== undefined) {
        const listed = parsePartitions(headerOf(req, PARTITIONS) ?? '');
        const wanted = listed?.filter((tp) => partitions.some((p) => same(p, tp))) ?? partitions;
        if (wanted.length === 0 || (listed && wanted.length !== listed.length)) {
          outcome('failed');
          const reason = `${PARTITIONS} does not name partitions of key ${JSON.stringify(key)}`;
          return reply.code(400).headers(noStore).send({ error: 'bad-request', reason });
        }
        return answer([await localPart(backend, key, wanted, range)]);
      }

      let parts: Part[] = [];
      for (const stale of [false, true]) {
        const owners = await locate(backend, partitions, stale);
        if (typeof owners === 'string') return answer([unavailable('restoring', owners)]);
        const only = owners.size === 1 ? [...owners.keys()][0] : undefined;
        if (only !== undefined && only !== backend.selfUrl && ['1', 'true'].includes(req.query['redirect'] ?? '')) {
          outcome('redirected');
          const location = `${only}/api/state/${encodeURIComponent(key)}${rangeQuery(range)}`;
          return reply.code(307).headers(noStore).header('location', location).header(SERVED_BY, only).send();
        }
        parts = await Promise.all(
          [...owners].map(([url, tps]) =>
            url === backend.selfUrl
              ? localPart(backend, key, tps, range)
              : proxyPart(backend, url, req, key, tps, range),
          ),
        );
        // An owner that no longer owns its partitions: the group moved on; read it again and retry once.
        if (!parts.some((p) => p.remote && p.body.error === 'not-owner')) break;
      }
      return answer(parts);
    },
  );
}
