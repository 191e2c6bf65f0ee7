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

/**
 * At-least-once accounting of the page-windows job (count per page through the repartition topic),
 * for runs where the group changes mid-stream (crash, scale out, scale in): per (page, window) the
 * first result plus the distinct late records must equal the valid records, every duplicate of a
 * result must agree, nothing may appear that the input does not have.
 */
export interface PageTally {
  /** Per `page|windowStart`: every value published for it, in order. */
  values: Map<string, number[]>;
  /** Per `page|windowStart`: the distinct late records (by upstream origin). */
  late: Map<string, Set<string>>;
}

/** Valid records per `page|windowStart` (flush pages excluded: their windows never close). */
export function perPageWindow(valid: ValidEvent[], windowMs: number): Map<string, number> {
  const expected = new Map<string, number>();
  for (const { event } of valid) {
    if (event.page.startsWith('/flush-')) continue;
    const id = `${event.page}|${Math.floor(event.ts / windowMs) * windowMs}`;
    expected.set(id, (expected.get(id) ?? 0) + 1);
  }
  return expected;
}

export function pageTally(job: JobOutput, windowMs: number): PageTally {
  const values = new Map<string, number[]>();
  const late = new Map<string, Set<string>>();
  for (const o of job.outputs()) {
    const id = `${o.key}|${o.windowStart}`;
    values.set(id, [...(values.get(id) ?? []), o.value as number]);
  }
  for (const r of job.deadLetters('SLUICE_LATE_RECORD')) {
    const e = JSON.parse(r.value!.toString()) as PageView;
    const id = `${e.page}|${Math.floor(e.ts / windowMs) * windowMs}`;
    const set = late.get(id) ?? new Set<string>();
    set.add(`${r.headers['sluice-src']}|${r.headers['sluice-pos']}`);
    late.set(id, set);
  }
  return { values, late };
}

/** Counted (first result) + distinct late records of one (page, window). */
export const pageAccounted = (id: string, t: PageTally): number =>
  (t.values.get(id)?.[0] ?? 0) + (t.late.get(id)?.size ?? 0);

/** What is wrong with a finished tally: an empty list when every record is accounted for exactly once. */
export function pageAccountingProblems(t: PageTally, expected: ReadonlyMap<string, number>): string[] {
  const problems: string[] = [];
  for (const [id, vs] of t.values) if (new Set(vs).size > 1) problems.push(`${id}: different results ${vs}`);
  for (const [id, total] of expected) {
    if (pageAccounted(id, t) !== total) {
      problems.push(`${id}: ${t.values.get(id)?.[0] ?? 0} + ${t.late.get(id)?.size ?? 0} ≠ ${total}`);
    }
  }
  for (const id of [...t.values.keys(), ...t.late.keys()])
    if (!expected.has(id)) problems.push(`${id}: not in the input`);
  return problems;
}

/**
 * Waits until every valid record is counted or dead-lettered as late; an over-count or two different
 * results for one window never become right later, so they fail at once.
 */
export async function waitForPageAccounting(
  job: JobOutput,
  expected: ReadonlyMap<string, number>,
  windowMs: number,
  timeoutMs = 60_000,
): Promise<void> {
  await waitFor(
    'every valid record counted or dead-lettered as late',
    () => {
      const t = pageTally(job, windowMs);
      const over = [...expected].find(([id, total]) => pageAccounted(id, t) > total);
      if (over) throw new Error(`${over[0]}: ${pageAccounted(over[0], t)} counted or late of ${over[1]}`);
      const split = [...t.values].find(([, vs]) => new Set(vs).size > 1);
      if (split) throw new Error(`${split[0]}: different results ${JSON.stringify(split[1])}`);
      return [...expected].every(([id, total]) => pageAccounted(id, t) === total) ? true : undefined;
    },
    timeoutMs,
  ).catch((error: unknown) => {
    const t = pageTally(job, windowMs);
    const off = [...expected].filter(([id, total]) => pageAccounted(id, t) !== total).slice(0, 10);
    console.log(
      `not accounted (id, expected, counted+late): ${JSON.stringify(off.map(([id, n]) => [id, n, pageAccounted(id, t)]))}`,
    );
    throw error;
  });
}
