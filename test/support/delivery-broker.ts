/**
 * A broker of a delivery test's own: short consumer-group sessions are allowed (a killed or paused
 * replica's partitions move within seconds) and the broker looks for timed-out transactions every 2 s.
 */
import { Kafka, logLevel, type RetryOptions } from 'kafkajs';
import { startLocalBroker, type LocalBroker } from '../../scripts/kafka/local-broker.ts';

export async function startDeliveryBroker(
  clientId: string,
  options: { heap?: string; retry?: RetryOptions } = {},
): Promise<{ broker: LocalBroker; kafka: Kafka }> {
  const broker = await startLocalBroker({
    heap: options.heap ?? '768m',
    properties: {
      'group.min.session.timeout.ms': '1000',
      'transaction.abort.timed.out.transaction.cleanup.interval.ms': '2000',
    },
  });
  const kafka = new Kafka({
    clientId,
    brokers: [broker.brokers],
    logLevel: logLevel.NOTHING,
    ...(options.retry ? { retry: options.retry } : {}),
  });
  return { broker, kafka };
}
