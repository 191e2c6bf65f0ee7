'use strict';
/* global Buffer */
/**
 * kafkajs 2.2.4's `src/consumer/filterAbortedMessages.js`, corrected. A read_committed fetch returns
 * the records of aborted transactions too, with a list of those transactions (producer id and first
 * offset), and the reader must drop each such transaction's records from its first offset to its
 * abort marker. kafkajs's version leaks aborted records in two ways:
 *
 * - it enters at most one aborted transaction per record it passes, and only the next one in the
 *   order the broker lists them. The broker lists them in the order they were aborted, not by first
 *   offset: when several producers' transactions interleave in a partition (a sink partition written
 *   by many tasks) and are aborted in another order than they began, the records of those not yet
 *   entered pass — measured: whole aborted batches of a killed replica read as committed;
 * - it takes any record whose key is four zero bytes for an abort marker, control record or not, so a
 *   data record with that key ends its transaction's filtering early.
 *
 * Here the list is sorted by first offset and every transaction whose first offset has been reached is
 * entered before the record is judged; only a control record ends a transaction. Plain JavaScript
 * (CommonJS), because it replaces a kafkajs module in place: in Node's module cache for the service
 * (`kafkajs-fixes.ts`) and through Jest's `moduleNameMapper` for the tests' own consumers.
 */

const ABORT_MARKER_KEY = Buffer.from([0, 0, 0, 0]);

/**
 * @param {{ messages: Array<{ offset: string, key: Buffer | null, isControlRecord?: boolean,
 *   batchContext?: { producerId: string, inTransaction: boolean } }>,
 *   abortedTransactions?: Array<{ producerId: string, firstOffset: string }> }} fetched
 */
function filterAbortedMessages({ messages, abortedTransactions }) {
  if (!abortedTransactions || abortedTransactions.length === 0) return messages;
  const pending = abortedTransactions
    .map((t) => ({ producerId: t.producerId, firstOffset: BigInt(t.firstOffset) }))
    .sort((a, b) => (a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0));
  let next = 0;
  const aborted = new Set();
  return messages.filter((message) => {
    const offset = BigInt(message.offset);
    while (next < pending.length && offset >= pending[next].firstOffset) aborted.add(pending[next++].producerId);
    // Legacy message formats have no batch context and no transactions.
    if (!message.batchContext) return true;
    const { producerId, inTransaction } = message.batchContext;
    if (message.isControlRecord) {
      if (message.key && Buffer.from(message.key).equals(ABORT_MARKER_KEY)) aborted.delete(producerId);
      return true; // control records are dropped later, by the caller
    }
    return !(inTransaction && aborted.has(producerId));
  });
}

module.exports = filterAbortedMessages;
