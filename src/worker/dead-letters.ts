/**
 * Dead letters: the refused record with its key, value and headers, plus why (`sluice-error-*`) and
 * where it came from in the user's input (`sluice-source-*`). A record that went through the
 * repartition topic names its input record, not the internal topic.
 */
import { describeError, type ErrorCode, StateError } from '../errors.ts';
import { type DeadLetter } from '../pool/protocol.ts';
import { DLQ_HEADERS, OWN_DLQ_HEADER } from '../wire/headers.ts';
import { type CodecRecord } from '../wire/record-codec.ts';
import { BlockFormatError } from '../wire/repartition-block.ts';
import { RecordFailure } from './record-functions.ts';

/** Where a record came from in the user's input. `timestamp` is unknown for old repartition blocks. */
export interface Origin {
  topic: string;
  partition: number;
  offset: number;
  timestamp: number | undefined;
}

const encoder = new TextEncoder();

export type Headers = Array<[string, string | Uint8Array]>;

/** A record of this partition as its own origin. */
export function originOf(task: { readonly topic: string; readonly partition: number }, record: CodecRecord): Origin {
  return { topic: task.topic, partition: task.partition, offset: record.offset, timestamp: record.timestamp };
}

export class DeadLetters {
  readonly #job: string;

  constructor(job: string) {
    this.#job = job;
  }

  #errorHeaders(code: ErrorCode, message: string): Headers {
    return [
      [DLQ_HEADERS.errorCode, code],
      [DLQ_HEADERS.errorMessage, message.slice(0, 1000)],
      [DLQ_HEADERS.job, this.#job],
    ];
  }

  /** A refused record. `extra` headers follow Sluice's own; the record's headers come last. */
  record(record: CodecRecord, origin: Origin, code: ErrorCode, message: string, extra: Headers = []): DeadLetter {
    const headers: Headers = [
      ...this.#errorHeaders(code, message),
      [DLQ_HEADERS.sourceTopic, origin.topic],
      [DLQ_HEADERS.sourcePartition, String(origin.partition)],
      [DLQ_HEADERS.sourceOffset, String(origin.offset)],
      ...(origin.timestamp !== undefined
        ? ([[DLQ_HEADERS.sourceTimestamp, String(origin.timestamp)]] satisfies Headers)
        : []),
      ...extra,
    ];
    // Copies: the views point into the whole batch buffer, which must not be cloned back per letter.
    // A re-driven dead letter carries only its new error and origin: Sluice's own headers are replaced.
    for (const [name, value] of record.headers) {
      if (!OWN_DLQ_HEADER.test(name)) headers.push([name, value.slice()]);
    }
    return { key: record.key?.slice() ?? null, value: record.value?.slice() ?? null, headers };
  }

  /** A record whose processing threw: its code when it is a RecordFailure, else user code. */
  failure(record: CodecRecord, origin: Origin, error: unknown, extra: Headers = []): DeadLetter {
    if (error instanceof BlockFormatError) {
      return this.record(record, origin, 'SLUICE_DESERIALIZE_FAILED', `repartition block: ${error.message}`, extra);
    }
    const code = error instanceof RecordFailure ? error.errorCode : 'SLUICE_USER_CODE_FAILED';
    const message = error instanceof RecordFailure ? error.message : describeError(error);
    return this.record(record, origin, code, message, extra);
  }

  /** A record for windows that are all closed. */
  late(record: CodecRecord, origin: Origin, eventTime: number, streamTime: number, extra: Headers = []): DeadLetter {
    return this.record(
      record,
      origin,
      'SLUICE_LATE_RECORD',
      `event time ${eventTime} is behind stream time ${streamTime} by more than the allowed lateness`,
      [[DLQ_HEADERS.eventTime, String(eventTime)], ...extra],
    );
  }

  /**
   * A window whose aggregate `result()` threw, or whose accumulator the changelog cannot store
   * (`StateError`): dropped, and reported by its key and bounds.
   */
  window(key: string | null, windowStart: number, windowEnd: number, error: unknown): DeadLetter {
    const code = error instanceof StateError ? error.code : 'SLUICE_USER_CODE_FAILED';
    return {
      key: key === null ? null : encoder.encode(key),
      value: null,
      headers: [
        ...this.#errorHeaders(code, describeError(error)),
        [DLQ_HEADERS.windowStart, String(windowStart)],
        [DLQ_HEADERS.windowEnd, String(windowEnd)],
      ],
    };
  }
}
