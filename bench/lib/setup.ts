/**
 * What every bench command does first: build the service (`dist/`, as the container runs it) and reach
 * a broker — `KAFKA_BROKERS` when set, else a fresh local one (stopped by the caller).
 */
import { execFileSync } from 'node:child_process';
import { Kafka, logLevel } from 'kafkajs';
import { kafkaVersion, startLocalBroker, type LocalBroker } from '../../scripts/kafka/local-broker.ts';

export const log = (message: string): void => console.error(`[bench] ${message}`);

export async function buildAndConnect(
  root: string,
  clientId: string,
): Promise<{ broker: LocalBroker | undefined; brokers: string; kafka: Kafka }> {
  log('building the service (dist/)');
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
  const external = process.env['KAFKA_BROKERS'];
  const broker = external ? undefined : await startLocalBroker({ heap: '1g' });
  const brokers = external ?? broker!.brokers;
  log(`Kafka ${external ? `at ${brokers}` : `${kafkaVersion()} local at ${brokers}`}`);
  const kafka = new Kafka({ clientId, brokers: brokers.split(','), logLevel: logLevel.NOTHING });
  return { broker, brokers, kafka };
}
