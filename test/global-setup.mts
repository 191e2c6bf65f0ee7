/**
 * One broker per test run. `KAFKA_BROKERS` set: use that cluster. Else, if a Docker engine answers:
 * a testcontainers Kafka. Else: the project's own local broker from the Maven jars.
 */
import { startBroker } from './support/broker.ts';

export default async function globalSetup(): Promise<void> {
  const broker = await startBroker();
  process.env['KAFKA_BROKERS'] = broker.brokers;
  if (broker.saslBrokers) process.env['SLUICE_TEST_SASL_BROKERS'] = broker.saslBrokers;
  (globalThis as { __sluiceBroker?: typeof broker }).__sluiceBroker = broker;
  console.log(`\n[sluice tests] Node ${process.version}, Kafka: ${broker.description}`);
}
