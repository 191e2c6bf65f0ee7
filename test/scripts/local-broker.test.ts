/**
 * The test broker's own restart: `stopProcess()` ends the JVM but keeps its ports and storage,
 * `startProcess()` brings the same broker back (same address, same records), and a port taken while
 * it was down makes the restart fail naming that port instead of hanging or starting elsewhere.
 */
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from '@jest/globals';
import { Kafka, logLevel } from 'kafkajs';
import { startLocalBroker, type LocalBroker } from '../../scripts/kafka/local-broker.ts';

let broker: LocalBroker | undefined;
afterAll(async () => {
  await broker?.stop();
});

function client(brokers: string): Kafka {
  return new Kafka({
    clientId: 'local-broker-test',
    brokers: [brokers],
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
  });
}

async function highWatermark(brokers: string, topic: string): Promise<string | undefined> {
  const admin = client(brokers).admin();
  await admin.connect();
  try {
    return (await admin.fetchTopicOffsets(topic))[0]?.high;
  } finally {
    await admin.disconnect();
  }
}

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

describe('local broker restart', () => {
  test('stopProcess keeps ports and data; a taken port fails the restart by name; startProcess restores the broker', async () => {
    broker = await startLocalBroker();
    // A default start makes no certificates.
    expect(broker.sslBrokers).toBeUndefined();
    expect(broker.tls).toBeUndefined();
    expect(existsSync(join(broker.dataDir, 'tls'))).toBe(false);

    const topic = 'restart-keeps-data';
    const kafka = client(broker.brokers);
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    await admin.disconnect();
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages: Array.from({ length: 10 }, (_, i) => ({ value: `v${i}` })) });
    await producer.disconnect();
    const firstPid = broker.pid;

    await broker.stopProcess({ graceMs: 5_000 });
    expect(broker.running).toBe(false);
    expect(broker.pid).toBe(-1);
    await expect(highWatermark(broker.brokers, topic)).rejects.toThrow(/ECONNREFUSED|Connection error/);

    const saslPort = Number(broker.saslBrokers.split(':')[1]);
    const squatter = await listen(saslPort);
    try {
      await expect(broker.startProcess()).rejects.toThrow(
        new RegExp(`SASL_PLAINTEXT port 127\\.0\\.0\\.1:${saslPort} was taken`),
      );
      expect(broker.running).toBe(false);
    } finally {
      await new Promise((r) => squatter.close(r));
    }

    await broker.startProcess();
    expect(broker.running).toBe(true);
    expect(broker.pid).not.toBe(firstPid);
    expect(await highWatermark(broker.brokers, topic)).toBe('10');

    const dataDir = broker.dataDir;
    await broker.stop();
    await broker.stop(); // twice is fine
    expect(existsSync(dataDir)).toBe(false);
    await expect(broker.startProcess()).rejects.toThrow(/stopped for good/);
  });
});
