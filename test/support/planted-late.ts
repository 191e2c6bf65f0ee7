/**
 * Page views whose late records are known in advance, for the re-keyed (page-windows) job: every
 * input partition is in event-time order, so no record is late in its own partition and therefore —
 * the aggregating stage's stream time being the smallest over its upstream partitions — none is late
 * downstream either. The only late records are the planted ones: produced once stage 1 has committed
 * every input partition past the end (plus lateness) of the windows they fall into, so that every
 * partition of the aggregating stage has that stream time from every upstream partition before it
 * meets them. Whatever the interleaving of partitions, blocks and batches, exactly they must be
 * dead-lettered.
 */
import { mulberry32, pageNames, type PageView } from '../../examples/generator/clickstream.ts';
import { type JobOutput, type ValidEvent } from './clickstream-input.ts';
import { sourceId, testProducer, type ReadRecord } from './topics.ts';
import { admin, waitFor } from '../helpers.ts';

export const WINDOW_MS = 10_000;
/** page-windows' lateness. */
export const LATENESS_MS = 5_000;
const START = Date.UTC(2024, 2, 1);
/** Planted records fall into the first windows of phase A: [START, START + PLANTED_SPAN_MS). */
const PLANTED_SPAN_MS = 4 * WINDOW_MS;

export interface PlannedMessage {
  partition: number;
  key: string;
  value: string;
}

export interface PlantedScenario {
  /** On-time records, per partition in event-time order. */
  phaseA: PlannedMessage[];
  /** More on-time records, continuing each partition's order, with the planted late ones among them. */
  phaseB: PlannedMessage[];
  /** Stream time at which every window a planted record falls into is closed (its end + lateness). */
  closedBy: number;
  /**
   * The smallest last event time of phase A over the input partitions: the aggregating stage's stream
   * time once it has read all of phase A (≥ closedBy).
   */
  phaseAReach: number;
  plantedCount: number;
}

/**
 * `perPartitionA` then `perPartitionB` on-time page views per partition, `eventsPerSecond` of event
 * time per partition, and `plantedPerPartition` planted records spread evenly through phase B, each
 * with an event time in one of the first four windows (user `planted-…`, so that it can be found).
 */
export function plantedLateScenario(options: {
  partitions: number;
  perPartitionA: number;
  perPartitionB: number;
  plantedPerPartition: number;
  seed: number;
  eventsPerSecond?: number;
}): PlantedScenario {
  const { partitions, perPartitionA, perPartitionB, plantedPerPartition } = options;
  const random = mulberry32(options.seed);
  const pages = pageNames(40);
  // Popular pages first (a squared uniform draw), as on a real site; every page appears.
  const page = (): string => pages[Math.floor(random() * random() * pages.length)] ?? '/';
  const stepMs = 1000 / (options.eventsPerSecond ?? 25);
  const phaseA: PlannedMessage[] = [];
  const phaseB: PlannedMessage[] = [];
  const view = (partition: number, user: string, ts: number): PlannedMessage => {
    const event: PageView = { page: page(), user, ts };
    return { partition, key: user, value: JSON.stringify(event) };
  };
  // Partition p's records are offset by p ms so that partitions differ; within one they only grow.
  const tsOf = (p: number, i: number): number => START + p + Math.floor(i * stepMs);
  const everyB = Math.max(1, Math.floor(perPartitionB / Math.max(1, plantedPerPartition)));
  let planted = 0;
  for (let i = 0; i < perPartitionA + perPartitionB; i++) {
    for (let p = 0; p < partitions; p++) {
      const user = `user-${Math.floor(random() * 300)}`;
      if (i < perPartitionA) {
        phaseA.push(view(p, user, tsOf(p, i)));
        continue;
      }
      const j = i - perPartitionA;
      // The first planted record of each partition comes first in phase B: the closest call.
      if (j % everyB === 0 && j / everyB < plantedPerPartition) {
        phaseB.push(view(p, `planted-${planted++}`, START + Math.floor(random() * PLANTED_SPAN_MS)));
      }
      phaseB.push(view(p, user, tsOf(p, i)));
    }
  }
  const closedBy = START + PLANTED_SPAN_MS + LATENESS_MS;
  const phaseAReach = Math.min(...Array.from({ length: partitions }, (_, p) => tsOf(p, perPartitionA - 1)));
  if (phaseAReach < closedBy) throw new RangeError('phase A does not reach past the planted windows');
  return { phaseA, phaseB, closedBy, phaseAReach, plantedCount: planted };
}

/** Sends `messages` in order, `batchSize` per request (each partition's order is kept). */
export async function producePlanned(topic: string, messages: PlannedMessage[], batchSize = 4000): Promise<void> {
  const producer = await testProducer();
  for (let i = 0; i < messages.length; i += batchSize) {
    await producer.send({ topic, messages: messages.slice(i, i + batchSize) });
  }
}

export const isPlanted = ({ event }: ValidEvent): boolean => event.user.startsWith('planted-');

/** `topic:partition:offset` of an input record, and of the input record a dead letter names. */
export const inputId = (r: ReadRecord): string => `${r.topic}:${r.partition}:${r.offset}`;
export const letterSource = (r: ReadRecord): string => `${r.headers['sluice-source-topic']}:${sourceId(r)}`;

/** Valid records per `page|windowStart`, planted and flush records excluded. */
export function expectedCounts(valid: ValidEvent[]): Map<string, number> {
  const expected = new Map<string, number>();
  for (const v of valid) {
    if (isPlanted(v) || v.event.page.startsWith('/flush-')) continue;
    const id = `${v.event.page}|${Math.floor(v.event.ts / WINDOW_MS) * WINDOW_MS}`;
    expected.set(id, (expected.get(id) ?? 0) + 1);
  }
  return expected;
}

/**
 * Waits until the group has committed every record of `input` up to its current end. Stage 1
 * commits an input partition only after its repartition blocks and its stream-time report (the
 * control record that follows them into every repartition partition) are acknowledged; anything
 * produced afterwards reaches the repartition topic after them. So once this holds, every partition
 * of the aggregating stage meets each upstream partition's stream time at the end of what is now in
 * `input` before any record produced later — whatever stage 2 has processed so far. (Waiting on the
 * aggregating stage's own stream time instead would take the code under test for granted.)
 */
export async function waitForStageOneCommitted(groupId: string, input: string, timeoutMs = 90_000): Promise<void> {
  const a = await admin();
  const ends = new Map((await a.fetchTopicOffsets(input)).map((o) => [o.partition, Number(o.high)]));
  await waitFor(
    `${groupId} committed ${input} to its end`,
    async () => {
      const [committed] = await a.fetchOffsets({ groupId, topics: [input] });
      const done = (committed?.partitions ?? []).filter((p) => Number(p.offset) >= (ends.get(p.partition) ?? 0));
      return done.length === ends.size ? true : undefined;
    },
    timeoutMs,
  );
}

/**
 * Waits until every window of `expected` has a result and every planted record is dead-lettered as
 * late. A result with another value, or a late letter for a record that was not planted, never
 * becomes right: either fails at once.
 */
export async function waitForPlantedOutcome(
  job: JobOutput,
  expected: ReadonlyMap<string, number>,
  planted: ReadonlySet<string>,
  timeoutMs = 90_000,
): Promise<void> {
  await waitFor(
    'every window counted and every planted record dead-lettered as late',
    () => {
      const outputs = job.outputs();
      const wrong = outputs.find((o) => expected.get(`${o.key}|${o.windowStart}`) !== o.value);
      if (wrong)
        throw new Error(
          `result ${JSON.stringify(wrong)}, expected ${expected.get(`${wrong.key}|${wrong.windowStart}`)}`,
        );
      const late = job.deadLetters('SLUICE_LATE_RECORD').map(letterSource);
      const stray = late.find((id) => !planted.has(id));
      if (stray) throw new Error(`dead-lettered as late but on time: ${stray}`);
      const counted = new Set(outputs.map((o) => `${o.key}|${o.windowStart}`));
      const lateSeen = new Set(late);
      return [...expected.keys()].every((id) => counted.has(id)) && [...planted].every((id) => lateSeen.has(id))
        ? true
        : undefined;
    },
    timeoutMs,
  ).catch((error: unknown) => {
    const counted = new Set(job.outputs().map((o) => `${o.key}|${o.windowStart}`));
    const lateSeen = new Set(job.deadLetters('SLUICE_LATE_RECORD').map(letterSource));
    console.log(
      `missing: ${[...expected.keys()].filter((id) => !counted.has(id)).length} of ${expected.size} windows, ` +
        `${[...planted].filter((id) => !lateSeen.has(id)).length} of ${planted.size} planted late records`,
    );
    throw error;
  });
}
