/**
 * The receiver's answers to kafkajs's consumer events, with a fake kafkajs consumer (no broker): a
 * consumer kafkajs stops for good on a non-retriable error is fatal (no zombie that looks alive); one
 * it stops on an error that only means "not yet" is replaced by a new consumer; fetch health follows
 * FETCH_START/FETCH; pausing a consumer that is not running is not an error.
 */
import { describe, expect, jest, test } from '@jest/globals';
import { type Kafka } from 'kafkajs';
import kafkajs from 'kafkajs';
import pino from 'pino';
import { type FatalError } from '../../src/errors.ts';
import { BufferQueue } from '../../src/queue/buffer-queue.ts';
import { Receiver } from '../../src/receiver/receiver.ts';
import { waitFor } from '../helpers.ts';

const EVENTS = {
  GROUP_JOIN: 'consumer.group_join',
  REBALANCING: 'consumer.rebalancing',
  CRASH: 'consumer.crash',
  FETCH_START: 'consumer.fetch_start',
  FETCH: 'consumer.fetch',
} as const;

/** A kafkajs consumer that records what it is asked and lets the test fire its events. */
class FakeConsumer {
  readonly events = EVENTS;
  readonly handlers = new Map<string, (event: { payload: unknown }) => void>();
  readonly calls: string[] = [];
  running = false;
  on(name: string, handler: (event: { payload: unknown }) => void): void {
    this.handlers.set(name, handler);
  }
  emit(name: string, payload: unknown): void {
    this.handlers.get(name)?.({ payload });
  }
  async connect(): Promise<void> {
    this.calls.push('connect');
  }
  async subscribe(): Promise<void> {
    this.calls.push('subscribe');
  }
  async run(): Promise<void> {
    this.calls.push('run');
    this.running = true;
  }
  async disconnect(): Promise<void> {
    this.calls.push('disconnect');
    this.running = false;
  }
  paused(): unknown[] {
    return [];
  }
  pause(): void {
    // kafkajs refuses to pause a consumer whose group is not running
    if (!this.running) throw new Error('Consumer group was not initialized, consumer#run must be called first');
    this.calls.push('pause');
  }
  resume(): void {
    if (!this.running) throw new Error('Consumer group was not initialized, consumer#run must be called first');
    this.calls.push('resume');
  }
}

function receiverWith(made: (consumer: FakeConsumer, index: number) => void = () => undefined): {
  receiver: Receiver;
  consumers: FakeConsumer[];
  fatal: FatalError[];
} {
  const consumers: FakeConsumer[] = [];
  const kafka = {
    consumer: () => {
      const c = new FakeConsumer();
      made(c, consumers.length);
      consumers.push(c);
      return c;
    },
  } as unknown as Kafka;
  const fatal: FatalError[] = [];
  const receiver = new Receiver({
    kafka,
    groupId: 'g',
    topics: ['in'],
    queue: new BufferQueue({ maxRecords: 1000, maxBytes: 1 << 20 }),
    bufferMaxBytes: 1 << 20,
    sessionTimeoutMs: 10_000,
    fromBeginning: true,
    readCommitted: true,
    logger: pino({ level: 'silent' }),
    onAssignment: () => undefined,
    onFatal: (error) => fatal.push(error),
  });
  return { receiver, consumers, fatal };
}

describe('Receiver', () => {
  test('a consumer kafkajs stops on a non-retriable error is fatal, once', async () => {
    const { receiver, consumers, fatal } = receiverWith();
    await receiver.start();
    const ProtocolError = kafkajs.KafkaJSProtocolError as unknown as new (e: object) => Error;
    const denied = new ProtocolError({
      message: 'Not authorized to access group',
      type: 'GROUP_AUTHORIZATION_FAILED',
      code: 30,
      retriable: false,
    });
    consumers[0]!.emit(EVENTS.CRASH, { error: denied, restart: false, groupId: 'g' });
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toMatchObject({ code: 'SLUICE_FATAL' });
    expect(receiver.joined).toBe(false);
    expect(consumers).toHaveLength(1);
  });

  test('a consumer kafkajs stops on "no group coordinator" (a broker still starting) is replaced, not fatal', async () => {
    const { receiver, consumers, fatal } = receiverWith();
    await receiver.start();
    const NotFound = kafkajs.KafkaJSGroupCoordinatorNotFound as unknown as new (message: string) => Error;
    const notYet = new NotFound('Failed to find group coordinator');
    consumers[0]!.emit(EVENTS.CRASH, { error: notYet, restart: false, groupId: 'g' });
    await waitFor('a new consumer running', () => (consumers[1]?.running ? true : undefined), 10_000);
    expect(consumers[1]!.calls).toEqual(['connect', 'subscribe', 'run']);
    expect(fatal).toEqual([]);
    // Events of the consumer that was replaced no longer count.
    consumers[0]!.emit(EVENTS.FETCH, { nodeId: 1 });
    expect(receiver.fetchHealthy()).toBe(false);
    consumers[1]!.emit(EVENTS.FETCH_START, { nodeId: 1 });
    consumers[1]!.emit(EVENTS.FETCH, { nodeId: 1 });
    expect(receiver.fetchHealthy()).toBe(true);
    await receiver.stop();
  });

  test('a stop while a new consumer is starting is a stop, not a fatal error', async () => {
    let stopped: Promise<void> | undefined;
    const { receiver, consumers, fatal } = receiverWith((consumer, index) => {
      // The new consumer's start fails because the service stops meanwhile (what kafkajs throws then).
      if (index === 1) {
        consumer.run = async () => {
          stopped = receiver.stop();
          throw new Error('The consumer is disconnected');
        };
      }
    });
    await receiver.start();
    const NotFound = kafkajs.KafkaJSGroupCoordinatorNotFound as unknown as new (message: string) => Error;
    consumers[0]!.emit(EVENTS.CRASH, { error: new NotFound('Failed to find group coordinator'), restart: false });
    await waitFor('the stop during the new consumer’s start', () => (stopped ? true : undefined), 10_000);
    await stopped;
    await new Promise((r) => setTimeout(r, 20));
    expect(fatal).toEqual([]);
    expect(receiver.state).toBe('stopped');
  });

  test('a crash kafkajs restarts itself: not joined meanwhile, nothing else', async () => {
    const { receiver, consumers, fatal } = receiverWith();
    await receiver.start();
    consumers[0]!.emit(EVENTS.GROUP_JOIN, { memberAssignment: { in: [0] } });
    expect(receiver.joined).toBe(true);
    consumers[0]!.emit(EVENTS.CRASH, { error: new Error('connection lost'), restart: true, groupId: 'g' });
    expect(receiver.joined).toBe(false);
    expect(fatal).toEqual([]);
    expect(consumers).toHaveLength(1);
  });

  test('fetch health: answered within 3 s, none outstanding for longer', async () => {
    const { receiver, consumers } = receiverWith();
    await receiver.start();
    let now = 1_000_000;
    const clock = jest.spyOn(Date, 'now').mockImplementation(() => now);
    try {
      expect(receiver.fetchHealthy()).toBe(false); // nothing answered yet
      const c = consumers[0]!;
      c.emit(EVENTS.FETCH_START, { nodeId: 1 });
      c.emit(EVENTS.FETCH, { nodeId: 1 });
      expect(receiver.fetchHealthy()).toBe(true);
      now += 3_500;
      expect(receiver.fetchHealthy()).toBe(false); // no answer for 3.5 s
      c.emit(EVENTS.FETCH_START, { nodeId: 2 }); // node 2 never answers
      c.emit(EVENTS.FETCH_START, { nodeId: 1 });
      now += 2_500;
      c.emit(EVENTS.FETCH, { nodeId: 1 });
      expect(receiver.fetchHealthy()).toBe(true); // node 2 outstanding for 2.5 s only
      now += 600;
      expect(receiver.fetchHealthy()).toBe(false); // node 1 fresh, node 2 outstanding for 3.1 s
    } finally {
      clock.mockRestore();
    }
  });

  test('holding partitions of a consumer that is not running is not an error (the next join starts afresh)', async () => {
    const { receiver, consumers } = receiverWith();
    await receiver.start();
    await consumers[0]!.disconnect();
    expect(() => receiver.hold([{ topic: 'in', partition: 0 }])).not.toThrow();
    expect(() => receiver.resumeDrained()).not.toThrow();
    expect(() => receiver.pauseAll()).not.toThrow();
  });
});
