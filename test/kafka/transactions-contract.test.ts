/**
 * What kafkajs 2.2.4 and Kafka 4.4 do with transactions, pinned down before exactly-once delivery is
 * built on them: fencing by transactional id, the producer's state after a failed commit, how long a
 * dead producer's open transaction holds back read_committed readers, transactional offset commits
 * from a producer that is no member of the group, and what a transactional producer costs to start.
 * Each test fails if the fact it names is false; the figures are printed (docs/architecture.md,
 * "Transactions in kafkajs 2.2.4 against Kafka 4.4 (measured)", keeps them).
 *
 * The tests that stop a broker or need a shorter transaction-abort check run against a broker of
 * their own; the others use the run's shared broker.
 */
import { connect as netConnect } from 'node:net';
import { beforeAll, describe, expect, test } from '@jest/globals';
import {
  ConfigResourceTypes,
  Kafka,
  logLevel,
  type KafkaConfig,
  type Producer,
  type ProducerConfig,
  type RetryOptions,
} from 'kafkajs';
import { startLocalBroker, type LocalBroker } from '../../scripts/kafka/local-broker.ts';
import { admin, createTopic, onCleanup, testKafka, uniqueName } from '../helpers.ts';

/** kafkajs's error and the causes it wraps, e.g. `KafkaJSNonRetriableError <- KafkaJSProtocolError(INVALID_PRODUCER_EPOCH 47)`. */
function describeError(error: unknown): string {
  const parts: string[] = [];
  for (let e = error as { name?: string; type?: string; code?: unknown; cause?: unknown } | undefined; e;) {
    parts.push(`${e.name}${e.type ? `(${e.type} ${String(e.code)})` : ''}`);
    e = e.cause && e.cause !== e ? (e.cause as typeof e) : undefined;
  }
  return parts.join(' <- ');
}

/** The error `action` rejects with; fails the test when it succeeds. */
async function failure(what: string, action: () => Promise<unknown>): Promise<Error & Record<string, unknown>> {
  try {
    await action();
  } catch (error) {
    console.log(`${what}: ${describeError(error)}: ${(error as Error).message}`);
    return error as Error & Record<string, unknown>;
  }
  throw new Error(`${what} succeeded`);
}

const FENCED = { name: 'KafkaJSProtocolError', type: 'INVALID_PRODUCER_EPOCH', code: 47 };

function transactional(kafka: Kafka, transactionalId: string, config: Partial<ProducerConfig> = {}): Producer {
  const producer = kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1, ...config });
  onCleanup(() => producer.disconnect());
  return producer;
}

/** Counts the requests a producer sent by API name (answered ones, protocol errors included) and their versions. */
function requestLog(producer: Producer): { count: (api: string) => number; versions: Map<string, Set<number>> } {
  const versions = new Map<string, Set<number>>();
  const counts = new Map<string, number>();
  producer.on(producer.events.REQUEST, ({ payload }) => {
    counts.set(payload.apiName, (counts.get(payload.apiName) ?? 0) + 1);
    let set = versions.get(payload.apiName);
    if (!set) versions.set(payload.apiName, (set = new Set()));
    set.add(payload.apiVersion);
  });
  return { count: (api) => counts.get(api) ?? 0, versions };
}

interface Read {
  partition: number;
  offset: bigint;
  value: string;
}

/** Reads `topic` from the beginning in a group of its own until `done` holds for what was read. */
async function readUntil(
  kafka: Kafka,
  topic: string,
  done: (read: readonly Read[]) => boolean,
  { readUncommitted = false, timeoutMs = 30_000 } = {},
): Promise<Read[]> {
  const consumer = kafka.consumer({ groupId: uniqueName('txn-reader'), readUncommitted, maxWaitTimeInMs: 100 });
  onCleanup(() => consumer.disconnect());
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const read: Read[] = [];
  let finished!: () => void;
  const complete = new Promise<void>((r) => (finished = r));
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      read.push({ partition, offset: BigInt(message.offset), value: message.value?.toString() ?? '' });
      if (done(read)) finished();
    },
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      complete,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`read ${JSON.stringify(read.map((r) => r.value))}`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    await consumer.disconnect();
  }
  return read;
}

const values = (read: readonly Read[]): string[] => read.map((r) => r.value);

async function committedOffset(kafka: Kafka, groupId: string, topic: string): Promise<string | undefined> {
  const a = kafka.admin();
  await a.connect();
  try {
    return (await a.fetchOffsets({ groupId, topics: [topic] }))[0]?.partitions[0]?.offset;
  } finally {
    await a.disconnect();
  }
}

function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

describe('fencing by transactional id', () => {
  test('a second producer with the same transactional id fences the first at its first transaction(), not at connect()', async () => {
    const topic = await createTopic(uniqueName('txn-fence-connect'), 1);
    const id = uniqueName('fence-connect');
    const a = transactional(testKafka(), id);
    await a.connect();
    const first = await a.transaction();
    await first.send({ topic, messages: [{ value: 'a-before-b-connect' }] });

    const b = transactional(testKafka(), id);
    const bRequests = requestLog(b);
    await b.connect();
    // connect() asks for an idempotent producer id without the transactional id: A is not fenced yet.
    expect(bRequests.count('InitProducerId')).toBe(1);
    await first.send({ topic, messages: [{ value: 'a-after-b-connect' }] });
    await first.commit();
    const open = await a.transaction();
    await open.send({ topic, messages: [{ value: 'a-open' }] });

    const bTxn = await b.transaction();
    // The transactional InitProducerId; while the coordinator aborts A's open transaction it answers
    // CONCURRENT_TRANSACTIONS, which kafkajs retries.
    console.log(
      `B sent ${bRequests.count('InitProducerId')} InitProducerId requests by the end of its first transaction()`,
    );
    expect(bRequests.count('InitProducerId')).toBeGreaterThanOrEqual(2);
    expect(
      await failure('A send after B transaction()', () => open.send({ topic, messages: [{ value: 'x' }] })),
    ).toMatchObject(FENCED);
    // Aborting instead of committing is refused as well, and leaves the producer in ABORTING for good.
    expect(await failure('A abort after B transaction()', () => open.abort())).toMatchObject(FENCED);
    expect(await failure('A transaction() after its failed abort', () => a.transaction())).toMatchObject({
      name: 'KafkaJSNonRetriableError',
      message: 'Transaction state exception: Cannot call "beginTransaction" in state "ABORTING"',
    });
    await bTxn.send({ topic, messages: [{ value: 'b' }] });
    await bTxn.commit();
    const read = await readUntil(testKafka(), topic, (r) => values(r).includes('b'));
    expect(values(read)).toEqual(['a-before-b-connect', 'a-after-b-connect', 'b']);
  });

  test('the fenced producer: its open transaction is aborted, send/sendOffsets/commit fail with INVALID_PRODUCER_EPOCH, and it never works again', async () => {
    const topic = await createTopic(uniqueName('txn-fence'), 2);
    const groupId = uniqueName('txn-fence-group');
    const id = uniqueName('fence');
    const a = transactional(testKafka(), id);
    await a.connect();
    const zombie = await a.transaction();
    await zombie.send({ topic, messages: [{ partition: 0, value: 'a-open-0' }] });

    const b = transactional(testKafka(), id);
    await b.connect();
    const owner = await b.transaction();

    const offsets = { consumerGroupId: groupId, topics: [{ topic, partitions: [{ partition: 0, offset: '5' }] }] };
    // A partition already in A's transaction (Produce) and a new one (AddPartitionsToTxn first).
    expect(
      await failure('fenced send, partition in the txn', () =>
        zombie.send({ topic, messages: [{ partition: 0, value: 'a-late-0' }] }),
      ),
    ).toMatchObject(FENCED);
    expect(
      await failure('fenced send, new partition', () =>
        zombie.send({ topic, messages: [{ partition: 1, value: 'a-late-1' }] }),
      ),
    ).toMatchObject(FENCED);
    expect(await failure('fenced sendOffsets', () => zombie.sendOffsets(offsets))).toMatchObject(FENCED);
    expect(await failure('fenced commit', () => zombie.commit())).toMatchObject(FENCED);
    // The failed EndTxn leaves kafkajs's state machine in COMMITTING for good.
    expect(await failure('abort after the failed commit', () => zombie.abort())).toMatchObject({
      name: 'KafkaJSNonRetriableError',
      message: 'Cannot continue to use transaction once ended',
    });
    const stuck = {
      name: 'KafkaJSNonRetriableError',
      message: 'Transaction state exception: Cannot call "beginTransaction" in state "COMMITTING"',
    };
    expect(await failure('new transaction on the fenced producer', () => a.transaction())).toMatchObject(stuck);
    await a.disconnect();
    await a.connect();
    expect(await failure('new transaction after reconnecting', () => a.transaction())).toMatchObject(stuck);

    // The zombie's attempts disturbed nothing: the new owner commits, A's records never show.
    await owner.send({
      topic,
      messages: [
        { partition: 0, value: 'b-0' },
        { partition: 1, value: 'b-1' },
      ],
    });
    await owner.commit();
    const read = await readUntil(testKafka(), topic, (r) => values(r).includes('b-0') && values(r).includes('b-1'));
    expect(values(read).sort()).toEqual(['b-0', 'b-1']);
    expect(await committedOffset(testKafka(), groupId, topic)).toBe('-1');
  });
});

describe('on a broker of its own', () => {
  /** How often the coordinator looks for timed-out transactions here (Kafka's default: 10 000 ms). */
  const ABORT_CHECK_MS = 2_000;
  let broker: LocalBroker;
  const kafka = (retry: RetryOptions = {}): Kafka =>
    new Kafka({ clientId: 'sluice-txn-test', brokers: [broker.brokers], logLevel: logLevel.NOTHING, retry });

  beforeAll(async () => {
    broker = await startLocalBroker({
      heap: '384m',
      properties: { 'transaction.abort.timed.out.transaction.cleanup.interval.ms': String(ABORT_CHECK_MS) },
    });
    onCleanup(() => broker.stop());
  }, 120_000);

  test('an abandoned open transaction holds read_committed readers back for transaction.timeout.ms plus at most one abort check, and fences its producer', async () => {
    const TIMEOUT_MS = 10_000;
    const k = kafka();
    const a = k.admin();
    await a.connect();
    onCleanup(() => a.disconnect());
    const [config] = (
      await a.describeConfigs({ includeSynonyms: false, resources: [{ type: ConfigResourceTypes.BROKER, name: '1' }] })
    ).resources;
    expect(
      config?.configEntries.find((e) => e.configName === 'transaction.abort.timed.out.transaction.cleanup.interval.ms')
        ?.configValue,
    ).toBe(String(ABORT_CHECK_MS));
    const topic = uniqueName('txn-hanging');
    await a.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 1 }] });

    const dead = transactional(k, uniqueName('hanging'), { transactionTimeout: TIMEOUT_MS });
    await dead.connect();
    const txn = await dead.transaction();
    const started = Date.now();
    await txn.send({ topic, messages: [{ value: 'never-committed' }] });
    // From here the producer is never used again, as if its process had died.

    const other = k.producer({ idempotent: true });
    onCleanup(() => other.disconnect());
    await other.connect();
    await other.send({ topic, messages: [{ value: 'after' }] });
    const produced = Date.now();
    const read = await readUntil(k, topic, (r) => values(r).includes('after'), { timeoutMs: 60_000 });
    const blockedMs = Date.now() - started;
    console.log(
      `read_committed blocked ${blockedMs} ms after the abandoned transaction began (${Date.now() - produced} ms after the later record was acknowledged); transaction.timeout.ms ${TIMEOUT_MS}, abort check every ${ABORT_CHECK_MS} ms`,
    );
    expect(values(read)).toEqual(['after']);
    expect(blockedMs).toBeGreaterThanOrEqual(TIMEOUT_MS);
    // One abort check after the timeout, plus writing the markers and one fetch wait (100 ms) on a busy host.
    expect(blockedMs).toBeLessThanOrEqual(TIMEOUT_MS + ABORT_CHECK_MS + 1_000);

    // The coordinator bumped the epoch when it aborted: the slow producer is fenced like a zombie.
    expect(await failure('commit after the timeout abort', () => txn.commit())).toMatchObject(FENCED);
  });

  test('commit() failing while the broker is down traps the producer; a new one with the same id aborts the old transaction, and a retry driven by the committed offset lands each record once', async () => {
    const k = kafka();
    const a = k.admin();
    await a.connect();
    onCleanup(() => a.disconnect());
    const input = uniqueName('txn-trap-in');
    const output = uniqueName('txn-trap-out');
    await a.createTopics({
      waitForLeaders: true,
      topics: [
        { topic: input, numPartitions: 1 },
        { topic: output, numPartitions: 1 },
      ],
    });
    const groupId = uniqueName('txn-trap-group');
    const id = uniqueName('trap');
    const batch = Array.from({ length: 10 }, (_, i) => ({ value: `r${i}` }));
    const offsets = {
      consumerGroupId: groupId,
      topics: [{ topic: input, partitions: [{ partition: 0, offset: '10' }] }],
    };

    // Few retries, so that the commit gives up while the broker is down.
    const first = transactional(kafka({ retries: 2, initialRetryTime: 100, maxRetryTime: 300 }), id);
    await first.connect();
    const txn = await first.transaction();
    const [firstCopy] = await txn.send({ topic: output, messages: batch });
    await txn.sendOffsets(offsets);
    await broker.stopProcess();
    const commitStarted = Date.now();
    const commitError = await failure('commit with the broker stopped', () => txn.commit());
    console.log(`commit failed after ${Date.now() - commitStarted} ms`);
    expect(commitError).toMatchObject({
      name: 'KafkaJSNumberOfRetriesExceeded',
      cause: { name: 'KafkaJSConnectionError', code: 'ECONNREFUSED' },
    });
    await broker.startProcess();

    // With the broker back, the same producer still refuses everything: its state machine is in COMMITTING.
    const ended = { name: 'KafkaJSNonRetriableError', message: 'Cannot continue to use transaction once ended' };
    expect(await failure('commit again', () => txn.commit())).toMatchObject(ended);
    expect(await failure('abort', () => txn.abort())).toMatchObject(ended);
    expect(await failure('new transaction', () => first.transaction())).toMatchObject({
      name: 'KafkaJSNonRetriableError',
      message: 'Transaction state exception: Cannot call "beginTransaction" in state "COMMITTING"',
    });

    // Recovery: a new producer with the same id (its init aborts the open transaction), then redo
    // the batch only if the group's committed offset says it did not land.
    const second = transactional(k, id);
    await second.connect();
    const retry = await second.transaction();
    expect(await committedOffset(k, groupId, input)).toBe('-1');
    const [secondCopy] = await retry.send({ topic: output, messages: batch });
    await retry.sendOffsets(offsets);
    await retry.commit();

    const committed = await readUntil(k, output, (r) => r.length >= batch.length);
    expect(values(committed)).toEqual(batch.map((m) => m.value));
    const base = BigInt(secondCopy!.baseOffset!);
    expect(committed.map((r) => r.offset)).toEqual(batch.map((_, i) => base + BigInt(i)));
    // Both copies are in the log; read_committed skips the aborted first one.
    const all = await readUntil(k, output, (r) => r.length >= 2 * batch.length, { readUncommitted: true });
    expect(all.map((r) => r.offset)).toContain(BigInt(firstCopy!.baseOffset!));
    expect(await committedOffset(k, groupId, input)).toBe('10');
  });
});

test('sendOffsets right after a commit surfaces CONCURRENT_TRANSACTIONS (AddOffsetsToTxn is not retried); send() retries it', async () => {
  const topic = await createTopic(uniqueName('txn-concurrent'), 1);
  const groupId = uniqueName('txn-concurrent-group');
  const producer = transactional(testKafka(), uniqueName('concurrent'));
  const requests = requestLog(producer);
  await producer.connect();
  const rounds = 10;
  const offsets = (offset: number) => ({
    consumerGroupId: groupId,
    topics: [{ topic, partitions: [{ partition: 0, offset: String(offset) }] }],
  });

  // Offsets first, right after the previous commit: the coordinator is still writing its markers.
  const surfaced: Array<Record<string, unknown>> = [];
  let sendOffsetsCalls = 0;
  for (let i = 1; i <= rounds; i++) {
    const txn = await producer.transaction();
    for (let attempt = 1; ; attempt++) {
      sendOffsetsCalls++;
      try {
        await txn.sendOffsets(offsets(i));
        break;
      } catch (error) {
        surfaced.push(error as Record<string, unknown>);
        if (attempt >= 20) throw error;
        // The transaction is still usable: the same call is repeated.
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    await txn.send({ topic, messages: [{ value: `o${i}` }] });
    await txn.commit();
  }
  console.log(
    `${surfaced.length} of ${sendOffsetsCalls} sendOffsets calls surfaced ${[...new Set(surfaced.map(describeError))].join(', ')}`,
  );
  expect(surfaced.length).toBeGreaterThan(0);
  for (const error of surfaced)
    expect(error).toMatchObject({ name: 'KafkaJSProtocolError', type: 'CONCURRENT_TRANSACTIONS', code: 51 });
  expect(requests.count('AddOffsetsToTxn')).toBe(sendOffsetsCalls);

  // Records first: AddPartitionsToTxn meets the same state, and send() retries it. Whether a round
  // meets it is a race with the coordinator's markers (about one in three rounds above), so rounds go
  // on until one did — at most 50 — and none may surface.
  const addPartitionsBefore = requests.count('AddPartitionsToTxn');
  let sendFirst = 0;
  let last = rounds;
  while (
    sendFirst < rounds ||
    (requests.count('AddPartitionsToTxn') - addPartitionsBefore <= sendFirst && sendFirst < 50)
  ) {
    last++;
    sendFirst++;
    const txn = await producer.transaction();
    await txn.send({ topic, messages: [{ value: `s${last}` }] });
    await txn.sendOffsets(offsets(last));
    await txn.commit();
  }
  const addPartitions = requests.count('AddPartitionsToTxn') - addPartitionsBefore;
  console.log(`send-first: ${addPartitions} AddPartitionsToTxn requests for ${sendFirst} transactions, none surfaced`);
  expect(addPartitions).toBeGreaterThan(sendFirst);
  expect(await committedOffset(testKafka(), groupId, topic)).toBe(String(last));
  console.log(
    `request versions: ${[...requests.versions].map(([api, v]) => `${api} v${[...v].join('/')}`).join(', ')}`,
  );
});

test('a producer that is no member of the group moves its committed offsets although another consumer owns the partition (TxnOffsetCommit v1: no generation fencing)', async () => {
  const topic = await createTopic(uniqueName('txn-nogen'), 1);
  const groupId = uniqueName('txn-nogen-group');
  const join = async (): Promise<{ memberId: string; stop: () => Promise<void> }> => {
    const consumer = testKafka().consumer({ groupId, maxWaitTimeInMs: 100 });
    onCleanup(() => consumer.disconnect());
    let joined!: (memberId: string) => void;
    const memberId = new Promise<string>((r) => (joined = r));
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => joined(payload.memberId));
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({ autoCommit: false, eachMessage: async () => undefined });
    return { memberId: await memberId, stop: () => consumer.disconnect() };
  };
  // The first member (whose producer becomes the zombie) leaves; a second one joins a newer generation.
  const old = await join();
  await old.stop();
  const current = await join();
  const members = async () => {
    const [group] = (await (await admin()).describeGroups([groupId])).groups;
    return { state: group?.state, members: group?.members.map((m) => m.memberId) };
  };
  expect(await members()).toEqual({ state: 'Stable', members: [current.memberId] });

  const zombie = transactional(testKafka(), uniqueName('nogen'));
  const requests = requestLog(zombie);
  await zombie.connect();
  for (const offset of ['5', '2']) {
    const txn = await zombie.transaction();
    await txn.sendOffsets({ consumerGroupId: groupId, topics: [{ topic, partitions: [{ partition: 0, offset }] }] });
    await txn.commit();
    // Accepted, and not even kept monotonic: the second commit moves the offset back.
    expect(await committedOffset(testKafka(), groupId, topic)).toBe(offset);
  }
  expect([...(requests.versions.get('TxnOffsetCommit') ?? [])]).toEqual([1]);
  expect(await members()).toEqual({ state: 'Stable', members: [current.memberId] });
  expect(old.memberId).not.toBe(current.memberId);
  await current.stop();
});

test('starting a transactional producer costs at most one connection per broker and two InitProducerId round trips', async () => {
  let sockets = 0;
  const config: KafkaConfig = {
    clientId: 'sluice-test',
    brokers: (process.env['KAFKA_BROKERS'] ?? '').split(','),
    logLevel: logLevel.NOTHING,
    socketFactory: ({ host, port, onConnect }) => {
      sockets++;
      const socket = netConnect({ host, port }, onConnect);
      socket.setKeepAlive(true, 60_000);
      return socket;
    },
  };
  const kafka = new Kafka(config);
  const brokers = (await (await admin()).describeCluster()).brokers.length;
  const connectMs: number[] = [];
  const initMs: number[] = [];
  const connections: number[] = [];
  const inits: number[] = [];
  for (let i = 0; i < 20; i++) {
    const before = sockets;
    const producer = transactional(kafka, uniqueName(`cost-${i}`));
    const requests = requestLog(producer);
    const t0 = performance.now();
    await producer.connect();
    const t1 = performance.now();
    const txn = await producer.transaction();
    const t2 = performance.now();
    connectMs.push(t1 - t0);
    initMs.push(t2 - t1);
    connections.push(sockets - before);
    inits.push(requests.count('InitProducerId'));
    await txn.abort();
    await producer.disconnect();
  }
  const total = connectMs.map((c, i) => c + initMs[i]!);
  const fmt = (xs: number[]) => `median ${median(xs).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms`;
  console.log(
    `transactional producer start over ${total.length}: connect() ${fmt(connectMs)}; first transaction() ${fmt(initMs)}; together ${fmt(total)}; connections ${[...new Set(connections)].join('/')} (cluster of ${brokers}); InitProducerId requests ${[...new Set(inits)].join('/')}`,
  );
  expect(inits.every((n) => n === 2)).toBe(true);
  expect(connections.every((n) => n >= 1 && n <= brokers)).toBe(true);
});
