/**
 * Start-up steps that talk to Kafka are retried while what failed is retriable — a broker still
 * starting, a topic whose metadata has not reached every broker yet ("This server does not host this
 * topic-partition"), a coordinator moving — until `SLUICE_STARTUP_TIMEOUT`. A configuration mistake
 * (TLS, SASL, authorization, a missing topic) stops start-up at once with one line.
 */
import type pino from 'pino';
import { type SluiceError } from '../errors.ts';
import { classifyKafkaError } from './errors.ts';

export interface StartupRetry {
  brokers: readonly string[];
  /** Epoch ms after which a retriable failure is given up. */
  deadline: number;
  logger: pino.Logger;
  /** The service is being closed: stop retrying. */
  cancelled: () => boolean;
}

export async function retryStartup<T>(step: string, attempt: () => Promise<T>, retry: StartupRetry): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      const classified: SluiceError = classifyKafkaError(error, retry.brokers);
      const wait = Math.min(5_000, 250 * 2 ** Math.min(n, 5));
      if (!classified.retryable || retry.cancelled() || Date.now() + wait > retry.deadline) throw classified;
      retry.logger.warn({ step, attempt: n + 1, code: classified.code, err: error }, `${step} failed; retrying`);
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}
