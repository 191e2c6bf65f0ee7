/**
 * Counts the connections of a Kafka client that failed (a socket error: refused, reset, timed out) —
 * the sign that a broker went away, perhaps to restart. An exactly-once task producer does not write
 * into a transaction after such a failure since its last commit (`sink/task-producer.ts`): a broker
 * restarting can leave that commit's markers unwritten (KAFKA-20734, `sink/transaction-settler.ts`),
 * and records of the next transaction in the same partition would then share their fate — no marker
 * could commit the one and abort the other. Failing instead sends the task through a rewind, which
 * settles the last commit before anything is written again.
 *
 * The sockets are kafkajs's own (its `socketFactory`, the pinned 2.2.4's default), watched.
 */
import { createRequire } from 'node:module';
import type { ISocketFactory } from 'kafkajs';

const require = createRequire(import.meta.url);
const defaultSocketFactory = require('kafkajs/src/network/socketFactory.js') as () => ISocketFactory;

export class ConnectionWatch {
  #failures = 0;
  readonly #create = defaultSocketFactory();

  /** Connections that failed so far. */
  get failures(): number {
    return this.#failures;
  }

  /** kafkajs's socket factory, counting each socket's first error. */
  readonly socketFactory: ISocketFactory = (options) => {
    const socket = this.#create(options);
    socket.once('error', () => {
      this.#failures++;
    });
    return socket;
  };
}
