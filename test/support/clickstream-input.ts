/**
 * Generated clickstream input for the end-to-end tests of the windowed fixture jobs: producing it
 * with the flush records that close every window, reading it back as the service reads it, and
 * recomputing what the jobs must output with the plain reference (./reference-windows.ts).
 */
import {
  flushPages,
  flushRecords,
  generateClickstream,
  maxEventTime,
  produceClickstream,
  type GeneratedRecord,
  type PageView,
} from '../../examples/generator/clickstream.ts';
import { referenceWindows, type RefRecord } from './reference-windows.ts';
import { waitFor } from '../helpers.ts';
import { follow, readAll, sourceId, testProducer, type ReadRecord } from './topics.ts';

/** A result of the windowed fixture jobs (user-windows, page-windows, crash-once). */
export interface Output {
  key: string | null;
  windowStart: number;
  windowEnd: number;
  value: number;
}

export function parseOutput(r: ReadRecord): Output {
  return JSON.parse(r.value!.toString()) as Output;
}

export function parseOutputs(records: ReadRecord[]): Output[] {
  return records.map(parseOutput);
}

/** What a job publishes, as it arrives (see `follow`): its results and its dead letters. */
export interface JobOutput {
  /** Every record of the output and the dead-letter topic so far. */
  readonly records: ReadRecord[];
  outputs(): Output[];
  deadLetters(code: string): ReadRecord[];
  stop(): Promise<void>;
}

export async function followJob(output: string, dlqTopic: string): Promise<JobOutput> {
  const { records, stop } = await follow([output, dlqTopic]);
  return {
    records,
    outputs: () => parseOutputs(records.filter((r) => r.topic === output)),
    deadLetters: (code) => records.filter((r) => r.topic === dlqTopic && r.headers['sluice-error-code'] === code),
    stop,
  };
}

/**
 * Waits until `job` has published a result for every window of `expected` (`key|windowStart` →
 * value) and dead-lettered every record of `late` and of `malformed` (`partition:offset`). A result
 * with another value never becomes right: it fails at once instead of waiting for the timeout.
 */
export async function waitForReference(
  job: JobOutput,
  expected: ReadonlyMap<string, number | null>,
  late: Iterable<string>,
  malformed?: Iterable<string>,
  timeoutMs = 60_000,
): Promise<void> {
  const lateIds = [...late];
  const malformedIds = malformed ? [...malformed] : undefined;
  await waitFor(
    malformedIds ? 'every reference window, late and malformed record' : 'every reference window and late record',
    () => {
      const outputs = job.outputs();
      const wrong = outputs.find((o) => expected.get(`${o.key}|${o.windowStart}`) !== o.value);
      if (wrong) throw new Error(`wrong result ${JSON.stringify(wrong)}`);
      const ids = new Set(outputs.map((o) => `${o.key}|${o.windowStart}`));
      const lateSeen = new Set(job.deadLetters('SLUICE_LATE_RECORD').map(sourceId));
      const badSeen = new Set(job.deadLetters('SLUICE_DESERIALIZE_FAILED').map(sourceId));
      const done =
        [...expected.keys()].every((id) => ids.has(id)) &&
        lateIds.every((id) => lateSeen.has(id)) &&
        (malformedIds ?? []).every((id) => badSeen.has(id));
      return done ? true : undefined;
    },
    timeoutMs,
  );
}

/** The page view in `r`, as the fixture jobs see it: undefined when they dead-letter or filter it. */
export function parseEvent(r: ReadRecord): PageView | undefined {
  try {
    const e = JSON.parse(r.value!.toString()) as PageView;
    return typeof e.page === 'string' ? e : undefined;
  } catch {
    return undefined;
  }
}

export interface ValidEvent {
  record: ReadRecord;
  event: PageView;
}

/** The records that hold a page view, with it, in the order of `records`. */
export function validEvents(records: ReadRecord[]): ValidEvent[] {
  return records.flatMap((record) => {
    const event = parseEvent(record);
    return event ? [{ record, event }] : [];
  });
}

/** `partition:offset` of the records that hold no page view (dead-lettered as malformed). */
export function malformedIds(records: ReadRecord[], valid: ValidEvent[]): string[] {
  const validIds = new Set(valid.map(({ record }) => `${record.partition}:${record.offset}`));
  return records.map((r) => `${r.partition}:${r.offset}`).filter((id) => !validIds.has(id));
}

/** Every record of `topic` as the service reads it (per partition, in offset order) and its page views. */
export async function readInput(topic: string): Promise<{ records: ReadRecord[]; valid: ValidEvent[] }> {
  const records = await readAll(topic);
  records.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
  return { records, valid: validEvents(records) };
}

/**
 * What the count per Kafka key in tumbling `windowMs` windows with 5 s lateness (user-windows,
 * crash-once) must output for `valid`, read per partition in offset order.
 */
export function countPerKeyReference(valid: ValidEvent[], windowMs: number) {
  const refInput: RefRecord[] = valid.map(({ record, event }) => ({
    partition: record.partition,
    key: record.key,
    eventTime: event.ts,
    value: event,
  }));
  const reference = referenceWindows(refInput, {
    kind: 'tumbling',
    sizeMs: windowMs,
    latenessMs: 5_000,
    aggregate: 'count',
  });
  return {
    reference,
    /** `key|windowStart` → count, for every window that closes. */
    expected: new Map(reference.closed.map((w) => [`${w.key}|${w.windowStart}`, w.value])),
    /** `partition:offset` of the late records. */
    expectedLate: reference.late.map((i) => `${valid[i]!.record.partition}:${valid[i]!.record.offset}`),
  };
}

/**
 * Produces `records` to `topic` in batches of `batchSize`, then one flush record per partition
 * (partition `i` gets the page `pages[i]`) far ahead in event time, which closes every window.
 */
export async function produceWithFlush(
  topic: string,
  records: GeneratedRecord[],
  pages: readonly string[],
  batchSize = 5000,
): Promise<void> {
  const producer = await testProducer();
  await produceClickstream(producer, topic, records, { batchSize });
  await producer.send({ topic, messages: flushRecords(maxEventTime(records), pages) });
}

/**
 * Produces `count` generated page views (seeded by `seed`) to `topic` plus the flush records, with
 * pages chosen so that they also reach every partition of the repartition topic of a page-keyed job
 * (same murmur2 partitioner as the sink): every window closes. Returns the generated records.
 */
export async function produceClickstreamInput(
  topic: string,
  partitions: number,
  count: number,
  seed: number,
): Promise<GeneratedRecord[]> {
  const records = [...generateClickstream({ count, seed, eventsPerSecond: 500, users: 300, pages: 40 })];
  await produceWithFlush(topic, records, flushPages(partitions));
  return records;
}
