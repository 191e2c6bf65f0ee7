import { existsSync } from 'node:fs';
import { startLocalBroker, kafkaVersion } from '../../scripts/kafka/local-broker.ts';

export interface TestBroker {
  brokers: string;
  saslBrokers?: string;
  description: string;
  stop(): Promise<void>;
}

async function dockerAnswers(): Promise<boolean> {
  if (!process.env['DOCKER_HOST'] && !existsSync('/var/run/docker.sock')) return false;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

async function startContainer(): Promise<TestBroker> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const port = 9092;
  const container = await new GenericContainer(`apache/kafka:${kafkaVersion()}`)
    .withExposedPorts(port)
    .withEnvironment({
      KAFKA_NODE_ID: '1',
      KAFKA_PROCESS_ROLES: 'broker,controller',
      KAFKA_CONTROLLER_QUORUM_VOTERS: '1@localhost:9093',
      KAFKA_LISTENERS: 'PLAINTEXT://:9092,CONTROLLER://:9093,INTERNAL://:19092',
      KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT',
      KAFKA_CONTROLLER_LISTENER_NAMES: 'CONTROLLER',
      KAFKA_INTER_BROKER_LISTENER_NAME: 'INTERNAL',
      KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: '1',
      KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '1',
      KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: '1',
      KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
    })
    .withWaitStrategy(Wait.forLogMessage(/Kafka Server started/))
    .start();
  // The advertised address must be the mapped port, known only after start: re-advertise it.
  const mapped = container.getMappedPort(port);
  await container.exec([
    'sh',
    '-c',
    `/opt/kafka/bin/kafka-configs.sh --bootstrap-server localhost:19092 --alter --entity-type brokers --entity-name 1 --add-config advertised.listeners=[PLAINTEXT://${container.getHost()}:${mapped},INTERNAL://localhost:19092]`,
  ]);
  return {
    brokers: `${container.getHost()}:${mapped}`,
    description: `testcontainers apache/kafka:${kafkaVersion()}`,
    stop: async () => {
      await container.stop();
    },
  };
}

export async function startBroker(): Promise<TestBroker> {
  const external = process.env['KAFKA_BROKERS'];
  if (external) {
    const sasl = process.env['SLUICE_TEST_SASL_BROKERS'];
    return {
      brokers: external,
      ...(sasl ? { saslBrokers: sasl } : {}),
      description: `existing cluster ${external}`,
      stop: async () => undefined,
    };
  }
  if (await dockerAnswers()) return startContainer();
  const local = await startLocalBroker();
  return {
    brokers: local.brokers,
    saslBrokers: local.saslBrokers,
    description: `local Kafka ${kafkaVersion()} at ${local.brokers} (pid ${local.pid}, started in ${local.startupMs} ms)`,
    stop: () => local.stop(),
  };
}
