/**
 * DescribeTransactions (KIP-664, API key 65, Kafka 3.0+): what a transaction coordinator holds for a
 * transactional id — the state of its current or last transaction and the producer id and epoch it
 * belongs to. Sluice asks it when a commit failed without an answer, to learn whether the coordinator
 * had decided the transaction (`transaction-settler.ts`).
 *
 * Why by hand: kafkajs 2.2.4 has no DescribeTransactions. The request is sent as kafkajs sends its own
 * flexible-version requests (`ListPartitionReassignments`): the body starts with the request header's
 * empty tagged fields, the response with the response header's, through the broker's connection pool.
 */
import { createRequire } from 'node:module';
import { createErrorFromCode, type KafkajsBroker } from './kafkajs-cluster.ts';

const require = createRequire(import.meta.url);

const API_KEY = 65;
const API_VERSION = 0;

interface KafkajsEncoder {
  writeInt32(value: number): KafkajsEncoder;
  writeUVarIntBytes(value?: Buffer): KafkajsEncoder;
  writeUVarIntString(value: string): KafkajsEncoder;
  writeUVarIntArray(values: unknown[]): KafkajsEncoder;
}
interface KafkajsDecoder {
  readInt16(): number;
  readInt32(): number;
  readInt64(): { toString(): string };
  readUVarIntString(): string;
  readUVarIntArray<T>(reader: (decoder: KafkajsDecoder) => T): T[];
  readTaggedFields(): void;
}
const Encoder = require('kafkajs/src/protocol/encoder.js') as new () => KafkajsEncoder;
const Decoder = require('kafkajs/src/protocol/decoder.js') as new (buffer: Buffer) => KafkajsDecoder;

/** A coordinator's states (`TransactionState` in Kafka), as DescribeTransactions names them. */
export type TransactionStateName =
  | 'Empty'
  | 'Ongoing'
  | 'PrepareCommit'
  | 'PrepareAbort'
  | 'CompleteCommit'
  | 'CompleteAbort'
  | 'Dead'
  | 'PrepareEpochFence';

export interface TransactionDescription {
  transactionalId: string;
  state: TransactionStateName | string;
  producerId: string;
  producerEpoch: number;
  /** The partitions of the transaction while it is open (the coordinator clears them when it ends). */
  topics: Array<{ topic: string; partitions: number[] }>;
}

interface DecodedState extends TransactionDescription {
  errorCode: number;
}

function decodeState(decoder: KafkajsDecoder): DecodedState {
  const errorCode = decoder.readInt16();
  const transactionalId = decoder.readUVarIntString();
  const state = decoder.readUVarIntString();
  decoder.readInt32(); // transaction_timeout_ms
  decoder.readInt64(); // transaction_start_time_ms
  const producerId = decoder.readInt64().toString();
  const producerEpoch = decoder.readInt16();
  const topics = decoder.readUVarIntArray((d) => {
    const topic = d.readUVarIntString();
    const partitions = d.readUVarIntArray((p) => p.readInt32());
    d.readTaggedFields();
    return { topic, partitions };
  });
  decoder.readTaggedFields();
  return { errorCode, transactionalId, state, producerId, producerEpoch, topics };
}

/** The request and response in the shape kafkajs's connection sends and decodes. */
function describeTransactionsRequest(transactionalId: string) {
  return {
    request: {
      apiKey: API_KEY,
      apiVersion: API_VERSION,
      apiName: 'DescribeTransactions',
      encode: async () =>
        new Encoder()
          .writeUVarIntBytes() // the request header's tagged fields
          .writeUVarIntArray([new Encoder().writeUVarIntString(transactionalId)])
          .writeUVarIntBytes(),
    },
    response: {
      decode: async (raw: Buffer) => {
        const decoder = new Decoder(raw);
        decoder.readTaggedFields(); // the response header's
        decoder.readInt32(); // throttle_time_ms
        const states = decoder.readUVarIntArray(decodeState);
        decoder.readTaggedFields();
        return { states };
      },
      parse: async (data: { states: DecodedState[] }) => data,
    },
  };
}

/** Whether the broker answers DescribeTransactions (v0); `versions` is what ApiVersions told kafkajs. */
export function supportsDescribeTransactions(broker: KafkajsBroker): boolean {
  const range = broker.versions?.[API_KEY];
  return range !== undefined && range.minVersion <= API_VERSION && range.maxVersion >= API_VERSION;
}

/**
 * What the coordinator `broker` holds for `transactionalId` (first check
 * `supportsDescribeTransactions`). Rejects with kafkajs's error for the transaction's error code:
 * COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR and COORDINATOR_NOT_AVAILABLE are retriable.
 */
export async function describeTransaction(
  broker: KafkajsBroker,
  transactionalId: string,
): Promise<TransactionDescription> {
  const { states } = (await broker.connectionPool.send(describeTransactionsRequest(transactionalId))) as {
    states: DecodedState[];
  };
  const found = states.find((s) => s.transactionalId === transactionalId) ?? states[0];
  if (!found) throw new Error(`DescribeTransactions answered nothing for ${transactionalId}`);
  if (found.errorCode !== 0) throw createErrorFromCode(found.errorCode);
  const { errorCode: _ignored, ...description } = found;
  return description;
}
