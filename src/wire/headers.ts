/**
 * Every header name Sluice writes or reads. They are a contract with topics that already exist (the
 * repartition topic of a running job, the dead letters users have tooling for): rename none of them.
 */

/** On a repartition block or control record: the upstream input partition, `topic:partition`. */
export const SOURCE_HEADER = 'sluice-src';
/** On a repartition block: its format version. */
export const BLOCK_HEADER = 'sluice-block';
/** On a repartition control record: the upstream partition's stream time ('' before any record). */
export const WATERMARK_HEADER = 'sluice-wm';
/** On a repartition control record: '1' when the upstream partition is idle. */
export const IDLE_HEADER = 'sluice-idle';
/** On the dead letter of a block entry: its upstream position, `offset:sequence`. */
export const POSITION_HEADER = 'sluice-pos';
/** On the dead letter of a block entry: how its value was encoded (json, string, bytes, null). */
export const ENCODING_HEADER = 'sluice-enc';

/** Dead letters: why the record was refused, and where it came from in the user's input. */
export const DLQ_HEADERS = {
  errorCode: 'sluice-error-code',
  errorMessage: 'sluice-error-message',
  job: 'sluice-job',
  sourceTopic: 'sluice-source-topic',
  sourcePartition: 'sluice-source-partition',
  sourceOffset: 'sluice-source-offset',
  sourceTimestamp: 'sluice-source-timestamp',
  eventTime: 'sluice-event-time',
  windowStart: 'sluice-window-start',
  windowEnd: 'sluice-window-end',
} as const;

/** Headers Sluice writes on dead letters: replaced, not copied, when a dead letter is re-driven. */
export const OWN_DLQ_HEADER = /^sluice-(error-|job$|source-|event-time$|window-|src$|pos$|enc$)/;
