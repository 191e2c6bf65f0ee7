/**
 * Asks the cluster for its brokers with a client that does not retry, so that a failure is known in
 * seconds (the service's own clients retry for much longer): every 2 s for readiness, and once per
 * attempt at start-up, where a TLS or SASL mistake must stop the service at once instead of after
 * kafkajs's retries.
 */
import { Kafka, logLevel, type Admin } from 'kafkajs';
import type pino from 'pino';
import { type KafkaConfig } from '../config/resolve.ts';
import { kafkaClientConfig } from './client.ts';

export class BrokerProbe {
  readonly #admin: Admin;
  #reachable = true;
  #timer: NodeJS.Timeout | undefined;
  #running = false;

  constructor(kafka: KafkaConfig, logger: pino.Logger) {
    const client = new Kafka({
      ...kafkaClientConfig(kafka, logger, `${kafka.clientId}-probe`),
      retry: { retries: 0 },
      connectionTimeout: 2_000,
      requestTimeout: 2_000,
      logLevel: logLevel.NOTHING,
    });
    this.#admin = client.admin();
  }

  /** The last probe found the brokers answering. */
  get reachable(): boolean {
    return this.#reachable;
  }

  /** One probe; throws what the brokers (or the network) answered. */
  async check(): Promise<void> {
    try {
      await this.#admin.connect();
      await this.#admin.describeCluster();
      this.#reachable = true;
    } catch (error) {
      this.#reachable = false;
      throw error;
    }
  }

  start(intervalMs = 2_000): void {
    this.#timer ??= setInterval(() => {
      if (this.#running) return;
      this.#running = true;
      this.check()
        .catch(() => undefined)
        .finally(() => (this.#running = false));
    }, intervalMs);
    this.#timer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#admin.disconnect();
  }
}
