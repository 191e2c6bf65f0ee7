/** The connection watch counts kafkajs's failed connections, and only those. */
import { describe, expect, test } from '@jest/globals';
import { createServer } from 'node:net';
import { Kafka, logLevel } from 'kafkajs';
import { ConnectionWatch } from '../../src/kafka/connection-watch.ts';
import { testBrokers } from '../helpers.ts';

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('ConnectionWatch', () => {
  test('a refused connection counts; a working one does not', async () => {
    const watch = new ConnectionWatch();
    const working = new Kafka({
      clientId: 'watch-test',
      brokers: testBrokers(),
      socketFactory: watch.socketFactory,
      logLevel: logLevel.NOTHING,
    });
    const admin = working.admin();
    await admin.connect();
    await admin.listTopics();
    await admin.disconnect();
    expect(watch.failures).toBe(0);

    const refused = new Kafka({
      clientId: 'watch-test',
      brokers: [`127.0.0.1:${await closedPort()}`],
      socketFactory: watch.socketFactory,
      logLevel: logLevel.NOTHING,
      retry: { retries: 0 },
    });
    await expect(refused.admin().connect()).rejects.toThrow();
    expect(watch.failures).toBeGreaterThanOrEqual(1);
  }, 30_000);
});
