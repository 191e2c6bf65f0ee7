/**
 * How every Kafka client of the service is configured — the main thread's consumer and admin and
 * each worker's producer — from the one validated connection config, with kafkajs's log lines sent
 * through pino so the service logs JSON only.
 */
import { type ISocketFactory, logLevel, type KafkaConfig as KafkaJsConfig, type SASLOptions } from 'kafkajs';
import type pino from 'pino';
import { type KafkaConfig } from '../config/resolve.ts';

export function kafkaClientConfig(
  kafka: KafkaConfig,
  logger: pino.Logger,
  clientId = kafka.clientId,
  socketFactory?: ISocketFactory,
): KafkaJsConfig {
  const sasl: SASLOptions | undefined = kafka.sasl
    ? ({ mechanism: kafka.sasl.mechanism, username: kafka.sasl.username, password: kafka.sasl.password } as SASLOptions)
    : undefined;
  return {
    clientId,
    brokers: [...kafka.brokers],
    ...(kafka.ssl ? { ssl: { ...kafka.ssl } } : {}),
    ...(sasl ? { sasl } : {}),
    ...(socketFactory ? { socketFactory } : {}),
    connectionTimeout: 5_000,
    requestTimeout: 30_000,
    retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 10_000 },
    logLevel: logLevel.INFO,
    logCreator: kafkaLogCreator(logger.child({ component: 'kafkajs' })),
  };
}

/** kafkajs log lines through pino. */
function kafkaLogCreator(
  logger: pino.Logger,
): () => (entry: { level: number; log: { message: string } & Record<string, unknown> }) => void {
  return () =>
    ({ level, log }) => {
      const { message, ...rest } = log;
      // kafkajs levels: 1 error, 2 warn, 4 info, 5 debug
      if (level <= 1) logger.error(rest, message);
      else if (level === 2) logger.warn(rest, message);
      else if (level === 4) logger.debug(rest, message);
      else logger.trace(rest, message);
    };
}
