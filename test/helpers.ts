/** Test helpers: the run's brokers, unique topic names, and cleanup of clients a test opened. */
import { randomBytes } from 'node:crypto';
import { afterAll } from '@jest/globals';
import { Kafka, logLevel, type Admin, type KafkaConfig } from 'kafkajs';

export function testBrokers(): string[] {
  const brokers = process.env['KAFKA_BROKERS'];
  if (!brokers) throw new Error('KAFKA_BROKERS is not set: tests run through jest with its global setup');
  return brokers.split(',');
}

export function testKafka(overrides: Partial<KafkaConfig> = {}): Kafka {
  return new Kafka({ clientId: 'sluice-test', brokers: testBrokers(), logLevel: logLevel.NOTHING, ...overrides });
}

/** A topic (or group) name no other test uses. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

const cleanups: Array<() => Promise<unknown>> = [];
/** Registers a cleanup that runs after the file's tests, even when they fail. */
export function onCleanup(fn: () => Promise<unknown>): void {
  cleanups.push(fn);
}
afterAll(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
});

let sharedAdmin: Admin | undefined;
export async function admin(): Promise<Admin> {
  if (!sharedAdmin) {
    const a = testKafka().admin();
    await a.connect();
    sharedAdmin = a;
    onCleanup(async () => {
      await a.disconnect();
      sharedAdmin = undefined;
    });
  }
  return sharedAdmin;
}

export async function createTopic(
  name: string,
  partitions: number,
  configs: Record<string, string> = {},
): Promise<string> {
  const a = await admin();
  await a.createTopics({
    waitForLeaders: true,
    topics: [
      {
        topic: name,
        numPartitions: partitions,
        replicationFactor: 1,
        configEntries: Object.entries(configs).map(([name, value]) => ({ name, value })),
      },
    ],
  });
  return name;
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
